import CZlib
import EdgeSyncCodec
import EdgeSyncTestSupport
import Testing

/// The decoder trusts nothing: every malformed frame must give a typed error, never a trap, a hang
/// or an allocation beyond the limits.
@Suite("Hostile input")
struct HostileInputTests {
    let decoder = BatchDecoder()

    static let entropyCodedReadings: [Reading] = (0..<60).map { (index: Int) -> Reading in
        let seconds = Int64(index + index % 4)
        return Reading(series: 0, timestamp: seconds * 1_000_000_000, value: Double(2000 + (index * 37) % 23) / 100)
    }

    /// Small frames of several shapes, so that every section of the format is attacked.
    static let smallFrames: [[UInt8]] = {
        let batches = [
            Fixtures.batch(readings: [], seriesCount: 0),
            Fixtures.batch(readings: [Reading(series: 0, timestamp: 7, value: 21.5)], seriesCount: 1),
            Fixtures.randomBatch(seed: 11, count: 40, seriesCount: 3),
            // Long enough for entropy-coded columns, so corruption reaches the code tables.
            Fixtures.batch(readings: entropyCodedReadings, seriesCount: 1),
            Fixtures.batch(
                readings: Fixtures.edgeValues.prefix(12).enumerated().map { Reading(series: $0.offset % 2, timestamp: Int64($0.offset / 2), value: $0.element) },
                seriesCount: 2),
        ]
        let v2 = EncodingOptions(version: .v2)
        var frames = batches.compactMap { try? BatchEncoder(options: v2).encode($0) }
        frames += batches.suffix(2).compactMap { try? BatchEncoder(options: EncodingOptions(deflateLevel: 9, version: .v2)).encode($0) }
        // Version 3: the same shapes, and many short series (shared values, rows order, key coding).
        frames += batches.compactMap { try? BatchEncoder().encode($0) }
        frames += [manyShortSeries].compactMap { try? BatchEncoder().encode($0) }
        frames += [manyShortSeries].compactMap { try? BatchEncoder(options: EncodingOptions(deflateLevel: 9)).encode($0) }
        return frames
    }()

    /// Twelve series of three to five readings in rows, one series ending early, one value NaN: the
    /// version 3 shared value section with lags, shifts and an exception, and the rows order.
    static let manyShortSeries: Batch = {
        var readings: [Reading] = []
        for row in 0..<5 {
            for series in 0..<12 where !(series == 4 && row > 2) {
                let value = series == 7 && row == 1 ? Double.nan : Double(1000 * series + (row % 2) * 37 + row) / 1000
                readings.append(Reading(series: series, timestamp: 1_000 + Int64(row) * 33_333, value: value))
            }
        }
        return Batch(
            device: "gw", stream: 3, firstSequence: 1, seriesKeys: (0..<12).map { "plug,load=p\($0) current" }, readings: readings)
    }()

    @Test("corrupting any single byte in any way is detected", arguments: smallFrames.indices)
    func everySingleByteCorruption(frameIndex: Int) {
        let frame = Self.smallFrames[frameIndex]
        #expect(frame.count < 400, "keep this exhaustive test small")
        for position in frame.indices {
            for replacement in UInt8.min...UInt8.max where replacement != frame[position] {
                var corrupted = frame
                corrupted[position] = replacement
                #expect(throws: CodecError.self, "byte \(position) = \(replacement)") { try decoder.decode(corrupted) }
            }
        }
    }

    @Test("truncating at any length is an error", arguments: smallFrames.indices)
    func everyTruncation(frameIndex: Int) {
        let frame = Self.smallFrames[frameIndex]
        for length in 0..<frame.count {
            let error = #expect(throws: CodecError.self) { try decoder.decode(Array(frame[..<length])) }
            #expect(error?.code == .truncated, "length \(length): \(String(describing: error))")
        }
        #expect(throws: CodecError.self) { try decoder.decode(frame + [0]) }
    }

    @Test("random bytes are rejected, with or without a valid header")
    func randomBytes() {
        var random = SeededRandom(seed: 2024)
        for round in 0..<20_000 {
            var bytes = (0..<Int.random(in: 0...200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            if round % 2 == 0, bytes.count >= 18 {
                // A plausible header with lengths that match, and a correct CRC: only the payload is random.
                bytes.replaceSubrange(0..<6, with: [0x45, 0x53, 0x59, 0x42, round % 3 == 0 ? 2 : 3, UInt8(round % 4 == 0 ? 1 : 0)])
                Self.fixLengthsAndChecksum(&bytes)
            }
            _ = try? decoder.decode(bytes)
        }
    }

    @Test("corrupting payload bytes behind a recomputed checksum never traps", arguments: smallFrames.indices)
    func structuralCorruption(frameIndex: Int) {
        let frame = Self.smallFrames[frameIndex]
        guard frame[5] == 0 else { return }  // deflated payloads are covered by zlib's own checks
        var failures = 0
        for position in 14..<(frame.count - 4) {
            for replacement: UInt8 in [0x00, 0x01, 0x7F, 0x80, 0xFF, frame[position] ^ 0x10, frame[position] &+ 1] where replacement != frame[position] {
                var corrupted = frame
                corrupted[position] = replacement
                Self.fixLengthsAndChecksum(&corrupted)
                do {
                    let batch = try decoder.decode(corrupted)
                    #expect(batch.readings.count <= decoder.limits.maximumReadings)
                } catch {
                    failures += 1
                }
            }
        }
        #expect(failures > 0, "structural checks never fired")
    }

    @Test("hostile headers get the right error code", arguments: FormatVersion.allCases)
    func hostileHeaders(version: FormatVersion) throws {
        let frame = try BatchEncoder(options: EncodingOptions(version: version)).encode(Fixtures.randomBatch(seed: 5, count: 10, seriesCount: 2))
        func code(_ mutate: (inout [UInt8]) -> Void, fixChecksum: Bool = true) -> CodecError.Code? {
            var bytes = frame
            mutate(&bytes)
            if fixChecksum { Self.fixChecksum(&bytes) }
            do {
                _ = try decoder.decode(bytes)
                return nil
            } catch { return error.code }
        }
        #expect(code({ $0[0] = 0x46 }) == .badMagic)
        #expect(code({ $0[4] = 4 }) == .unsupportedVersion)
        #expect(code({ $0[4] = 0xFF }) == .unsupportedVersion)
        // Version 1 frames (fixed-width packing only) predate the entropy-coded columns.
        #expect(code({ $0[4] = 1 }) == .unsupportedVersion)
        #expect(code({ $0[5] = 0x80 }) == .unsupportedFlags)
        #expect(code({ $0[$0.count - 1] ^= 1 }, fixChecksum: false) == .checksumMismatch)
        #expect(code({ Self.put(UInt32.max, at: 6, in: &$0); Self.put(UInt32.max, at: 10, in: &$0) }) == .limitExceeded)
        #expect(code({ Self.put(UInt32(1 << 30), at: 10, in: &$0); $0[5] = 1 }) == .limitExceeded)
        #expect(code({ Self.put(UInt32(3), at: 10, in: &$0) }) == .malformed)  // lengths differ without deflate
        #expect(code({ $0.insert(0, at: $0.count - 4); Self.put(UInt32($0.count - 18), at: 6, in: &$0); Self.put(UInt32($0.count - 18), at: 10, in: &$0) }) == .malformed)
    }

    @Test("a decompression bomb is refused before or while inflating, within the declared size")
    func decompressionBomb() throws {
        // 64 MiB of zeros deflate to about 64 KiB; the frame declares only 1 KiB of payload.
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        var length = compressBound(uLong(zeros.count))
        var deflated = [UInt8](repeating: 0, count: Int(length))
        #expect(compress2(&deflated, &length, zeros, uLong(zeros.count), 9) == Z_OK)
        deflated.removeLast(deflated.count - Int(length))
        var frame: [UInt8] = [0x45, 0x53, 0x59, 0x42, FrameHeader.currentVersion, 1]
        frame += Self.le(UInt32(deflated.count)) + Self.le(UInt32(1024)) + deflated + [0, 0, 0, 0]
        Self.fixChecksum(&frame)
        let error = #expect(throws: CodecError.self) { try decoder.decode(frame) }
        #expect(error?.code == .malformed)

        // Declaring the true size is refused from the header by the payload limit.
        var honest = frame
        Self.put(UInt32(zeros.count), at: 10, in: &honest)
        Self.fixChecksum(&honest)
        var limits = DecodingLimits()
        limits.maximumPayloadBytes = 1 << 20
        let refused = #expect(throws: CodecError.self) { try BatchDecoder(limits: limits).decode(honest) }
        #expect(refused?.code == .limitExceeded)
    }

    @Test("a huge declared reading count is refused before allocating")
    func hugeCount() throws {
        var limits = DecodingLimits()
        limits.maximumReadings = 1000
        let batch = Fixtures.randomBatch(seed: 1, count: 1001, seriesCount: 1)
        let error = #expect(throws: CodecError.self) { try BatchDecoder(limits: limits).decode(BatchEncoder().encode(batch)) }
        #expect(error?.code == .limitExceeded)
        #expect(error?.description.contains("reading count") == true)
    }

    @Test("errors name the byte offset and the field")
    func errorsNameTheirPlace() throws {
        let frame = try BatchEncoder().encode(Fixtures.randomBatch(seed: 9, count: 50, seriesCount: 2))
        let error = #expect(throws: CodecError.self) { try decoder.decode(Array(frame[..<30])) }
        #expect(error?.offset == 30)
        #expect(error?.description.contains("frame byte 30") == true)
    }

    @Test("the encoder refuses batches that break the rules")
    func invalidBatches() {
        let encoder = BatchEncoder()
        let reading = Reading(series: 0, timestamp: 0, value: 1)
        let bad: [Batch] = [
            Batch(device: "", stream: 1, firstSequence: 1, seriesKeys: ["a"], readings: [reading]),
            Batch(device: "d", stream: 1, firstSequence: 0, seriesKeys: ["a"], readings: [reading]),
            Batch(device: "d", stream: 1, firstSequence: .max, seriesKeys: ["a"], readings: [reading, reading]),
            Batch(device: "d", stream: 1, firstSequence: 1, seriesKeys: ["a", "a"], readings: [reading]),
            Batch(device: "d", stream: 1, firstSequence: 1, seriesKeys: ["a"], readings: [Reading(series: 1, timestamp: 0, value: 0)]),
            Batch(device: String(repeating: "x", count: 300), stream: 1, firstSequence: 1, seriesKeys: ["a"], readings: [reading]),
        ]
        for batch in bad {
            let error = #expect(throws: CodecError.self) { try encoder.encode(batch) }
            #expect(error?.code == .invalidBatch)
        }
        let lossy = BatchEncoder(options: EncodingOptions(errorBounds: ["a": -1]))
        #expect(throws: CodecError.self) { try lossy.encode(Batch(device: "d", stream: 1, firstSequence: 1, seriesKeys: ["a"], readings: [reading])) }
    }

    // MARK: Helpers

    static func le(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    static func put(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
        bytes.replaceSubrange(offset..<offset + 4, with: le(value))
    }

    static func fixChecksum(_ bytes: inout [UInt8]) {
        guard bytes.count >= 4 else { return }
        let crc = bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count - 4))) }
        put(crc, at: bytes.count - 4, in: &bytes)
    }

    /// Makes the header's lengths describe the bytes present (stored = declared when not deflated).
    static func fixLengthsAndChecksum(_ bytes: inout [UInt8]) {
        let stored = UInt32(bytes.count - 18)
        put(stored, at: 6, in: &bytes)
        if bytes[5] & 1 == 0 { put(stored, at: 10, in: &bytes) }
        fixChecksum(&bytes)
    }
}
