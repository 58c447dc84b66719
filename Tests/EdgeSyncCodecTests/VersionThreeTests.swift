import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation
import Testing

/// Format version 3 beside version 2: the shared value section, the rows order and the
/// front-coded keys, on shapes that reach each of them.
@Suite("Version 3")
struct VersionThreeTests {
    let decoder = BatchDecoder()

    func encode(_ batch: Batch, _ version: FormatVersion, deflate: Int? = nil) throws -> [UInt8] {
        try BatchEncoder(options: EncodingOptions(deflateLevel: deflate, version: version)).encode(batch)
    }

    /// `series` series of a few readings each, in rows that lose series as they end (as a gateway's
    /// loads do), starting mid-row; values are short decimals at mixed scales with edge values.
    static func gatewayBatch(seed: UInt64, seriesCount: Int, rows: Int, edgeValues: Bool) -> Batch {
        var random = SeededRandom(seed: seed)
        let lengths: [Int] = (0..<seriesCount).map { _ in Int.random(in: 1...rows, using: &random) }
        let scales: [Double] = (0..<seriesCount).map { _ in [1.0, 1e3, 1e5, 1e7, 1e10].randomElement(using: &random) ?? 1 }
        let periods: [Int] = (0..<seriesCount).map { _ in Int.random(in: 1...7, using: &random) }
        var readings: [Reading] = []
        for row in 0..<rows {
            for series in 0..<seriesCount where row < lengths[series] {
                let noise: Int = Int.random(in: -99_999...99_999, using: &random) / 50
                let wave: Int = 1000 * (row % periods[series])
                var value: Double = Double(noise + wave) / scales[series]
                if edgeValues, Int.random(in: 0..<40, using: &random) == 0 {
                    value = Fixtures.edgeValues.randomElement(using: &random) ?? 0
                }
                readings.append(Reading(series: series, timestamp: 1_372_636_800_000_000_000 + Int64(row) * 33_333, value: value))
            }
        }
        let drop = Int.random(in: 0..<min(seriesCount, readings.count), using: &random)
        return Batch(
            device: "gw", stream: seed, firstSequence: 1 + seed, seriesKeys: (0..<seriesCount).map { "plaid,appliance=type\($0 % 11),load=p\($0) current" },
            readings: Array(readings.dropFirst(drop)).map { $0 }, sentAt: 0)
    }

    @Test("many short series round-trip exactly, plain and deflated, and v2 gives the same readings", arguments: 0..<40)
    func manyShortSeries(seed: UInt64) throws {
        let batch = Self.gatewayBatch(seed: seed, seriesCount: [2, 3, 17, 200, 1100][Int(seed % 5)], rows: Int(seed % 9) + 1, edgeValues: seed % 2 == 0)
        let v3 = try decoder.decode(encode(batch, .v3))
        #expect(v3 == batch)
        #expect(try decoder.decode(encode(batch, .v3, deflate: 6)) == batch)
        let v2 = try decoder.decode(encode(batch, .v2))
        #expect(v2.readings == v3.readings && v2.seriesKeys == v3.seriesKeys)
    }

    @Test("a v2 frame and a v3 frame of the same readings decode to identical readings")
    func sameReadingsInBothVersions() throws {
        var batches = try RealDataset.loadAll().map { $0.batches(of: 10_000)[0] }
        batches.append(Self.gatewayBatch(seed: 77, seriesCount: 300, rows: 12, edgeValues: true))
        batches.append(Fixtures.randomBatch(seed: 4, count: 5000, seriesCount: 9))
        for batch in batches {
            let v2 = try decoder.decode(encode(batch, .v2))
            let v3 = try decoder.decode(encode(batch, .v3))
            #expect(v2.sentAt == batch.sentAt)
            #expect(v3.sentAt == 0)
            var withoutClock = v2
            withoutClock.sentAt = 0
            #expect(withoutClock == v3)
        }
    }

    @Test("every real dataset round-trips exactly at 10,000 and 100,000 readings, plaid included")
    func realDatasets() throws {
        for file in RealDataset.codecFileNames {
            let dataset = try RealDataset.load(RealDataset.defaultDirectory.appendingPathComponent(file))
            for size in [10_000, 100_000] {
                for batch in dataset.batches(of: size) {
                    var expected = batch
                    expected.sentAt = 0
                    #expect(try decoder.decode(encode(batch, .v3)) == expected, "\(dataset.name) batch at \(batch.firstSequence)")
                }
            }
        }
    }

    @Test("plaid in 100,000-reading batches takes at most 2 bytes a reading")
    func plaidBudget() throws {
        let dataset = try RealDataset.load(RealDataset.defaultDirectory.appendingPathComponent("plaid.lp.gz"))
        let bytes = try dataset.batches(of: 100_000).reduce(0) { $0 + (try encode($1, .v3)).count }
        let v2Bytes = try dataset.batches(of: 100_000).reduce(0) { $0 + (try encode($1, .v2)).count }
        #expect(Double(bytes) / Double(dataset.readings.count) <= 2.0)
        #expect(bytes < v2Bytes)
    }

    @Test("every edge value in a series among many keeps its exact bits")
    func edgeValuesAmongManySeries() throws {
        let values = Fixtures.edgeValues
        var readings: [Reading] = []
        for (index, value) in values.enumerated() {
            for series in 0..<40 {
                readings.append(Reading(series: series, timestamp: Int64(index), value: series == 3 ? value : Double(series * 10 + index) / 8))
            }
        }
        let batch = Batch(device: "gw", stream: 1, firstSequence: 1, seriesKeys: (0..<40).map { "s\($0)" }, readings: readings)
        #expect(try decoder.decode(encode(batch, .v3)) == batch)
        // Every series an edge value, in every position.
        for rotation in 0..<values.count {
            let rotated = Array(values[rotation...] + values[..<rotation])
            let mixed = Batch(
                device: "gw", stream: 1, firstSequence: 1, seriesKeys: (0..<rotated.count).map { "k\($0)" },
                readings: rotated.enumerated().map { Reading(series: $0.offset, timestamp: 5, value: $0.element) }
                    + rotated.enumerated().map { Reading(series: ($0.offset + 1) % rotated.count, timestamp: 6, value: $0.element) })
            #expect(try decoder.decode(encode(mixed, .v3)) == mixed)
        }
    }

    @Test("lossy series among many short ones keep their bound; the others stay exact")
    func lossyAmongMany() throws {
        let batch = Self.gatewayBatch(seed: 5, seriesCount: 300, rows: 6, edgeValues: false)
        let bounds = Dictionary(uniqueKeysWithValues: batch.seriesKeys.enumerated().filter { $0.offset % 3 == 0 }.map { ($0.element, 0.01) })
        let decoded = try decoder.decode(BatchEncoder(options: EncodingOptions(errorBounds: bounds)).encode(batch))
        #expect(decoded.readings.count == batch.readings.count)
        for (original, restored) in zip(batch.readings, decoded.readings) {
            #expect(original.series == restored.series && original.timestamp == restored.timestamp)
            if original.series % 3 == 0 {
                #expect((original.value - restored.value).magnitude <= 0.01)
            } else {
                #expect(original.value.bitPattern == restored.value.bitPattern)
            }
        }
    }

    @Test("keys that share prefixes, suffixes or nothing, and prefixes of each other, round-trip byte for byte")
    func frontCodedKeys() throws {
        let keys = [
            "a", "ab", "abc", "ab", "b", "plaid,load=p1 current", "plaid,load=p2 current", "plaid,load=p10 current",
            "plaid,load=p1", "caf\u{e9}", "cafe\u{301}", "\u{1F321}\u{FE0F}", "\u{1F321}", "x", "y", String(repeating: "z", count: 1024),
        ].enumerated().map { $0.offset == 3 ? "abd" : $0.element }
        let batch = Batch(
            device: "gw", stream: 1, firstSequence: 1, seriesKeys: keys,
            readings: keys.indices.map { Reading(series: $0, timestamp: Int64($0), value: Double($0)) })
        let decoded = try decoder.decode(encode(batch, .v3))
        #expect(decoded.seriesKeys.map { Array($0.utf8) } == keys.map { Array($0.utf8) })
        #expect(decoded.readings == batch.readings)
    }

    @Test("the default writes version 3 and version 2 stays available")
    func versionChoice() throws {
        let batch = Fixtures.randomBatch(seed: 1, count: 10, seriesCount: 2)
        #expect(try BatchEncoder().encode(batch)[4] == 3)
        #expect(try BatchEncoder(options: EncodingOptions(version: .v2)).encode(batch)[4] == 2)
        #expect(FrameHeader.supportedVersions == [2, 3])
    }

    @Test("a version 2 frame cannot use the version 3 rows order")
    func rowsOrderIsVersionThreeOnly() throws {
        let batch = Self.gatewayBatch(seed: 3, seriesCount: 50, rows: 4, edgeValues: false)
        let frame = try encode(batch, .v3)
        var relabelled = frame
        relabelled[4] = 2
        HostileInputTests.fixChecksum(&relabelled)
        #expect(throws: CodecError.self) { try decoder.decode(relabelled) }
    }

    @Test("hostile key and value sections are refused before allocating", arguments: [1, 2, 3])
    func hostileCounts(kind: Int) throws {
        // Payload: device "gw", stream, first sequence 1, then a reading count and a series count.
        var payload: [UInt8] = [2] + Array("gw".utf8) + [UInt8](repeating: 0, count: 8) + [1]
        switch kind {
        case 1:
            // 100,000 series declared with a handful of bytes left.
            payload += [0] + [0xA0, 0x8D, 0x06] + [0, 0, 0, 0]
        case 2:
            // One key whose own length is 2^40.
            payload += [0, 1, 0, 0, 0, 0, 0, 0x82, 0x80, 0x80, 0x80, 0x80, 0x20] + Array("a".utf8)
        default:
            // Two keys: the second shares more bytes than the first has.
            payload += [0, 2, 1, 0, 9, 1, 0, 0, 1, 0, 1, 1] + Array("ab".utf8)
        }
        var frame: [UInt8] = [0x45, 0x53, 0x59, 0x42, 3, 0] + [UInt8](repeating: 0, count: 8) + payload + [0, 0, 0, 0]
        HostileInputTests.fixLengthsAndChecksum(&frame)
        let error = #expect(throws: CodecError.self) { try decoder.decode(frame) }
        #expect(error != nil)
    }
}
