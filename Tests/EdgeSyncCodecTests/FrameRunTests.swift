import EdgeSyncCodec
import EdgeSyncTestSupport
import Testing

/// Frame runs: stored frames back to back, decoded into one batch, and everything a hostile run
/// can do wrong.
@Suite struct FrameRunTests {
    let decoder = BatchDecoder()

    /// Three parts of one stream with different key sets, the middle one in version 2.
    func parts() -> [Batch] {
        let whole = VersionThreeTests.gatewayBatch(seed: 7, seriesCount: 40, rows: 30, edgeValues: true)
        let cuts = [0, 300, 301, whole.readings.count]
        return zip(cuts, cuts.dropFirst()).map { start, end in
            var keys: [String] = []
            var map: [Int: Int] = [:]
            let readings = whole.readings[start..<end].map { reading -> Reading in
                let index = map[reading.series] ?? keys.count
                if index == keys.count {
                    keys.append(whole.seriesKeys[reading.series])
                    map[reading.series] = index
                }
                return Reading(series: index, timestamp: reading.timestamp, value: reading.value)
            }
            return Batch(
                device: whole.device, stream: whole.stream, firstSequence: whole.firstSequence + UInt64(start),
                seriesKeys: keys, readings: readings)
        }
    }

    func frames(_ parts: [Batch]) throws -> [[UInt8]] {
        try parts.enumerated().map { index, part in
            try BatchEncoder(options: EncodingOptions(version: index == 1 ? .v2 : .v3)).encode(part)
        }
    }

    @Test func aRunDecodesToTheJoinedBatch() throws {
        let parts = parts()
        let run = FrameRun.join(try frames(parts))
        let decoded = try decoder.decodeRun(run)
        #expect(decoded == Batch(joining: parts))
        #expect(decoded.readings.count == parts.reduce(0) { $0 + $1.readings.count })
        #expect(decoded.sentAt == 0)
        // One frame is a run too.
        #expect(try decoder.decodeRun(try frames([parts[0]])[0]) == parts[0])
    }

    @Test func aSummaryReadsTheLeadingFieldsOfEitherVersion() throws {
        let parts = parts()
        for (frame, part) in zip(try frames(parts), parts) {
            let summary = try frame.withUnsafeBytes { raw in
                try Result { () throws(CodecError) in try decoder.summary(of: raw) }.get()
            }
            #expect(summary.device == part.device && summary.stream == part.stream)
            #expect(summary.firstSequence == part.firstSequence && summary.readingCount == part.readings.count)
            #expect(summary.frameBytes == frame.count)
        }
        var damaged = try frames(parts)[0]
        damaged[damaged.count / 2] ^= 0x40
        let error = damaged.withUnsafeBytes { raw in
            Result { () throws(CodecError) in try decoder.summary(of: raw) }
        }
        #expect(throws: CodecError.self) { try error.get() }
    }

    @Test func hostileRunsAreRefusedWithTheRightCode() throws {
        let parts = parts()
        let good = try frames(parts)
        var otherStream = parts[1]
        otherStream.stream &+= 1
        var gap = parts[1]
        gap.firstSequence += 1
        let empty = try BatchEncoder().encode(
            Batch(device: parts[0].device, stream: parts[0].stream, firstSequence: parts[0].sequences.upperBound,
                  seriesKeys: [], readings: []))
        var corrupted = good[1]
        corrupted[corrupted.count - 1] ^= 1
        let cases: [(String, [UInt8], CodecError.Code)] = [
            ("empty body", [], .truncated),
            ("truncated last frame", Array(FrameRun.join(good).dropLast(3)), .truncated),
            ("garbage after the frames", FrameRun.join(good) + [0x45, 0x53], .truncated),
            ("another stream", FrameRun.join([good[0], try BatchEncoder().encode(otherStream)]), .malformed),
            ("a gap in sequence", FrameRun.join([good[0], try BatchEncoder().encode(gap)]), .malformed),
            ("out of order", FrameRun.join([good[1], good[0]]), .malformed),
            ("a frame without readings", FrameRun.join([good[0], empty]), .malformed),
            ("a corrupted frame", FrameRun.join([good[0], corrupted, good[2]]), .checksumMismatch),
            ("bad magic in the middle", FrameRun.join([good[0], Array("HTTP/1.1 200 OK\r\n\r\n".utf8)]), .badMagic),
        ]
        for (name, body, code) in cases {
            #expect(throws: CodecError.self, "\(name)") { try decoder.decodeRun(body) }
            do {
                _ = try decoder.decodeRun(body)
            } catch {
                #expect(error.code == code, "\(name): \(error)")
            }
        }
    }

    @Test func limitsCountTheWholeRun() throws {
        let parts = parts()
        let run = FrameRun.join(try frames(parts))
        var fewReadings = DecodingLimits()
        fewReadings.maximumReadings = parts[0].readings.count + 1
        #expect(throws: CodecError.self) { try BatchDecoder(limits: fewReadings).decodeRun(run) }
        var fewBytes = DecodingLimits()
        fewBytes.maximumFrameBytes = run.count - 1
        do {
            _ = try BatchDecoder(limits: fewBytes).decodeRun(run)
            Issue.record("a run over the byte limit decoded")
        } catch {
            #expect(error.code == .limitExceeded)
        }
    }
}
