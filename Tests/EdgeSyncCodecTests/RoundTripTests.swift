import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation
import Testing

@Suite("Round trip")
struct RoundTripTests {
    let decoder = BatchDecoder()

    /// Encodes in both versions; the version 2 frame must decode to `batch` exactly, the version 3
    /// one to the same readings without `sentAt`. Returns the version 3 result with `sentAt` put
    /// back, so that callers compare whole batches.
    func roundTrip(_ batch: Batch, options: EncodingOptions = EncodingOptions()) throws -> Batch {
        var v2 = options
        v2.version = .v2
        let old = try decoder.decode(BatchEncoder(options: v2).encode(batch))
        var v3 = options
        v3.version = .v3
        var decoded = try decoder.decode(BatchEncoder(options: v3).encode(batch))
        #expect(decoded.sentAt == 0, "version 3 has no sender's clock")
        decoded.sentAt = batch.sentAt
        if options.errorBounds.isEmpty {
            #expect(old == decoded, "version 2 and version 3 decode to different readings")
        }
        return decoded
    }

    @Test("random batches, plain and deflated", arguments: 0..<60)
    func randomBatches(seed: UInt64) throws {
        var random = SeededRandom(seed: seed ^ 0xA5A5)
        let count = [1, 2, 3, 127, 128, 129, 1023, 1025, 5000].randomElement(using: &random) ?? 10
        let batch = Fixtures.randomBatch(seed: seed, count: count, seriesCount: Int.random(in: 1...9, using: &random))
        #expect(try roundTrip(batch) == batch)
        #expect(try roundTrip(batch, options: EncodingOptions(deflateLevel: 6)) == batch)
    }

    /// "é" precomposed and "e" + combining acute are equal as Swift `String`s but are two keys.
    @Test("canonically equivalent series keys stay two series, byte for byte")
    func canonicallyEquivalentKeys() throws {
        let keys = ["caf\u{e9} v", "cafe\u{301} v"]
        let batch = Batch(
            device: "gw", stream: 1, firstSequence: 1, seriesKeys: keys,
            readings: [Reading(series: 0, timestamp: 1, value: 1), Reading(series: 1, timestamp: 2, value: 2)])
        let decoded = try roundTrip(batch)
        #expect(decoded.seriesKeys.map { Array($0.utf8) } == keys.map { Array($0.utf8) })
        #expect(decoded.readings.map(\.series) == [0, 1])
    }

    @Test("every edge value in every position keeps its exact bits")
    func edgeValues() throws {
        for rotation in 0..<Fixtures.edgeValues.count {
            let values = Array(Fixtures.edgeValues[rotation...] + Fixtures.edgeValues[..<rotation])
            let readings = values.enumerated().map { Reading(series: 0, timestamp: Int64($0.offset), value: $0.element) }
            let decoded = try roundTrip(Fixtures.batch(readings: readings, seriesCount: 1))
            #expect(decoded.readings.map(\.value.bitPattern) == values.map(\.bitPattern))
        }
    }

    @Test("a block of one special value repeated", arguments: Fixtures.edgeValues)
    func constantSpecial(value: Double) throws {
        let readings = (0..<300).map { Reading(series: 0, timestamp: 1_000 * Int64($0), value: value) }
        let batch = Fixtures.batch(readings: readings, seriesCount: 1)
        #expect(try roundTrip(batch) == batch)
    }

    @Test("extreme timestamps and sequence numbers")
    func extremes() throws {
        let times: [Int64] = [.min, .max, 0, -1, .max, .min, 1, .min + 1, .max - 1]
        let readings = times.map { Reading(series: 0, timestamp: $0, value: 1) }
        let batch = Fixtures.batch(readings: readings, seriesCount: 1, firstSequence: UInt64.max - UInt64(times.count))
        #expect(try roundTrip(batch) == batch)
        var late = batch
        late.sentAt = .min
        #expect(try roundTrip(late) == late)
    }

    @Test("empty batch and one-reading batch")
    func smallBatches() throws {
        let empty = Fixtures.batch(readings: [], seriesCount: 0)
        #expect(try roundTrip(empty) == empty)
        let one = Fixtures.batch(readings: [Reading(series: 0, timestamp: 5, value: 2.5)], seriesCount: 1)
        #expect(try roundTrip(one) == one)
    }

    @Test("thousands of series, each with a few readings")
    func manySeries() throws {
        var random = SeededRandom(seed: 99)
        let seriesCount = 5000
        let readings = (0..<20_000).map { index in
            Reading(series: Int.random(in: 0..<seriesCount, using: &random), timestamp: Int64(index) * 10, value: Double(index % 77) / 4)
        }
        let batch = Fixtures.batch(readings: readings, seriesCount: seriesCount)
        #expect(try roundTrip(batch) == batch)
    }

    @Test("unicode device and series keys")
    func unicodeKeys() throws {
        let batch = Batch(
            device: "gateway-Zürich-🌡️", stream: 1, firstSequence: 1, seriesKeys: ["température,salle=été", "湿度"],
            readings: [Reading(series: 1, timestamp: 1, value: 55), Reading(series: 0, timestamp: 1, value: 21.5)])
        #expect(try roundTrip(batch) == batch)
    }

    @Test("the real datasets round-trip exactly, in batches of 10,000")
    func realDatasets() throws {
        for dataset in try RealDataset.loadAll() {
            #expect(dataset.readings.count > 10_000, "\(dataset.name) looks truncated")
            for batch in dataset.batches(of: 10_000) {
                #expect(try roundTrip(batch) == batch, "\(dataset.name) batch at \(batch.firstSequence)")
            }
        }
    }

    @Test("encoding is deterministic")
    func deterministic() throws {
        let batch = Fixtures.randomBatch(seed: 7, count: 3000, seriesCount: 4)
        #expect(try BatchEncoder().encode(batch) == BatchEncoder().encode(batch))
    }
}

@Suite("Lossy mode")
struct LossyTests {
    @Test("every decoded value is within the bound, and every reading is kept", arguments: [0.0005, 0.01, 0.3, 2.0, 75])
    func randomWithinBound(bound: Double) throws {
        for seed in UInt64(0)..<20 {
            let batch = Fixtures.randomBatch(seed: seed, count: 2000, seriesCount: 3)
            let options = EncodingOptions(errorBounds: Dictionary(uniqueKeysWithValues: batch.seriesKeys.map { ($0, bound) }))
            let decoded = try BatchDecoder().decode(BatchEncoder(options: options).encode(batch))
            #expect(decoded.readings.count == batch.readings.count)
            for (original, restored) in zip(batch.readings, decoded.readings) {
                #expect(original.series == restored.series && original.timestamp == restored.timestamp)
                if original.value.isFinite {
                    #expect((original.value - restored.value).magnitude <= bound, "seed \(seed): \(original.value) became \(restored.value)")
                } else {
                    #expect(original.value.bitPattern == restored.value.bitPattern)
                }
            }
        }
    }

    @Test("real data within bound and smaller than lossless")
    func realData() throws {
        for dataset in try RealDataset.loadAll() {
            let bound = 0.05
            let options = EncodingOptions(errorBounds: Dictionary(uniqueKeysWithValues: dataset.seriesKeys.map { ($0, bound) }))
            var lossyBytes = 0
            var losslessBytes = 0
            for batch in dataset.batches(of: 10_000) {
                let frame = try BatchEncoder(options: options).encode(batch)
                lossyBytes += frame.count
                losslessBytes += try BatchEncoder().encode(batch).count
                let decoded = try BatchDecoder().decode(frame)
                #expect(decoded.readings.count == batch.readings.count)
                let worst = zip(batch.readings, decoded.readings).map { ($0.value - $1.value).magnitude }.max() ?? 0
                #expect(worst <= bound, "\(dataset.name): error \(worst)")
            }
            #expect(lossyBytes <= losslessBytes, "\(dataset.name): lossy \(lossyBytes) > lossless \(losslessBytes)")
        }
    }

    @Test("a series without a bound stays exact")
    func onlyNamedSeries() throws {
        let batch = Fixtures.randomBatch(seed: 3, count: 500, seriesCount: 2)
        let options = EncodingOptions(errorBounds: [batch.seriesKeys[0]: 10])
        let decoded = try BatchDecoder().decode(BatchEncoder(options: options).encode(batch))
        let exact = zip(batch.readings, decoded.readings).filter { $0.0.series == 1 }
        #expect(exact.allSatisfy { $0.0 == $0.1 })
    }
}
