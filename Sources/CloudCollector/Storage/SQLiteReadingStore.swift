import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncLogging
import EdgeSyncSQLite

/// The embedded store: one SQLite database in the data directory, written by one connection.
package final class SQLiteReadingStore: ReadingStore {
    package struct Configuration: Sendable {
        /// `FULL` by default: every group commit is fsynced before its batches are acknowledged, so
        /// a power cut cannot lose readings the edge has already deleted. `NORMAL` survives a
        /// collector crash but can lose the last commits on a power cut (decision 0004).
        package var synchronous = SQLiteDatabase.Configuration.Synchronous.full
        /// Page cache of the writer connection, in KiB.
        package var cacheKiB = 64 * 1024
        /// WAL pages before an automatic checkpoint, when checkpoints run on the writer.
        package var walAutocheckpointPages = 10_000
        /// Checkpoint from a second connection on its own thread (`WALCheckpointer`) instead of
        /// inside the writer's commits.
        package var checkpointsInBackground = true
        package var backgroundCheckpoint = WALCheckpointer.Configuration()
        /// WAL pages at which the writer checkpoints itself (RESTART) even with background
        /// checkpoints, so the log stays bounded under sustained load (1 GiB of 4 KiB pages).
        package var walHardLimitPages = 262_144
        /// Page size of a new database (`nil`: SQLite's 4096, which measured fastest for appends).
        package var pageSize: Int? = nil
        /// What counts as an implausible reading timestamp, and how skew samples are smoothed.
        package var clock = ClockPlausibility()
        /// Whether ingest writes `series_blocks`, which every reading query needs. Only the ingest
        /// benchmark turns it off, to measure what the query index costs in the same run.
        package var maintainsQueryIndex = true
        /// When set, every newly stored reading also becomes part of a message in `stream_outbox`,
        /// in the same transaction, for the stream relay (decision 0019).
        package var streamOutbox: StreamOutboxSettings? = nil
        /// How readings are kept: a row each (`rows`, the default, which `readings_view` reads without
        /// anything loaded) or compressed column blocks with summaries (`blocks`, decision 0027).
        /// A new database gets it; one holding readings in the other layout is refused by name.
        package var layout = ReadingLayout.rows
        /// Most readings in one column block (the blocks layout).
        package var blockReadings = 4_096
        /// Blocks layout: merge small blocks of a series into blocks of up to `blockReadings` when
        /// the writer is idle (`performMaintenance`).
        package var mergesBlocks = true
        /// After a merge pass over all blocks found nothing: new blocks to wait for before the next.
        package var mergeRestBlocks = 1_024

        package init() {}
    }

    let database: SQLiteDatabase
    private let configuration: Configuration
    /// The database's layout (its schema version says which).
    package let layout: ReadingLayout
    private let checkpointer: WALCheckpointer?
    /// Blocks layout with `mergesBlocks`: merges small blocks, one bounded step per call.
    private var merger: BlockMerger?
    private let logger: Logger
    private var walFrames = 0
    private var caches = StoreCaches()

    /// Rows per multi-row INSERT: fewer statement executions, same bytes.
    private static let rowsPerInsert = 64
    /// Most readings one `series_blocks` row covers. A query reads whole blocks, so this bounds
    /// what a page reads beyond the readings it returns; one block row per 1,024 readings costs
    /// ingest next to nothing (decision 0010).
    package static let rowsPerBlock = 1024

    /// - Parameter logger: receives background trouble (a failed checkpoint).
    package init(
        path: String, configuration: Configuration = Configuration(),
        logger: Logger = .discard
    ) throws {
        var options = SQLiteDatabase.Configuration()
        options.synchronous = configuration.synchronous
        options.walAutocheckpointPages = configuration.walAutocheckpointPages
        options.pageSize = configuration.pageSize
        database = try SQLiteDatabase(path: path, configuration: options)
        self.configuration = configuration
        self.logger = logger
        try database.execute("PRAGMA cache_size = -\(configuration.cacheKiB)")
        layout = try Self.createSchema(database, layout: configuration.layout)
        if layout == .blocks, configuration.mergesBlocks {
            merger = BlockMerger(
                configuration: .init(targetReadings: configuration.blockReadings, restBlocks: configuration.mergeRestBlocks))
        }
        if configuration.checkpointsInBackground {
            let checkpointer = try WALCheckpointer(
                databasePath: path, configuration: configuration.backgroundCheckpoint,
                onError: { error in logger.warning("checkpoint_failed", ["error": .quoted(error)]) })
            self.checkpointer = checkpointer
            database.onWALCommit { [unowned self] frames in
                self.walFrames = frames
                checkpointer.walGrew(to: frames)
            }
        } else {
            checkpointer = nil
        }
    }

    /// Creates the tables and the view when missing, upgrades a row database of schema 1-3 to 4, and
    /// refuses a database of another schema version. `layout` is what a new database gets (`nil`:
    /// rows, or whatever an existing one has); an existing database holding readings in the other
    /// layout is refused by name, one without any readings is switched (so `token add` before the
    /// first `serve` does not fix the layout).
    /// - Returns: the layout of the database.
    @discardableResult
    package static func createSchema(_ database: SQLiteDatabase, layout wanted: ReadingLayout? = nil) throws
        -> ReadingLayout
    {
        try database.transaction(.immediate) { db in
            try db.execute(CollectorSchema.statements)
            let select = try db.prepare("SELECT version FROM collector_schema")
            guard try select.step() else {
                let layout = wanted ?? .rows
                try db.execute(layout == .rows ? CollectorSchema.rowStatements : CollectorSchema.blockStatements)
                let insert = try db.prepare("INSERT INTO collector_schema (version) VALUES (?)")
                try insert.bind(CollectorSchema.version(of: layout), at: 1)
                try insert.run()
                return layout
            }
            let found = select.int64(at: 0)
            select.reset()
            if (1...3).contains(found) {
                // Versions 2 and 3 add `stream_stats` and `series_blocks`, which the statements
                // here create; streams stored before the upgrade simply have no stats yet, and
                // their blocks are built from the readings here. Version 4 adds the series' block
                // spans, computed from the blocks.
                try db.execute(CollectorSchema.rowStatements)
                if found < 3 { try db.execute(CollectorSchema.upgradeToBlocks) }
                try db.execute(CollectorSchema.upgradeToBlockSpans)
                try db.execute("UPDATE collector_schema SET version = \(CollectorSchema.version)")
            } else if found != CollectorSchema.version && found != CollectorSchema.blocksVersion {
                throw CollectorStorageError(
                    "\(database.path): collector schema version \(found), this collector reads \(CollectorSchema.version) (rows) and \(CollectorSchema.blocksVersion) (column blocks)"
                )
            }
            let current: ReadingLayout = found == CollectorSchema.blocksVersion ? .blocks : .rows
            try db.execute(current == .rows ? CollectorSchema.rowStatements : CollectorSchema.blockStatements)
            guard let wanted, wanted != current else { return current }
            let holding = try db.prepare(
                current == .rows ? "SELECT EXISTS (SELECT 1 FROM readings)" : "SELECT EXISTS (SELECT 1 FROM reading_blocks)")
            _ = try holding.step()
            let holdsReadings = holding.int64(at: 0) != 0
            holding.reset()
            guard !holdsReadings else {
                throw CollectorStorageError(
                    "\(database.path) stores readings as \(current.rawValue), storage.layout asks for \(wanted.rawValue): converting a database in place is not supported yet; keep storage.layout = \(current.rawValue) or start with a new data directory"
                )
            }
            try db.execute(current == .rows ? CollectorSchema.dropRowTables : CollectorSchema.dropBlockTables)
            try db.execute(wanted == .rows ? CollectorSchema.rowStatements : CollectorSchema.blockStatements)
            try db.execute("UPDATE collector_schema SET version = \(CollectorSchema.version(of: wanted))")
            return wanted
        }
    }

    // MARK: ReadingStore

    package func store(_ batches: [Batch], receivedAt: Int64) throws -> StoreCommit {
        var newStreams: [StreamKey: Int64] = [:]
        var newSeries: [ExactString: [ExactString: Int64]] = [:]
        // Ranges of each stream touched in this transaction: (version read at its start, ranges now).
        var working: [Int64: WorkingRanges] = [:]
        var spans = BlockSpans()
        var outcomes: [StoreOutcome] = []
        outcomes.reserveCapacity(batches.count)
        var outboxAdded: (messages: Int64, bytes: Int64) = (0, 0)
        try configuration.streamOutbox?.checkRoom()

        try database.transaction(.immediate) { db in
            for batch in batches {
                guard let sequences = try StorageLimits.sequences(of: batch) else {
                    outcomes.append(StoreOutcome(accepted: 0, duplicates: 0))
                    continue
                }
                let key = StreamKey(device: batch.device, stream: batch.stream)
                let reference = try streamReference(for: key, in: db, new: &newStreams)
                if working[reference] == nil {
                    let (version, ranges) = try loadRanges(reference, in: db)
                    working[reference] = WorkingRanges(key: key, version: version, ranges: ranges)
                }
                guard let index = working.index(forKey: reference) else { continue }
                // In place: a copy out of the dictionary would copy the range array for every batch.
                let decision = DedupDecision.apply(sequences, to: &working.values[index].ranges)
                outcomes.append(StoreOutcome(accepted: decision.accepted, duplicates: decision.duplicates))
                guard decision.accepted > 0 else { continue }

                var ids: [Int64] = []
                ids.reserveCapacity(batch.seriesKeys.count)
                for seriesKey in batch.seriesKeys {
                    ids.append(try seriesID(device: batch.device, key: seriesKey, in: db, new: &newSeries))
                }
                for range in decision.newRanges {
                    switch layout {
                    case .rows:
                        try insertReadings(
                            batch, range: range, seriesIDs: ids, streamReference: reference, spans: &spans, in: db)
                    case .blocks:
                        try ColumnBlockStorage.insert(
                            batch, range: range, seriesIDs: ids, streamReference: reference,
                            maximumReadings: configuration.blockReadings, spans: &spans, in: db)
                    }
                }
                try updateStats(
                    batch, newRanges: decision.newRanges, streamReference: reference, receivedAt: receivedAt, in: db)
                if let outbox = configuration.streamOutbox {
                    let added = try SQLiteStreamOutbox.add(
                        batch, ranges: decision.newRanges, settings: outbox, receivedAt: receivedAt, in: db)
                    outboxAdded.messages += added.messages
                    outboxAdded.bytes += added.bytes
                }
            }
            for (reference, state) in working where state.changed {
                try writeRanges(reference, state, receivedAt: receivedAt, in: db)
            }
            let widen = try db.statement(
                "UPDATE series SET max_block_span = ?1 WHERE series_id = ?2 AND max_block_span < ?1")
            for (series, span) in caches.spansToWrite(spans) {
                try widen.bind(span, at: 1)
                try widen.bind(series, at: 2)
                try widen.run()
            }
        }

        if walFrames >= configuration.walHardLimitPages {
            // The background checkpointer never caught up: stop and let the log restart.
            walFrames = 0
            do {
                try database.checkpoint(.restart)
            } catch {
                logger.warning("checkpoint_failed", ["mode": "restart", "error": .quoted(error)])
            }
        }

        if outboxAdded.messages > 0 {
            configuration.streamOutbox?.gauge.added(messages: outboxAdded.messages, bytes: outboxAdded.bytes)
        }
        // Committed: only now may the caches learn what this transaction created.
        let committed = caches.learn(streams: newStreams, series: newSeries, working: working, spans: spans)
        return StoreCommit(outcomes: outcomes, committedRanges: committed)
    }

    package func recordDropped(_ report: DroppedRangesReport, device: String, receivedAt: Int64) throws {
        var newStreams: [StreamKey: Int64] = [:]
        try StorageLimits.check(dropped: report.dropped)
        try database.transaction(.immediate) { db in
            let key = StreamKey(device: device, stream: report.stream.value)
            let reference = try streamReference(for: key, in: db, new: &newStreams)
            let insert = try db.statement(
                "INSERT OR IGNORE INTO dropped_ranges (stream_ref, first_seq, last_seq, reported_at) VALUES (?, ?, ?, ?)"
            )
            for range in report.dropped {
                try insert.bind(reference, at: 1)
                try insert.bind(Int64(range.first), at: 2)
                try insert.bind(Int64(range.last), at: 3)
                try insert.bind(receivedAt, at: 4)
                try insert.run()
            }
        }
        _ = caches.learn(streams: newStreams, series: [:], working: [:])
    }

    package func receivedRanges(of stream: StreamKey) throws -> SequenceRangeSet {
        try Self.receivedRanges(of: stream, in: database)
    }

    /// One bounded step of merging small blocks (blocks layout), in its own transaction; true
    /// while there may be more to do. A failed step is logged and ends this round of merging.
    package func performMaintenance() -> Bool {
        guard var merger else { return false }
        defer { self.merger = merger }
        do {
            switch try merger.step(in: database) {
            case .merged, .scanned: return true
            case .idle: return false
            }
        } catch {
            logger.warning("block_merge_failed", ["error": .quoted(error)])
            return false
        }
    }

    /// Copies the whole WAL into the database and truncates it to zero bytes: a stopped collector
    /// leaves the database file and an empty log, not a log as large as the database (issue 19).
    /// Reader connections that are idle hold no snapshot, so the checkpoint does not wait for them;
    /// the background checkpointer is stopped first, since SQLite refuses a truncating checkpoint
    /// outright while another connection runs one. Ingest after this gets no background checkpoints.
    package func finishForShutdown() {
        checkpointer?.finish()
        let before = SQLiteDatabase.fileSizes(ofDatabaseAt: database.path).wal
        do {
            let result = try database.checkpoint(.truncate)
            logger.info(
                "wal_truncated", ["wal_bytes_before": "\(before)", "frames_checkpointed": "\(result.checkpointed)"])
        } catch {
            logger.warning("checkpoint_failed", ["mode": "truncate", "error": .quoted(error)])
        }
    }

    /// Reads a stream's received ranges with any connection (the writer's or a reader's).
    package static func receivedRanges(of stream: StreamKey, in database: SQLiteDatabase) throws -> SequenceRangeSet {
        let select = try database.statement(
            """
            SELECT first_seq, last_seq FROM received_ranges JOIN streams USING (stream_ref)
            WHERE streams.device = ? AND streams.stream = ? ORDER BY first_seq
            """)
        try select.bind(stream.device, at: 1)
        try select.bind(String(stream.stream), at: 2)
        var ranges: [SequenceRange] = []
        while try select.step() {
            let first = select.int64(at: 0)
            let last = select.int64(at: 1)
            guard first >= 1, first <= last else {
                throw CollectorStorageError("received_ranges holds an invalid range [\(first), \(last)] for \(stream)")
            }
            ranges.append(SequenceRange(UInt64(first), UInt64(last)))
        }
        return SequenceRangeSet(ranges)
    }

    // MARK: Pieces of the write transaction

    private func streamReference(for key: StreamKey, in db: SQLiteDatabase, new: inout [StreamKey: Int64]) throws
        -> Int64
    {
        if let known = caches.streamReferences[key] ?? new[key] { return known }
        let insert = try db.statement("INSERT INTO streams (device, stream) VALUES (?, ?) ON CONFLICT DO NOTHING")
        try insert.bind(key.device, at: 1)
        try insert.bind(String(key.stream), at: 2)
        try insert.run()
        let select = try db.statement("SELECT stream_ref FROM streams WHERE device = ? AND stream = ?")
        try select.bind(key.device, at: 1)
        try select.bind(String(key.stream), at: 2)
        guard try select.step() else { throw CollectorStorageError("stream \(key) vanished while being created") }
        let reference = select.int64(at: 0)
        select.reset()
        new[key] = reference
        return reference
    }

    /// The stream's version and received ranges as committed, from the cache when still current.
    private func loadRanges(_ reference: Int64, in db: SQLiteDatabase) throws -> (Int64, SequenceRangeSet) {
        let version = try db.statement("SELECT version FROM streams WHERE stream_ref = ?")
        try version.bind(reference, at: 1)
        guard try version.step() else { throw CollectorStorageError("stream_ref \(reference) has no streams row") }
        let current = version.int64(at: 0)
        version.reset()
        if let cached = caches.ranges.ranges(of: reference, atVersion: current) { return (current, cached) }
        let select = try db.statement(
            "SELECT first_seq, last_seq FROM received_ranges WHERE stream_ref = ? ORDER BY first_seq")
        try select.bind(reference, at: 1)
        var ranges: [SequenceRange] = []
        while try select.step() {
            let first = select.int64(at: 0)
            let last = select.int64(at: 1)
            guard first >= 1, first <= last else {
                throw CollectorStorageError("received_ranges holds an invalid range [\(first), \(last)]")
            }
            ranges.append(SequenceRange(UInt64(first), UInt64(last)))
        }
        return (current, SequenceRangeSet(ranges))
    }

    private func writeRanges(_ reference: Int64, _ state: WorkingRanges, receivedAt: Int64, in db: SQLiteDatabase)
        throws
    {
        let before = Set(state.original.ranges)
        let after = Set(state.ranges.ranges)
        let delete = try db.statement("DELETE FROM received_ranges WHERE stream_ref = ? AND first_seq = ?")
        for range in before.subtracting(after) {
            try delete.bind(reference, at: 1)
            try delete.bind(Int64(range.first), at: 2)
            try delete.run()
        }
        let insert = try db.statement(
            "INSERT OR REPLACE INTO received_ranges (stream_ref, first_seq, last_seq) VALUES (?, ?, ?)")
        for range in after.subtracting(before) {
            try insert.bind(reference, at: 1)
            try insert.bind(Int64(range.first), at: 2)
            try insert.bind(Int64(range.last), at: 3)
            try insert.run()
        }
        let bump = try db.statement("UPDATE streams SET version = ?, last_seen = ? WHERE stream_ref = ?")
        try bump.bind(state.next, at: 1)
        try bump.bind(receivedAt, at: 2)
        try bump.bind(reference, at: 3)
        try bump.run()
    }

    private func seriesID(device: String, key: String, in db: SQLiteDatabase, new: inout [ExactString: [ExactString: Int64]])
        throws -> Int64
    {
        if let known = caches.seriesIDs[ExactString(device)]?[ExactString(key)] ?? new[ExactString(device)]?[ExactString(key)] { return known }
        let insert = try db.statement("INSERT INTO series (device, series_key) VALUES (?, ?) ON CONFLICT DO NOTHING")
        try insert.bind(device, at: 1)
        try insert.bind(key, at: 2)
        try insert.run()
        let select = try db.statement("SELECT series_id FROM series WHERE device = ? AND series_key = ?")
        try select.bind(device, at: 1)
        try select.bind(key, at: 2)
        guard try select.step() else { throw CollectorStorageError("series \(key) vanished while being created") }
        let id = select.int64(at: 0)
        select.reset()
        new[ExactString(device), default: [:]][ExactString(key)] = id
        return id
    }

    private func insertReadings(
        _ batch: Batch, range: SequenceRange, seriesIDs ids: [Int64], streamReference: Int64,
        spans: inout BlockSpans, in db: SQLiteDatabase
    ) throws {
        let start = Int(range.first - batch.firstSequence)
        let end = start + Int(range.count)
        let rows = Self.rowsPerInsert
        let many = try db.statement(Self.insertSQL(rows: rows))
        let one = try db.statement(Self.insertSQL(rows: 1))
        let order = try StorageLayout.groupedBySeries(batch.readings, start..<end, seriesCount: ids.count)
        var index = 0
        var firstID: Int64?
        try batch.readings.withUnsafeBufferPointer { readings in
            try order.withUnsafeBufferPointer { order in
                while order.count - index >= rows {
                    var parameter: Int32 = 1
                    for position in order[index..<index + rows] {
                        try bind(
                            readings[position], stream: streamReference,
                            seq: Int64(batch.firstSequence) + Int64(position), ids, many, &parameter)
                    }
                    try many.step()
                    many.reset()
                    if firstID == nil { firstID = db.lastInsertRowID - Int64(rows) + 1 }
                    index += rows
                }
                while index < order.count {
                    var parameter: Int32 = 1
                    let position = order[index]
                    try bind(
                        readings[position], stream: streamReference,
                        seq: Int64(batch.firstSequence) + Int64(position), ids, one, &parameter)
                    try one.step()
                    one.reset()
                    if firstID == nil { firstID = db.lastInsertRowID }
                    index += 1
                }
            }
        }
        guard configuration.maintainsQueryIndex, let firstID else { return }
        try insertBlocks(batch, order: order, firstID: firstID, seriesIDs: ids, spans: &spans, in: db)
    }

    /// One `series_blocks` row per series among the rows just inserted in `order`, the first of
    /// them with reading_id `firstID`.
    private func insertBlocks(
        _ batch: Batch, order: [Int], firstID: Int64, seriesIDs ids: [Int64], spans: inout BlockSpans,
        in db: SQLiteDatabase
    ) throws {
        // SQLite gives each new row the largest reading_id plus one, so the rows of this call are
        // consecutive; a table whose largest id reached 2^63-1 would get random ids instead.
        guard db.lastInsertRowID == firstID + Int64(order.count) - 1 else {
            throw CollectorStorageError(
                "readings got non-consecutive ids \(firstID)...\(db.lastInsertRowID) for \(order.count) rows")
        }
        let insert = try db.statement(
            """
            INSERT INTO series_blocks (series_id, min_timestamp, max_timestamp, first_reading_id, last_reading_id)
            VALUES (?, ?, ?, ?, ?)
            """)
        try batch.readings.withUnsafeBufferPointer { readings in
            var start = 0
            while start < order.count {
                let series = readings[order[start]].series
                var minimum = Int64.max
                var maximum = Int64.min
                var end = start
                while end < order.count, end - start < Self.rowsPerBlock, readings[order[end]].series == series {
                    let timestamp = readings[order[end]].timestamp
                    minimum = min(minimum, timestamp)
                    maximum = max(maximum, timestamp)
                    end += 1
                }
                spans.add(series: ids[series], minimum: minimum, maximum: maximum)
                try insert.bind(ids[series], at: 1)
                try insert.bind(minimum, at: 2)
                try insert.bind(maximum, at: 3)
                try insert.bind(firstID + Int64(start), at: 4)
                try insert.bind(firstID + Int64(end) - 1, at: 5)
                try insert.run()
                start = end
            }
        }
    }

    @inline(__always)
    private func bind(
        _ reading: Reading, stream: Int64, seq: Int64, _ ids: [Int64], _ statement: SQLiteStatement,
        _ parameter: inout Int32
    ) throws {
        guard reading.series >= 0, reading.series < ids.count else {
            throw CollectorStorageError("reading refers to series \(reading.series) of \(ids.count)")
        }
        try statement.bind(stream, at: parameter)
        try statement.bind(seq, at: parameter + 1)
        try statement.bind(ids[reading.series], at: parameter + 2)
        try statement.bind(reading.timestamp, at: parameter + 3)
        let stored = StoredValue(reading.value)
        if let value = stored.value {
            try statement.bind(value, at: parameter + 4)
        } else {
            try statement.bindNull(at: parameter + 4)
        }
        if let bits = stored.bits {
            try statement.bind(bits, at: parameter + 5)
        } else {
            try statement.bindNull(at: parameter + 5)
        }
        parameter += 6
    }

    /// Folds one batch into its stream's `stream_stats` row: one skew sample (when the sender
    /// stamped `sentAt`) and the timestamps of the readings this batch added.
    private func updateStats(
        _ batch: Batch, newRanges: [SequenceRange], streamReference: Int64, receivedAt: Int64, in db: SQLiteDatabase
    ) throws {
        let stats = BatchTimestamps(batch, newRanges: newRanges, receivedAt: receivedAt, clock: configuration.clock)
        let upsert = try db.statement(
            """
            INSERT INTO stream_stats (stream_ref, skew_ns, last_skew_ns, skew_samples, newest_timestamp,
                                      oldest_timestamp, future_readings, past_readings)
            VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7)
            ON CONFLICT (stream_ref) DO UPDATE SET
                skew_ns = CASE WHEN excluded.skew_samples = 0 THEN stream_stats.skew_ns
                               WHEN stream_stats.skew_ns IS NULL THEN excluded.skew_ns
                               ELSE stream_stats.skew_ns + max(?8, 1.0 - exp(-min(50.0, max(0, ?9 - coalesce(
                                   (SELECT last_seen FROM streams WHERE stream_ref = ?1), ?9)) / ?10)))
                                   * (excluded.skew_ns - stream_stats.skew_ns) END,
                last_skew_ns = coalesce(excluded.last_skew_ns, stream_stats.last_skew_ns),
                skew_samples = stream_stats.skew_samples + excluded.skew_samples,
                newest_timestamp = max(coalesce(stream_stats.newest_timestamp, excluded.newest_timestamp),
                                       coalesce(excluded.newest_timestamp, stream_stats.newest_timestamp)),
                oldest_timestamp = min(coalesce(stream_stats.oldest_timestamp, excluded.oldest_timestamp),
                                       coalesce(excluded.oldest_timestamp, stream_stats.oldest_timestamp)),
                future_readings = stream_stats.future_readings + excluded.future_readings,
                past_readings = stream_stats.past_readings + excluded.past_readings
            """)
        try upsert.bind(streamReference, at: 1)
        if let sample = stats.skewSample {
            try upsert.bind(sample, at: 2)
            try upsert.bind(1, at: 3)
        } else {
            try upsert.bindNull(at: 2)
            try upsert.bind(0, at: 3)
        }
        if let newest = stats.newest, let oldest = stats.oldest {
            try upsert.bind(newest, at: 4)
            try upsert.bind(oldest, at: 5)
        } else {
            try upsert.bindNull(at: 4)
            try upsert.bindNull(at: 5)
        }
        try upsert.bind(stats.future, at: 6)
        try upsert.bind(stats.past, at: 7)
        try upsert.bind(configuration.clock.skewSmoothing, at: 8)
        try upsert.bind(receivedAt, at: 9)
        try upsert.bind(configuration.clock.skewTimeConstantNanoseconds, at: 10)
        try upsert.run()
    }

    private static func insertSQL(rows: Int) -> String {
        "INSERT INTO readings (stream_ref, seq, series_id, timestamp, value, value_bits) VALUES "
            + Array(repeating: "(?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
    }
}

/// When a reading's timestamp is implausible, judged against the time its batch was received, and
/// how the per-stream clock skew is smoothed (`Docs/protocol.md`, "GET /v1/devices").
package struct ClockPlausibility: Sendable {
    /// Readings stamped more than this after they were received are "in the future" (5 minutes).
    package var futureToleranceNanoseconds: Int64 = 300_000_000_000
    /// Readings stamped before this are "in the past": 2000-01-01T00:00:00Z, which catches a
    /// gateway without a real-time clock that counts from 1970 until NTP syncs.
    package var earliestTimestamp: Int64 = 946_684_800_000_000_000
    /// Readings stamped more than this before they were received are "in the past" too (366 days;
    /// a gateway offline for weeks replays old readings legitimately).
    package var maximumAgeNanoseconds: Int64 = 366 * 86_400 * 1_000_000_000
    /// Smallest weight of a new skew sample in the exponentially weighted moving average (batches
    /// that follow each other closely).
    package var skewSmoothing = 0.2
    /// The average's time constant: a sample that comes `t` after the stream's previous batch
    /// weighs `max(skewSmoothing, 1 - exp(-t / constant))`, so the figure follows a corrected clock
    /// within about twenty constants of batches (10 s: a few minutes, whatever the jump), and a
    /// batch after a long silence counts almost alone.
    package var skewTimeConstantNanoseconds = 10e9

    package init() {}
}

/// Storage failed in a way that is not SQLite's own error (a broken invariant, a limit).
package struct CollectorStorageError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
