import EdgeSyncCodec
import Foundation
import Testing

/// Encoding is part of the contract: these frames are committed as hex under `Golden/` and must be
/// produced byte for byte, and decode back to their batches. `Docs/wire-format.md` walks through
/// them. Regenerate only on a deliberate format change:
/// `EDGE_SYNC_REGENERATE_GOLDEN=1 swift test --filter GoldenVectorTests`.
@Suite("Golden vectors")
struct GoldenVectorTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String
        let batch: Batch
        let options: EncodingOptions
        var testDescription: String { name }
    }

    /// Version 2 frames as that release wrote them (`Golden/*.hex`): they must still decode, and
    /// the version 2 encoder must still produce them.
    static let v2Vectors: [Vector] = baseVectors.map { vector in
        var options = vector.options
        options.version = .v2
        return Vector(name: vector.name, batch: vector.batch, options: options)
    }

    /// Version 3 frames (`Golden/v3/*.hex`) of the same batches, and of shapes only version 3 has:
    /// many short series (shared values with lags, shifts and an exception, rows order, front-coded keys).
    static let v3Vectors: [Vector] = baseVectors.map { vector in
        var batch = vector.batch
        batch.sentAt = 0
        return Vector(name: "v3/" + vector.name, batch: batch, options: vector.options)
    } + [
        Vector(name: "v3/shared-values", batch: sharedValuesBatch(), options: EncodingOptions()),
        Vector(name: "v3/rows-order", batch: rowsBatch(), options: EncodingOptions()),
    ]

    static let vectors = v2Vectors + v3Vectors

    static let baseVectors: [Vector] = [
        Vector(name: "empty", batch: Batch(device: "gw", stream: 1, firstSequence: 1, seriesKeys: [], readings: [], sentAt: 0), options: EncodingOptions()),
        Vector(
            name: "one-reading",
            batch: Batch(device: "gw-1", stream: 0x0123_4567_89AB_CDEF, firstSequence: 42, seriesKeys: ["temp"],
                readings: [Reading(series: 0, timestamp: 1_700_000_000_000_000_000, value: 21.5)], sentAt: 1_700_000_000_500_000_000),
            options: EncodingOptions()),
        Vector(
            name: "rows-with-missing-cell",
            batch: Batch(device: "gw-1", stream: 7, firstSequence: 100, seriesKeys: ["isig", "glucose"],
                readings: [
                    Reading(series: 0, timestamp: 1_000_000_000_000, value: 22.59), Reading(series: 1, timestamp: 1_000_000_000_000, value: 258),
                    Reading(series: 0, timestamp: 1_300_000_000_000, value: 22.52), Reading(series: 1, timestamp: 1_300_000_000_000, value: 260),
                    Reading(series: 1, timestamp: 1_600_000_000_000, value: 258),
                    Reading(series: 0, timestamp: 1_900_000_000_000, value: 22.23), Reading(series: 1, timestamp: 1_900_000_000_000, value: 255),
                ], sentAt: 2_000_000_000_000),
            options: EncodingOptions()),
        Vector(
            name: "special-values",
            batch: Batch(device: "edge", stream: .max, firstSequence: 1, seriesKeys: ["x"],
                readings: [0, -0.0, .infinity, -.infinity, Double(bitPattern: 0x7FF8_DEAD_BEEF_0001), .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1.5]
                    .enumerated().map { Reading(series: 0, timestamp: Int64($0.offset) * 1_000_000_000, value: $0.element) },
                sentAt: -1),
            options: EncodingOptions()),
        Vector(
            name: "float-artefacts",
            batch: Batch(device: "bike", stream: 3, firstSequence: 9, seriesKeys: ["altitude"],
                readings: [13.200000000000044, 13.0, 13.200000000000044, 12.799999999999956, 13.0, 13.399999999999977, 13.399999999999977, 13.600000000000023, 13.799999999999956, 14.0]
                    .enumerated().map { Reading(series: 0, timestamp: Int64($0.offset) * 1_000_000_000, value: $0.element) },
                sentAt: 0),
            options: EncodingOptions()),
        Vector(
            name: "pattern-rows",
            batch: Batch(device: "gw-2", stream: 98, firstSequence: 5, seriesKeys: ["a", "b", "c"],
                readings: (0..<45).filter { $0 != 20 }.map { Reading(series: $0 % 3, timestamp: Int64($0 / 3) * 60_000_000_000, value: Double($0 % 7) * 0.5) },
                sentAt: 5),
            options: EncodingOptions()),
        Vector(
            name: "deflated",
            batch: Batch(device: "gw-2", stream: 99, firstSequence: 1, seriesKeys: ["a", "b", "c"],
                readings: (0..<60).map { Reading(series: $0 % 3, timestamp: Int64($0 / 3) * 60_000_000_000, value: Double($0 % 7) * 0.5) },
                sentAt: 5),
            options: EncodingOptions(deflateLevel: 6)),
        Vector(
            name: "lossy-bound-0.05",
            batch: Batch(device: "gw-3", stream: 4, firstSequence: 1, seriesKeys: ["noisy"],
                readings: [20.0137, 20.0491, 19.9822, 20.1275, 20.0963].enumerated().map { Reading(series: 0, timestamp: Int64($0.offset), value: $0.element) },
                sentAt: 0),
            options: EncodingOptions(errorBounds: ["noisy": 0.05])),
        // Version 2: Huffman-coded residuals. 300 readings 5 minutes apart give one repeated
        // timestamp residual (a single-symbol code, no stream bits); the values are a noisy walk.
        Vector(
            name: "entropy-coded",
            batch: Batch(device: "cgm", stream: 11, firstSequence: 1, seriesKeys: ["isig"],
                readings: entropyCodedReadings(),
                sentAt: 1_269_514_260_000_000_000),
            options: EncodingOptions()),
        // Whole-second timestamps with irregular steps (residual divisor 10^9) and GPS-like
        // positions in steps of 16 (divisor 16).
        Vector(
            name: "entropy-divisor",
            batch: Batch(device: "bike", stream: 12, firstSequence: 1, seriesKeys: ["position_lat"],
                readings: divisorReadings(),
                sentAt: 0),
            options: EncodingOptions()),
        // Altitude computed as raw / 5 - 500 in binary floating point: decimal with offsets, where
        // a repeated mantissa predicts its offset.
        Vector(
            name: "predicted-offsets",
            batch: Batch(device: "bike", stream: 13, firstSequence: 1, seriesKeys: ["altitude"],
                readings: altitudeReadings(),
                sentAt: 0),
            options: EncodingOptions()),
    ]

    /// Six series of four readings: a period-2 waveform (lag 2), a slow ramp (lag 1), values at
    /// 1e-6 and at 1e3 (own exponents and shifts), one NaN (an exception), one series of noise
    /// bits (its own value column).
    static func sharedValuesBatch() -> Batch {
        let keys = (1...6).map { "plug,appliance=type0,load=p000\($0) current" }
        var readings: [Reading] = []
        for row in 0..<4 {
            let time: Int64 = 1_372_636_800_000_000_000 + Int64(row) * 33_333
            let values: [Double] = [
                row % 2 == 0 ? 0.17339 : 0.080702, 1.25 + Double(row) / 100, [4.9667e-6, -3.1e-6, 5.0e-6, -2.9e-6][row],
                [1250.0, 1300.0, 1180.0, 1410.0][row], row == 2 ? .nan : 21.5, Double(bitPattern: 0x3FF1_2345_6789_ABCD &+ UInt64(row) &* 0x1_0001_0001),
            ]
            for (series, value) in values.enumerated() { readings.append(Reading(series: series, timestamp: time, value: value)) }
        }
        return Batch(device: "gw", stream: 0x0A0B, firstSequence: 41, seriesKeys: keys, readings: readings, sentAt: 0)
    }

    /// Five series in rows at one time each; the batch starts mid-row, series 3 leaves after the
    /// second row and comes back in the fourth.
    static func rowsBatch() -> Batch {
        var readings: [Reading] = []
        for row in 0..<4 {
            for series in 0..<5 where !(series == 3 && row == 2) && !(row == 0 && series < 2) {
                readings.append(Reading(series: series, timestamp: 1_000 + Int64(row) * 500, value: Double(10 * series + row)))
            }
        }
        let keys = ["room,floor=1 t", "room,floor=2 t", "room,floor=3 t", "room,floor=4 t", "room,floor=5 t"]
        return Batch(device: "gw", stream: 9, firstSequence: 1, seriesKeys: keys, readings: readings, sentAt: 0)
    }

    static func entropyCodedReadings() -> [Reading] {
        (0..<300).map { (index: Int) -> Reading in
            let hundredths: Int = 2259 + (index * index * 7 + index * 13) % 41 - (index % 9) * 3
            let time: Int64 = 1_269_424_260_000_000_000 + Int64(index) * 300_000_000_000
            return Reading(series: 0, timestamp: time, value: Double(hundredths) / 100)
        }
    }

    static func divisorReadings() -> [Reading] {
        (0..<40).map { (index: Int) -> Reading in
            let seconds: Int64 = Int64(index) + Int64((index * index) % 3)
            let semicircles: Int = -138_827_872 + 16 * ((index * 29) % 17) + 16 * index * 12
            return Reading(series: 0, timestamp: seconds * 1_000_000_000, value: Double(semicircles))
        }
    }

    static func altitudeReadings() -> [Reading] {
        let wobble: [Int] = [0, 1, 2, 3, 2, 1]
        return (0..<48).map { (index: Int) -> Reading in
            let raw: Int = 2564 + wobble[index % 6] + index / 12
            return Reading(series: 0, timestamp: Int64(index) * 1_000_000_000, value: Double(raw) / 5 - 500)
        }
    }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static func hex(_ bytes: [UInt8]) -> String {
        stride(from: 0, to: bytes.count, by: 16).map { start in
            bytes[start..<min(start + 16, bytes.count)].map { byte in
                let digits = String(byte, radix: 16)
                return digits.count == 1 ? "0" + digits : digits
            }.joined(separator: " ")
        }.joined(separator: "\n") + "\n"
    }

    static func bytes(fromHex text: String) -> [UInt8]? {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        let bytes = tokens.compactMap { UInt8($0, radix: 16) }
        return bytes.count == tokens.count ? bytes : nil
    }

    @Test("frames are stable byte for byte and decode back", arguments: vectors)
    func golden(vector: Vector) throws {
        let file = Self.directory.appendingPathComponent("\(vector.name).hex")
        let encoded = try BatchEncoder(options: vector.options).encode(vector.batch)
        if ProcessInfo.processInfo.environment["EDGE_SYNC_REGENERATE_GOLDEN"] == "1" {
            try Self.hex(encoded).write(to: file, atomically: true, encoding: .utf8)
        }
        let text = try String(contentsOf: file, encoding: .utf8)
        let golden = try #require(Self.bytes(fromHex: text), "\(file.lastPathComponent) is not hex")
        #expect(encoded == golden, "encoding of \(vector.name) changed; the wire format is a contract")
        let decoded = try BatchDecoder().decode(golden)
        if vector.options.errorBounds.isEmpty {
            #expect(decoded == vector.batch)
        } else {
            #expect(decoded.readings.count == vector.batch.readings.count)
        }
    }
}
