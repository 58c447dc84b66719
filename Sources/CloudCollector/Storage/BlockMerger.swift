import EdgeSyncCodec
import EdgeSyncSQLite

/// Merges small column blocks of one series into larger ones (decision 0027): a many-series
/// gateway leaves a few readings per series per batch, and each block's summary row and index
/// entry then cost more than its readings.
///
/// Work is bounded per step: one step reads at most `scanBlocks` summary rows (never block data)
/// from a cursor on, and merges at most one run of blocks of at most `targetReadings` readings, in
/// one transaction. A kill at any point leaves either the blocks before or the merged block, never
/// both or neither. Merging changes no query answer and no cursor: a merged block (`ColumnBlock`
/// format 2) keeps the positions its readings had, and only blocks that follow each other among
/// their series' blocks merge, so no other block of the series has a position between theirs.
struct BlockMerger {
    struct Configuration {
        /// Most readings in a merged block; blocks of more than half this are left alone.
        var targetReadings = 4_096
        /// Summary rows one step reads at most.
        var scanBlocks = 4_096
        /// After a whole pass that merged nothing: new blocks to wait for before the next pass.
        var restBlocks = 1_024
    }

    /// What one step did.
    enum Step: Equatable {
        /// Merged `blocks` blocks holding `readings` readings into one.
        case merged(blocks: Int, readings: Int)
        /// Read summaries and found nothing to merge there; the cursor moved on.
        case scanned
        /// Nothing to do until more blocks arrive.
        case idle
    }

    let configuration: Configuration
    /// The smallest block_id the next step reads from.
    private(set) var cursor: Int64 = 0
    /// Whether the pass from block_id 0 that is under way merged anything.
    private var passMerged = false
    /// After a pass that merged nothing: steps are idle until the newest block_id reaches this.
    private var idleUntil: Int64?
    /// Called inside the merge transaction after its writes, before the commit: tests throw here
    /// to check that an aborted merge leaves nothing behind.
    var beforeCommit: (() throws -> Void)?

    init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// One summary row as the step reads it.
    private struct Candidate {
        var block: Int64
        var series: Int64
        var stream: Int64
        var firstSeq: Int64
        var lastSeq: Int64
        var readings: Int
    }

    /// Runs one bounded step in its own transaction.
    mutating func step(in db: SQLiteDatabase) throws -> Step {
        let target = max(2, min(configuration.targetReadings, ColumnBlock.maximumReadings))
        let scan = max(2, configuration.scanBlocks)
        return try db.transaction(.immediate) { db throws -> Step in
            let newest = try db.statement("SELECT max(block_id) FROM reading_blocks")
            defer { newest.reset() }
            guard try newest.step(), !newest.isNull(at: 0) else { return .idle }
            let maximum = newest.int64(at: 0)
            if let idleUntil {
                guard maximum >= idleUntil else { return .idle }
                self.idleUntil = nil
            }
            let select = try db.statement(
                """
                SELECT block_id, series_id, stream_ref, first_seq, last_seq, readings FROM reading_blocks
                WHERE block_id >= ? ORDER BY block_id LIMIT ?
                """)
            defer { select.reset() }
            try select.bind(cursor, at: 1)
            try select.bind(Int64(scan), at: 2)
            var chunk: [Candidate] = []
            while try select.step() {
                chunk.append(
                    Candidate(
                        block: select.int64(at: 0), series: select.int64(at: 1), stream: select.int64(at: 2),
                        firstSeq: select.int64(at: 3), lastSeq: select.int64(at: 4),
                        readings: Int(clamping: select.int64(at: 5))))
            }
            if let run = Self.firstRun(in: chunk, newest: maximum, target: target) {
                try merge(run, in: db)
                try beforeCommit?()
                cursor = run[0].block
                passMerged = true
                return .merged(blocks: run.count, readings: run.reduce(0) { $0 + $1.readings })
            }
            if chunk.count == scan {
                // Half the chunk again: a run that began in its second half is seen whole next time.
                cursor = chunk[scan / 2].block
                return .scanned
            }
            // The end of the table: start over, or rest until a fair number of new blocks arrived.
            cursor = 0
            if !passMerged { idleUntil = maximum + Int64(max(1, configuration.restBlocks)) }
            passMerged = false
            return .scanned
        }
    }

    /// The run of blocks to merge that starts first in `chunk`: blocks of one series and stream
    /// that follow each other among the series' blocks in `chunk` (which holds every block_id
    /// between its first and last), each at most half the target, sequence numbers increasing, at
    /// most `target` readings together. The newest block is never merged: its id would be reused.
    private static func firstRun(in chunk: [Candidate], newest: Int64, target: Int) -> [Candidate]? {
        var open: [Int64: [Candidate]] = [:]
        var best: [Candidate]?
        func close(_ run: [Candidate]?) {
            guard let run, run.count >= 2 else { return }
            if best.map({ run[0].block < $0[0].block }) ?? true { best = run }
        }
        for block in chunk {
            let small = block.readings <= target / 2 && block.block != newest
            if var run = open[block.series], let last = run.last, small, last.stream == block.stream,
                last.lastSeq < block.firstSeq, run.reduce(0, { $0 + $1.readings }) + block.readings <= target
            {
                run.append(block)
                open[block.series] = run
                continue
            }
            close(open[block.series])
            open[block.series] = small ? [block] : nil
        }
        for run in open.values { close(run) }
        return best
    }

    /// Replaces the run's blocks by one, in the transaction under way: the first block's row takes
    /// the merged block and summary, the others are deleted, the series' span widens if needed.
    private func merge(_ run: [Candidate], in db: SQLiteDatabase) throws {
        let read = try db.statement(
            """
            SELECT block_id, stream_ref, first_seq, last_seq, readings, min_timestamp, max_timestamp, data
            FROM reading_blocks WHERE block_id = ?
            """)
        let first = run[0]
        let base = ColumnBlockStorage.readingID(block: first.block, index: 0)
        var sequenceOffsets: [Int64] = []
        var timestamps: [Int64] = []
        var values: [Double] = []
        var positions: [Int64] = []
        var summary = BlockSummary()
        for block in run {
            defer { read.reset() }
            try read.bind(block.block, at: 1)
            guard try read.step(), read.int64(at: 1) == block.stream, read.int64(at: 2) == block.firstSeq else {
                throw CollectorStorageError("reading_blocks block \(block.block) changed during its merge")
            }
            let columns = try SQLiteBlockQueries.decode(read, block: block.block)
            for index in columns.timestamps.indices {
                sequenceOffsets.append(block.firstSeq - first.firstSeq + columns.sequenceOffsets[index])
                timestamps.append(columns.timestamps[index])
                values.append(columns.values[index])
                positions.append(ColumnBlockStorage.readingID(block: block.block, index: index, of: columns) - base)
                summary.add(timestamp: columns.timestamps[index], value: columns.values[index])
            }
        }
        let data = sequenceOffsets.withUnsafeBufferPointer { offsets in
            timestamps.withUnsafeBufferPointer { timestamps in
                values.withUnsafeBufferPointer { values in
                    positions.withUnsafeBufferPointer { positions in
                        ColumnBlock.encode(
                            sequenceOffsets: offsets, timestamps: timestamps, values: values, positionOffsets: positions
                        )
                    }
                }
            }
        }
        let update = try db.statement(
            """
            UPDATE reading_blocks SET last_seq = ?, readings = ?, min_timestamp = ?, max_timestamp = ?, numbers = ?,
                   min_value = ?, max_value = ?, sum = ?, data = ?
            WHERE block_id = ?
            """)
        try update.bind(run[run.count - 1].lastSeq, at: 1)
        try ColumnBlockStorage.bind(summary, data: data, to: update, from: 2)
        try update.bind(first.block, at: 10)
        try update.run()
        let delete = try db.statement("DELETE FROM reading_blocks WHERE block_id = ?")
        for block in run.dropFirst() {
            try delete.bind(block.block, at: 1)
            try delete.run()
        }
        var spans = BlockSpans()
        spans.add(series: first.series, minimum: summary.minimumTimestamp, maximum: summary.maximumTimestamp)
        let widen = try db.statement(
            "UPDATE series SET max_block_span = ?1 WHERE series_id = ?2 AND max_block_span < ?1")
        for (series, span) in spans.largest {
            try widen.bind(span, at: 1)
            try widen.bind(series, at: 2)
            try widen.run()
        }
    }
}
