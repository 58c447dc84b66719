import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

@testable import CloudCollector

/// Merging small column blocks (decision 0027) against the row layout as the oracle: before,
/// during and after merges, and after merges that fail midway, every query answers as on rows and
/// every reading is there once.
@Suite struct BlockMergeTests {
    /// Blocks and readings in the block database at `path`.
    static func contents(_ path: String) throws -> (blocks: Int64, readings: Int64, merged: Int64) {
        let database = try SQLiteDatabase(path: path)
        let select = try database.prepare(
            "SELECT count(*), coalesce(sum(readings), 0), coalesce(sum(substr(data, 1, 1) = x'02'), 0) FROM reading_blocks"
        )
        _ = try select.step()
        return (select.int64(at: 0), select.int64(at: 1), select.int64(at: 2))
    }

    /// Runs steps until one is idle; returns the merges they made.
    @discardableResult
    static func mergeAll(_ merger: inout BlockMerger, _ path: String) throws -> Int {
        let database = try SQLiteDatabase(path: path)
        var merges = 0
        for _ in 0..<100_000 {
            switch try merger.step(in: database) {
            case .merged: merges += 1
            case .scanned: continue
            case .idle: return merges
            }
        }
        Issue.record("merging did not come to rest")
        return merges
    }

    /// Ingest cuts blocks of at most 13 readings; merges make blocks of up to `target`, reading
    /// `scan` summaries a step, so chunk edges and several passes all happen.
    @Test(arguments: [(200, 64), (4_096, 4_096), (31, 7)])
    func mergedBlocksAnswerAsRows(target: Int, scan: Int) async throws {
        let groups = PostgresQueryTests.groups()
        try await BlockLayoutTests.withBothLayouts(groups: groups, blockReadings: 13) { rows, blocks, path in
            let before = try Self.contents(path)
            var merger = BlockMerger(configuration: .init(targetReadings: target, scanBlocks: scan))
            let merges = try Self.mergeAll(&merger, path)
            let after = try Self.contents(path)
            #expect(merges > 0 && after.merged > 0)
            #expect(after.blocks < before.blocks, "\(before.blocks) blocks before, \(after.blocks) after")
            #expect(after.readings == before.readings)
            try await BlockLayoutTests.expectSameAnswers(groups, rows, blocks)
            // At rest: another round finds nothing more.
            #expect(try Self.mergeAll(&merger, path) == 0)
        }
    }

    /// A cursor taken before merges goes on after them to exactly the readings that followed it:
    /// merged blocks keep their readings' positions.
    @Test func cursorsSurviveMerges() async throws {
        let groups = PostgresQueryTests.groups()
        try await BlockLayoutTests.withBothLayouts(groups: groups, blockReadings: 13) { rows, blocks, path in
            for summary in try await rows.series(device: nil, prefix: "", limit: 100) {
                let a = try #require(try await rows.series(device: summary.device, key: summary.series))
                let b = try #require(try await blocks.series(device: summary.device, key: summary.series))
                let everything = try await PostgresQueryTests.walk(rows, a, from: .min, to: .max, limit: 37, fetch: 37)
                    .flatMap(\.readings).map(PostgresQueryTests.Seen.init)
                guard let cut = try await blocks.pageEnd(of: b, after: nil, from: .min, to: .max, limit: 37) else {
                    continue
                }
                let head = try await blocks.readings(
                    of: b, after: nil, through: cut.last, from: .min, to: .max, limit: 37)
                var merger = BlockMerger(configuration: .init(targetReadings: 500, scanBlocks: 64))
                try Self.mergeAll(&merger, path)
                let tail = try await PostgresQueryTests.walk(
                    blocks, b, from: .min, to: .max, limit: 37, fetch: 37, after: cut.last)
                let seen = (head + tail.flatMap(\.readings)).map(PostgresQueryTests.Seen.init)
                #expect(seen == everything, "\(summary.series)")
            }
        }
    }

    struct Abort: Error {}

    /// A merge that fails after all its writes, just before its commit (as a kill there would
    /// leave it), leaves the blocks as they were; merging again later finishes the job. At every
    /// point the block database answers as the rows.
    @Test(arguments: [1, 9])
    func aMergeAbortedBeforeItsCommitLeavesNothingBehind(failingMerge: Int) async throws {
        let groups = PostgresQueryTests.groups()
        try await BlockLayoutTests.withBothLayouts(groups: groups, blockReadings: 13) { rows, blocks, path in
            var merger = BlockMerger(configuration: .init(targetReadings: 200, scanBlocks: 64))
            var merges = 0
            merger.beforeCommit = {
                merges += 1
                if merges == failingMerge { throw Abort() }
            }
            let database = try SQLiteDatabase(path: path)
            var failed = false
            while !failed {
                let before = try Self.contents(path)
                do {
                    if try merger.step(in: database) == .idle { break }
                } catch is Abort {
                    failed = true
                    #expect(try Self.contents(path) == before)
                    try await BlockLayoutTests.expectSameAnswers(groups, rows, blocks)
                }
            }
            #expect(failed)
            merger.beforeCommit = nil
            try Self.mergeAll(&merger, path)
            #expect(try Self.contents(path).merged > 0)
            try await BlockLayoutTests.expectSameAnswers(groups, rows, blocks)
        }
    }

    /// New batches after merges land in new blocks whose positions follow the merged ones, and
    /// those merge too: the answers stay the rows'.
    @Test func ingestAndMergesInterleave() async throws {
        let groups = PostgresQueryTests.groups()
        try await withTemporaryDirectory(prefix: "block-merge") { directory in
            var configuration = SQLiteReadingStore.Configuration()
            let rowStore = try SQLiteReadingStore(path: directory + "/rows.sqlite", configuration: configuration)
            configuration.layout = .blocks
            configuration.blockReadings = 100
            configuration.mergeRestBlocks = 1
            let blockStore = try SQLiteReadingStore(path: directory + "/blocks.sqlite", configuration: configuration)
            for group in groups {
                _ = try rowStore.store(group.batches, receivedAt: group.receivedAt)
                _ = try blockStore.store(group.batches, receivedAt: group.receivedAt)
                // A few merge steps after each group, as the writer makes between batches.
                for _ in 0..<3 where blockStore.performMaintenance() {}
            }
            while blockStore.performMaintenance() {}
            #expect(try Self.contents(directory + "/blocks.sqlite").merged > 0)
            try await BlockLayoutTests.expectSameAnswers(
                groups, try SQLiteReadingQueries(databasePath: directory + "/rows.sqlite"),
                try SQLiteReadingQueries(databasePath: directory + "/blocks.sqlite"))
        }
    }

    /// Forwards to a SQLite store and reports each time background work comes to rest, with the
    /// batches stored by then.
    final class ObservedStore: ReadingStore {
        let inner: SQLiteReadingStore
        let rested: AsyncStream<Int>.Continuation
        var stored = 0

        init(_ inner: SQLiteReadingStore, rested: AsyncStream<Int>.Continuation) {
            self.inner = inner
            self.rested = rested
        }

        func store(_ batches: [Batch], receivedAt: Int64) throws -> StoreCommit {
            let commit = try inner.store(batches, receivedAt: receivedAt)
            stored += batches.count
            return commit
        }

        func recordDropped(_ report: DroppedRangesReport, device: String, receivedAt: Int64) throws {
            try inner.recordDropped(report, device: device, receivedAt: receivedAt)
        }

        func receivedRanges(of stream: StreamKey) throws -> SequenceRangeSet { try inner.receivedRanges(of: stream) }

        func performMaintenance() -> Bool {
            let more = inner.performMaintenance()
            if !more { rested.yield(stored) }
            return more
        }
    }

    /// The writer merges blocks by itself once no batch waits.
    @Test func theWriterMergesWhenIdle() async throws {
        try await withTemporaryDirectory(prefix: "block-merge-writer") { directory in
            let path = directory + "/collector.sqlite"
            var configuration = SQLiteReadingStore.Configuration()
            configuration.layout = .blocks
            configuration.blockReadings = 64
            configuration.mergeRestBlocks = 1
            let (rested, continuation) = AsyncStream.makeStream(of: Int.self)
            let store = ObservedStore(
                try SQLiteReadingStore(path: path, configuration: configuration), rested: continuation)
            let writer = IngestWriter(store: store)
            let batches = (0..<40).map { Fixtures.batch(first: UInt64($0 * 30 + 1), count: 30) }
            for batch in batches { _ = try await writer.submit(batch) }
            for await stored in rested where stored == batches.count { break }
            let contents = try Self.contents(path)
            #expect(contents.readings == 1_200)
            // 40 batches of three series left 120 blocks of 10. Runs take blocks of at most 32 (half
            // the target) up to 64 readings, so at rest two neighbours are never both small: how
            // they group depends on how merges fell between batches, but no series keeps more
            // than 400 / 33 + 1 blocks.
            #expect(contents.merged > 0 && contents.blocks <= 39, "\(contents.blocks) blocks")
            let database = try SQLiteDatabase(path: path)
            let neighbours = try database.prepare(
                """
                SELECT count(*) FROM reading_blocks AS a JOIN reading_blocks AS b ON b.series_id = a.series_id
                AND b.block_id = (SELECT min(block_id) FROM reading_blocks WHERE series_id = a.series_id AND block_id > a.block_id)
                WHERE a.readings <= 32 AND b.readings <= 32 AND b.block_id < (SELECT max(block_id) FROM reading_blocks)
                """)
            _ = try neighbours.step()
            #expect(neighbours.int64(at: 0) == 0)
            await writer.close()
        }
    }

    /// A merged block (format 2) round-trips its positions, and every cut of it throws.
    @Test func positionedBlocksRoundTripAndRefuseCuts() throws {
        let count = 40
        let offsets = (0..<count).map { Int64($0 * 2) }
        let timestamps = (0..<count).map { 1_700_000_000_000_000_000 + Int64($0 / 3) * 1_000_000_000 }
        let values = (0..<count).map { Double($0) * 0.5 }
        let positions = (0..<count).map { Int64($0 / 10) << 16 | Int64($0 % 10) }
        let block = offsets.withUnsafeBufferPointer { o in
            timestamps.withUnsafeBufferPointer { t in
                values.withUnsafeBufferPointer { v in
                    positions.withUnsafeBufferPointer { p in
                        ColumnBlock.encode(sequenceOffsets: o, timestamps: t, values: v, positionOffsets: p)
                    }
                }
            }
        }
        #expect(block[0] == ColumnBlock.positionedFormat)
        let decoded = try block.withUnsafeBytes { try ColumnBlock.decode($0, expectedCount: count) }
        #expect(decoded.positionOffsets == positions && decoded.timestamps == timestamps)
        for length in 0..<block.count {
            #expect(throws: CodecError.self) {
                try Array(block[0..<length]).withUnsafeBytes { try ColumnBlock.decode($0, expectedCount: count) }
            }
        }
    }
}
