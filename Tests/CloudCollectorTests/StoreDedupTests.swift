import CloudCollector
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

/// The store on its own: every (device, stream, seq) is stored exactly once, whatever the order,
/// overlap or repetition of batches, and whichever store instance sees them.
struct StoreDedupTests {
    private func withStore<T>(_ body: (SQLiteReadingStore, String) throws -> T) throws -> T {
        try withTemporaryDirectory(prefix: "collector-store") { directory in
            let path = (directory as NSString).appendingPathComponent("collector.sqlite")
            return try body(try SQLiteReadingStore(path: path), path)
        }
    }

    /// Series keys and devices are bytes: "é" precomposed and decomposed are two series.
    @Test func canonicallyEquivalentKeysAreTwoSeries() throws {
        try withStore { store, path in
            let keys = ["caf\u{e9} v", "cafe\u{301} v"]
            let first = Batch(
                device: "gw", stream: 1, firstSequence: 1, seriesKeys: [keys[0]],
                readings: [Reading(series: 0, timestamp: 1, value: 1)])
            let second = Batch(
                device: "gw", stream: 1, firstSequence: 2, seriesKeys: [keys[1]],
                readings: [Reading(series: 0, timestamp: 2, value: 2)])
            _ = try store.store([first], receivedAt: 0)
            _ = try store.store([second], receivedAt: 0)
            let stored = try Fixtures.storedReadings(databasePath: path)
            #expect(stored.map { Array($0.seriesKey.utf8) } == keys.map { Array($0.utf8) })
        }
    }

    @Test func sameBatchTwiceIsStoredOnce() throws {
        try withStore { store, path in
            let batch = Fixtures.batch(first: 1, count: 500)
            let first = try store.store([batch], receivedAt: 0)
            let second = try store.store([batch], receivedAt: 0)
            #expect(first.outcomes == [StoreOutcome(accepted: 500, duplicates: 0)])
            #expect(second.outcomes == [StoreOutcome(accepted: 0, duplicates: 500)])
            #expect(try Fixtures.storedReadings(databasePath: path) == Fixtures.expected([batch]))
            #expect(
                try store.receivedRanges(of: StreamKey(device: batch.device, stream: batch.stream)).ranges == [
                    SequenceRange(1, 500)
                ])
        }
    }

    @Test func overlappingBatchesStoreOnlyTheNewParts() throws {
        try withStore { store, path in
            let batches = [
                Fixtures.batch(first: 1, count: 100),
                Fixtures.batch(first: 51, count: 100),  // half new
                Fixtures.batch(first: 201, count: 50),  // leaves a gap 151...200
                Fixtures.batch(first: 120, count: 120),  // fills the gap and overlaps both sides
            ]
            let outcomes = try batches.map { try store.store([$0], receivedAt: 0).outcomes[0] }
            #expect(outcomes.map(\.accepted) == [100, 50, 50, 50])
            #expect(outcomes.map(\.duplicates) == [0, 50, 0, 70])
            #expect(try Fixtures.storedReadings(databasePath: path) == Fixtures.expected(batches))
            let key = StreamKey(device: "gateway-1", stream: batches[0].stream)
            #expect(try store.receivedRanges(of: key).ranges == [SequenceRange(1, 250)])
        }
    }

    @Test func batchesInReverseOrderAndInOneGroup() throws {
        try withStore { store, path in
            let batches = (0..<20).map { Fixtures.batch(first: UInt64($0 * 37 + 1), count: 50) }  // overlapping
            // Half one by one in reverse, the rest (and repeats) as one transaction.
            for batch in batches[10...].reversed() { _ = try store.store([batch], receivedAt: 0) }
            let group = Array(batches[..<10].reversed()) + batches
            let commit = try store.store(group, receivedAt: 0)
            #expect(commit.outcomes.count == group.count)
            let total = commit.outcomes.reduce(0) { $0 + $1.accepted }
            #expect(try Fixtures.storedReadings(databasePath: path) == Fixtures.expected(batches))
            #expect(total == 10 * 37)  // the first ten batches' sequences below the later ones' start
        }
    }

    /// Every other reading first (a thousand gaps), then one batch over everything fills them all.
    @Test func manyGapsCloseIntoOneRange() throws {
        try withStore { store, path in
            let odd = (0..<1000).map { Fixtures.batch(first: UInt64(2 * $0 + 1), count: 1) }
            let commit = try store.store(odd, receivedAt: 0)
            #expect(commit.outcomes.allSatisfy { $0.accepted == 1 })
            let key = StreamKey(device: "gateway-1", stream: odd[0].stream)
            #expect(try store.receivedRanges(of: key).ranges.count == 1000)
            let all = Fixtures.batch(first: 1, count: 2000)
            #expect(try store.store([all], receivedAt: 0).outcomes == [StoreOutcome(accepted: 1000, duplicates: 1000)])
            #expect(try store.receivedRanges(of: key).ranges == [SequenceRange(1, 2000)])
            #expect(try Fixtures.storedReadings(databasePath: path) == Fixtures.expected([all]))
        }
    }

    @Test func streamsAndDevicesAreSeparate() throws {
        try withStore { store, path in
            let batches = [
                Fixtures.batch(device: "a", stream: 1, first: 1, count: 10),
                Fixtures.batch(device: "a", stream: 2, first: 1, count: 10),
                Fixtures.batch(device: "b", stream: 1, first: 1, count: 10),
                Fixtures.batch(device: "b", stream: UInt64.max, first: 1, count: 10),
            ]
            let commit = try store.store(batches, receivedAt: 0)
            #expect(commit.outcomes.allSatisfy { $0.accepted == 10 })
            #expect(try Fixtures.storedReadings(databasePath: path) == Fixtures.expected(batches))
        }
    }

    /// Two stores on one database (as two collector processes): each must notice what the other
    /// committed even though its cache says otherwise.
    @Test func twoStoresSharingOneDatabaseReloadStaleRanges() throws {
        try withStore { first, path in
            let second = try SQLiteReadingStore(path: path)
            let a = Fixtures.batch(first: 1, count: 100)
            let b = Fixtures.batch(first: 101, count: 100)
            let c = Fixtures.batch(first: 150, count: 100)
            #expect(try first.store([a], receivedAt: 0).outcomes[0].accepted == 100)
            #expect(try second.store([b], receivedAt: 0).outcomes[0].accepted == 100)
            // `first` cached [1, 100]; the database says [1, 200].
            let outcome = try first.store([c], receivedAt: 0).outcomes[0]
            #expect(outcome == StoreOutcome(accepted: 49, duplicates: 51))  // 150...200 were stored by `second`
            #expect(try second.store([a, b, c], receivedAt: 0).outcomes.allSatisfy { $0.accepted == 0 })
            #expect(try Fixtures.storedReadings(databasePath: path) == Fixtures.expected([a, b, c]))
        }
    }

    @Test func valuesKeepTheirExactBits() throws {
        let awkward: [Double] = [
            -0.0, 0.0, .nan, -Double.nan, Double(bitPattern: 0x7FF0_0000_0000_0001),
            Double(bitPattern: 0xFFF8_DEAD_BEEF_0042),
            .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .greatestFiniteMagnitude, 1.5,
            Double(bitPattern: 0x7FF4_0000_0000_0000),
        ]
        try withStore { store, path in
            let readings = awkward.enumerated().map {
                Reading(series: 0, timestamp: Int64($0.offset), value: $0.element)
            }
            let batch = Batch(device: "g", stream: 9, firstSequence: 1, seriesKeys: ["x"], readings: readings)
            // Through the codec first, as the collector receives it.
            let decoded = try BatchDecoder().decode(try BatchEncoder().encode(batch))
            _ = try store.store([decoded], receivedAt: 0)
            let stored = try Fixtures.storedReadings(databasePath: path)
            #expect(stored.map(\.valueBits) == awkward.map(\.bitPattern))
        }
    }

    @Test func droppedRangesAreRecorded() throws {
        try withStore { store, path in
            let report = DroppedRangesReport(
                device: "g", stream: 7, dropped: [SequenceRange(1, 10), SequenceRange(20, 30)])
            try store.recordDropped(report, device: "g", receivedAt: 5)
            try store.recordDropped(report, device: "g", receivedAt: 6)  // a re-sent report adds nothing
            let database = try SQLiteDatabase(path: path)
            let select = try database.prepare(
                "SELECT first_seq, last_seq FROM dropped_ranges JOIN streams USING (stream_ref) WHERE device = 'g' AND stream = '7' ORDER BY first_seq"
            )
            var ranges: [[Int64]] = []
            while try select.step() { ranges.append([select.int64(at: 0), select.int64(at: 1)]) }
            #expect(ranges == [[1, 10], [20, 30]])
        }
    }

    @Test func realDataRoundTripsThroughStorage() throws {
        let datasets = try RealDataset.loadAll()
        try withStore { store, path in
            var all: [Batch] = []
            for (index, dataset) in datasets.enumerated() {
                let batches = dataset.batches(of: 10_000, device: "gw-\(index)", stream: UInt64(index + 1))
                    .prefix(5)
                all += batches
                _ = try store.store(Array(batches), receivedAt: 0)
            }
            #expect(try Fixtures.storedReadings(databasePath: path) == Fixtures.expected(all))
        }
    }
}
