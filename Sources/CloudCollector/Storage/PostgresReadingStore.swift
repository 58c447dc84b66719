import EdgeSyncCodec
import EdgeSyncPostgres
import EdgeSyncProtocol

/// Central storage on PostgreSQL, shared by any number of collectors (decision 0011).
///
/// One transaction per group of batches, as on SQLite: lock each touched stream's row in a fixed
/// order (`SELECT ... FOR UPDATE`, so collectors serialize on a stream, never on the database, and
/// cannot deadlock on streams), read its received ranges (from the cache when the row's version
/// says it is current), dedup, COPY the new readings and their `series_blocks`, update the ranges
/// and stats, commit. A transaction that loses a race (deadlock on new series rows, serialization)
/// is run again; a lost connection fails the group (the edge retries) and the next group reconnects.
package final class PostgresReadingStore: ReadingStore {
    package struct Configuration: Sendable {
        package var copyFormat = PostgresCopyFormat.binary
        package var clock = ClockPlausibility()
        /// Attempts for a transaction that lost a race (deadlock, serialization failure).
        package var transientAttempts = 4
        /// Whether ingest writes `series_blocks`; only the ingest benchmark turns it off.
        package var maintainsQueryIndex = true
        /// `synchronous_commit` of the writer's sessions. `on` (the default) makes each commit
        /// durable before a batch is acknowledged; never weaken it outside benchmarks.
        package var synchronousCommit = "on"
        /// How long the writer waits for a stream another collector holds before the batch gets a
        /// 503 (`lock_timeout`).
        package var lockTimeout = Duration.seconds(15)
        /// When set, every newly stored reading also becomes part of a message in `stream_outbox`,
        /// in the same transaction, for the stream relay (decision 0019).
        package var streamOutbox: StreamOutboxSettings? = nil

        package init() {}
    }

    let session: PostgresSession
    private let configuration: Configuration
    private var caches = StoreCaches()
    /// `session.connectCount` when the caches were last known to match the database.
    private var cachesConnection = 0
    /// Caches were dropped after a reconnect and no commit has said so yet.
    private var hasForgottenUnreported = false

    /// Connects, creates or migrates the schema, and keeps the session for the writer.
    package init(session sessionConfiguration: PostgresSession.Configuration, configuration: Configuration = Configuration())
        throws
    {
        let synchronousCommit = configuration.synchronousCommit
        let lockTimeoutMilliseconds = max(1, configuration.lockTimeout.components.seconds * 1000
            + configuration.lockTimeout.components.attoseconds / 1_000_000_000_000_000)
        session = PostgresSession(configuration: sessionConfiguration) { connection in
            try connection.query("SELECT set_config('synchronous_commit', $1, false)", [synchronousCommit])
            // A collector that freezes or loses its network inside a transaction must not hold its
            // streams' locks for hours (the server's default TCP keepalive): the server ends an idle
            // transaction after a minute and notices a dead client within about half a minute, and
            // a writer waiting for a stream another collector holds gives up after 15 s (503).
            try connection.execute(
                """
                SET idle_in_transaction_session_timeout = '60s';
                SET lock_timeout = \(lockTimeoutMilliseconds);
                SET tcp_keepalives_idle = 10;
                SET tcp_keepalives_interval = 5;
                SET tcp_keepalives_count = 3;
                SET tcp_user_timeout = 30000
                """)
        }
        self.configuration = configuration
        try session.withConnection { connection in
            try PostgresSchema.migrate(connection)
            if configuration.streamOutbox != nil { try PostgresStreamOutbox.ensureTable(connection) }
        }
    }

    /// Connections the writer has made (1 until the database restarts or the network breaks).
    package var connectCount: Int { session.connectCount }

    // MARK: ReadingStore

    package func store(_ batches: [Batch], receivedAt: Int64) throws -> StoreCommit {
        var attempt = 1
        while true {
            do {
                return try storeOnce(batches, receivedAt: receivedAt)
            } catch let error as PostgresError where error.isTransient && attempt < configuration.transientAttempts {
                attempt += 1
            }
        }
    }

    private func storeOnce(_ batches: [Batch], receivedAt: Int64) throws -> StoreCommit {
        var newStreams: [StreamKey: Int64] = [:]
        var newSeries: [ExactString: [ExactString: Int64]] = [:]
        var working: [Int64: WorkingRanges] = [:]
        var spans = BlockSpans()
        var outcomes: [StoreOutcome] = []
        outcomes.reserveCapacity(batches.count)
        var outboxAdded: (messages: Int64, bytes: Int64) = (0, 0)
        try configuration.streamOutbox?.checkRoom()

        try session.withConnection { connection in
            refreshCachesAfterReconnecting()
            try connection.transaction { connection in
                // Validate first, then lock every stream of the group in one order: two collectors
                // storing groups that share streams take the locks in the same order.
                let sequences = try batches.map { batch throws(CollectorStorageError) in
                    try StorageLimits.sequences(of: batch)
                }
                let keys = Set(batches.filter { !$0.readings.isEmpty }.map { StreamKey(device: $0.device, stream: $0.stream) })
                var references: [StreamKey: Int64] = [:]
                for key in keys.sorted() {
                    let (reference, version) = try lockStream(key, in: connection, new: &newStreams)
                    references[key] = reference
                    let ranges = try caches.ranges.ranges(of: reference, atVersion: version)
                        ?? loadRanges(reference, in: connection)
                    working[reference] = WorkingRanges(key: key, version: version, ranges: ranges)
                }

                // Dedup each batch in order against its stream's ranges as they grow.
                var pieces: [(batch: Int, range: SequenceRange, stream: Int64)] = []
                for (index, batch) in batches.enumerated() {
                    guard let range = sequences[index],
                        let reference = references[StreamKey(device: batch.device, stream: batch.stream)],
                        let slot = working.index(forKey: reference)
                    else {
                        outcomes.append(StoreOutcome(accepted: 0, duplicates: 0))
                        continue
                    }
                    let decision = DedupDecision.apply(range, to: &working.values[slot].ranges)
                    outcomes.append(StoreOutcome(accepted: decision.accepted, duplicates: decision.duplicates))
                    for range in decision.newRanges { pieces.append((index, range, reference)) }
                }

                if !pieces.isEmpty {
                    let seriesByBatch = try resolveSeries(
                        batches, used: Set(pieces.map(\.batch)), in: connection, new: &newSeries)
                    try insertReadings(batches, pieces, seriesByBatch, spans: &spans, in: connection)
                    var statsRanges: [Int: (stream: Int64, ranges: [SequenceRange])] = [:]
                    for piece in pieces { statsRanges[piece.batch, default: (piece.stream, [])].ranges.append(piece.range) }
                    for (index, stats) in statsRanges.sorted(by: { $0.key < $1.key }) {
                        try updateStats(
                            batches[index], newRanges: stats.ranges, streamReference: stats.stream, receivedAt: receivedAt,
                            in: connection)
                    }
                    if let outbox = configuration.streamOutbox {
                        for piece in pieces {
                            let added = try PostgresStreamOutbox.add(
                                batches[piece.batch], ranges: [piece.range], settings: outbox, receivedAt: receivedAt,
                                in: connection)
                            outboxAdded.messages += added.messages
                            outboxAdded.bytes += added.bytes
                        }
                    }
                }
                for (reference, state) in working where state.changed {
                    try writeRanges(reference, state, receivedAt: receivedAt, in: connection)
                }
                for (series, span) in caches.spansToWrite(spans) {
                    try connection.query(
                        "UPDATE series SET max_block_span = $1 WHERE series_id = $2 AND max_block_span < $1",
                        [String(span), String(series)])
                }
            }
        }

        if outboxAdded.messages > 0 {
            configuration.streamOutbox?.gauge.added(messages: outboxAdded.messages, bytes: outboxAdded.bytes)
        }
        let committed = caches.learn(streams: newStreams, series: newSeries, working: working, spans: spans)
        defer { hasForgottenUnreported = false }
        return StoreCommit(
            outcomes: outcomes, committedRanges: committed, forgetsEarlierRanges: hasForgottenUnreported)
    }

    package func recordDropped(_ report: DroppedRangesReport, device: String, receivedAt: Int64) throws {
        var newStreams: [StreamKey: Int64] = [:]
        try StorageLimits.check(dropped: report.dropped)
        try session.withConnection { connection in
            refreshCachesAfterReconnecting()
            try connection.transaction { connection in
                let key = StreamKey(device: device, stream: report.stream.value)
                let reference = try streamReference(key, in: connection, new: &newStreams)
                for range in report.dropped {
                    try connection.query(
                        """
                        INSERT INTO dropped_ranges (stream_ref, first_seq, last_seq, reported_at) VALUES ($1, $2, $3, $4)
                        ON CONFLICT DO NOTHING
                        """,
                        [String(reference), String(range.first), String(range.last), String(receivedAt)])
                }
            }
        }
        _ = caches.learn(streams: newStreams, series: [:], working: [:])
    }

    package func receivedRanges(of stream: StreamKey) throws -> SequenceRangeSet {
        try session.withConnection { connection in
            let rows = try connection.query(
                """
                SELECT first_seq, last_seq FROM received_ranges JOIN streams USING (stream_ref)
                WHERE streams.device = $1 AND streams.stream = $2 ORDER BY first_seq
                """, [stream.device, String(stream.stream)])
            return try Self.ranges(rows, stream: "\(stream)")
        }
    }

    // MARK: Pieces of the write transaction

    /// A new connection may lead to a database that went back (a failover to a standby that missed
    /// the last commits, a restore): nothing the caches learned before it is trusted after it. The
    /// next commit tells the ingest writer (even when this transaction fails and a later one commits).
    private func refreshCachesAfterReconnecting() {
        guard session.connectCount != cachesConnection else { return }
        if cachesConnection != 0 { hasForgottenUnreported = true }
        caches = StoreCaches()
        cachesConnection = session.connectCount
    }

    /// The stream's reference, creating its row when new (not locked).
    private func streamReference(_ key: StreamKey, in connection: PostgresConnection, new: inout [StreamKey: Int64])
        throws -> Int64
    {
        if let known = caches.streamReferences[key] ?? new[key] { return known }
        try connection.query(
            "INSERT INTO streams (device, stream) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [key.device, String(key.stream)])
        let rows = try connection.query(
            "SELECT stream_ref FROM streams WHERE device = $1 AND stream = $2", [key.device, String(key.stream)])
        guard rows.count == 1 else { throw CollectorStorageError("stream \(key) vanished while being created") }
        let reference = try rows.requiredInt64(0, 0)
        new[key] = reference
        return reference
    }

    /// Locks the stream's row until the transaction ends and returns its reference and version.
    private func lockStream(_ key: StreamKey, in connection: PostgresConnection, new: inout [StreamKey: Int64])
        throws -> (Int64, Int64)
    {
        let reference = try streamReference(key, in: connection, new: &new)
        let rows = try connection.query(
            "SELECT version FROM streams WHERE stream_ref = $1 FOR UPDATE", [String(reference)])
        guard rows.count == 1 else { throw CollectorStorageError("stream_ref \(reference) has no streams row") }
        return (reference, try rows.requiredInt64(0, 0))
    }

    private func loadRanges(_ reference: Int64, in connection: PostgresConnection) throws -> SequenceRangeSet {
        let rows = try connection.query(
            "SELECT first_seq, last_seq FROM received_ranges WHERE stream_ref = $1 ORDER BY first_seq",
            [String(reference)])
        return try Self.ranges(rows, stream: "stream_ref \(reference)")
    }

    private static func ranges(_ rows: PostgresRows, stream: String) throws -> SequenceRangeSet {
        var ranges: [SequenceRange] = []
        ranges.reserveCapacity(rows.count)
        for row in 0..<rows.count {
            let first = try rows.requiredInt64(row, 0)
            let last = try rows.requiredInt64(row, 1)
            guard first >= 1, first <= last else {
                throw CollectorStorageError("received_ranges holds an invalid range [\(first), \(last)] for \(stream)")
            }
            ranges.append(SequenceRange(UInt64(first), UInt64(last)))
        }
        return SequenceRangeSet(ranges)
    }

    private func writeRanges(
        _ reference: Int64, _ state: WorkingRanges, receivedAt: Int64, in connection: PostgresConnection
    ) throws {
        let before = Set(state.original.ranges)
        let after = Set(state.ranges.ranges)
        for range in before.subtracting(after) {
            try connection.query(
                "DELETE FROM received_ranges WHERE stream_ref = $1 AND first_seq = $2",
                [String(reference), String(range.first)])
        }
        for range in after.subtracting(before) {
            try connection.query(
                """
                INSERT INTO received_ranges (stream_ref, first_seq, last_seq) VALUES ($1, $2, $3)
                ON CONFLICT (stream_ref, first_seq) DO UPDATE SET last_seq = excluded.last_seq
                """, [String(reference), String(range.first), String(range.last)])
        }
        try connection.query(
            "UPDATE streams SET version = $1, last_seen = $2 WHERE stream_ref = $3",
            [String(state.next), String(receivedAt), String(reference)])
    }

    /// Series ids for every series key of the batches in `used`, creating missing series in sorted
    /// order (two collectors creating the same series then wait for each other instead of deadlocking).
    private func resolveSeries(
        _ batches: [Batch], used: Set<Int>, in connection: PostgresConnection, new: inout [ExactString: [ExactString: Int64]]
    ) throws -> [Int: [Int64]] {
        var missing: [ExactString: Set<ExactString>] = [:]
        for index in used {
            let batch = batches[index]
            let device = ExactString(batch.device)
            for key in batch.seriesKeys.map(ExactString.init)
            where caches.seriesIDs[device]?[key] == nil && new[device]?[key] == nil {
                missing[device, default: []].insert(key)
            }
        }
        // Byte order (ExactString's), the same in every collector.
        for device in missing.keys.sorted() {
            for key in (missing[device] ?? []).sorted() {
                try connection.query(
                    "INSERT INTO series (device, series_key) VALUES ($1, $2) ON CONFLICT DO NOTHING", [device.value, key.value])
                let rows = try connection.query(
                    "SELECT series_id FROM series WHERE device = $1 AND series_key = $2", [device.value, key.value])
                guard rows.count == 1 else { throw CollectorStorageError("series \(key) vanished while being created") }
                new[device, default: [:]][key] = try rows.requiredInt64(0, 0)
            }
        }
        var result: [Int: [Int64]] = [:]
        for index in used {
            let batch = batches[index]
            let device = ExactString(batch.device)
            result[index] = try batch.seriesKeys.map { key in
                guard let id = caches.seriesIDs[device]?[ExactString(key)] ?? new[device]?[ExactString(key)] else {
                    throw CollectorStorageError("series \(key) has no id")
                }
                return id
            }
        }
        return result
    }

    /// COPYs the new readings, then their `series_blocks`. Ids come from chunks of the
    /// `reading_id_chunks` sequence; a block never spans two chunks, so its ids are consecutive.
    private func insertReadings(
        _ batches: [Batch], _ pieces: [(batch: Int, range: SequenceRange, stream: Int64)], _ seriesByBatch: [Int: [Int64]],
        spans: inout BlockSpans, in connection: PostgresConnection
    ) throws {
        let total = pieces.reduce(0) { $0 + Int($1.range.count) }
        var ids = try ReadingIDs(count: total, in: connection)
        var blocks: [(series: Int64, min: Int64, max: Int64, first: Int64, last: Int64)] = []
        let format = configuration.copyFormat
        let copy = "COPY readings (reading_id, stream_ref, seq, series_id, timestamp, value, value_bits) FROM STDIN"
            + (format == .binary ? " (FORMAT binary)" : "")
        try connection.copy(copy, format: format) { writer in
            for piece in pieces {
                let batch = batches[piece.batch]
                guard let series = seriesByBatch[piece.batch] else { continue }
                let start = Int(piece.range.first - batch.firstSequence)
                let order = try StorageLayout.groupedBySeries(
                    batch.readings, start..<start + Int(piece.range.count), seriesCount: series.count)
                try batch.readings.withUnsafeBufferPointer { readings in
                    var index = 0
                    while index < order.count {
                        // One block: a run of one series, at most rowsPerBlock long, inside one id chunk.
                        let seriesIndex = readings[order[index]].series
                        let room = min(SQLiteReadingStore.rowsPerBlock, ids.leftInChunk)
                        let firstID = ids.peek
                        var minimum = Int64.max
                        var maximum = Int64.min
                        var end = index
                        while end < order.count, end - index < room, readings[order[end]].series == seriesIndex {
                            let position = order[end]
                            let reading = readings[position]
                            try writer.startRow(fields: 7)
                            writer.append(ids.take())
                            writer.append(piece.stream)
                            writer.append(Int64(batch.firstSequence) + Int64(position))
                            writer.append(series[seriesIndex])
                            writer.append(reading.timestamp)
                            let stored = StoredValue(reading.value)
                            if let value = stored.value { writer.append(value) } else { writer.appendNull() }
                            if let bits = stored.bits { writer.append(bits) } else { writer.appendNull() }
                            minimum = min(minimum, reading.timestamp)
                            maximum = max(maximum, reading.timestamp)
                            end += 1
                        }
                        blocks.append((series[seriesIndex], minimum, maximum, firstID, firstID + Int64(end - index) - 1))
                        spans.add(series: series[seriesIndex], minimum: minimum, maximum: maximum)
                        index = end
                    }
                }
            }
        }
        guard configuration.maintainsQueryIndex, !blocks.isEmpty else { return }
        try connection.copy(
            "COPY series_blocks (series_id, min_timestamp, max_timestamp, first_reading_id, last_reading_id) FROM STDIN (FORMAT binary)",
            format: .binary
        ) { writer in
            for block in blocks {
                try writer.startRow(fields: 5)
                writer.append(block.series)
                writer.append(block.min)
                writer.append(block.max)
                writer.append(block.first)
                writer.append(block.last)
            }
        }
    }

    /// Folds one batch into its stream's `stream_stats` row (same arithmetic as on SQLite).
    private func updateStats(
        _ batch: Batch, newRanges: [SequenceRange], streamReference: Int64, receivedAt: Int64,
        in connection: PostgresConnection
    ) throws {
        let stats = BatchTimestamps(batch, newRanges: newRanges, receivedAt: receivedAt, clock: configuration.clock)
        try connection.query(
            """
            INSERT INTO stream_stats (stream_ref, skew_ns, last_skew_ns, skew_samples, newest_timestamp,
                                      oldest_timestamp, future_readings, past_readings)
            VALUES ($1, $2::double precision, $9::bigint, $3, $4, $5, $6, $7)
            ON CONFLICT (stream_ref) DO UPDATE SET
                skew_ns = CASE WHEN excluded.skew_samples = 0 THEN stream_stats.skew_ns
                               WHEN stream_stats.skew_ns IS NULL THEN excluded.skew_ns
                               ELSE stream_stats.skew_ns + greatest($8::double precision,
                                   1 - exp(-least(50.0::double precision, greatest(0, $10::bigint - coalesce(
                                       (SELECT last_seen FROM streams WHERE stream_ref = $1::bigint), $10::bigint))
                                       / $11::double precision)))
                                   * (excluded.skew_ns - stream_stats.skew_ns) END,
                last_skew_ns = coalesce(excluded.last_skew_ns, stream_stats.last_skew_ns),
                skew_samples = stream_stats.skew_samples + excluded.skew_samples,
                newest_timestamp = greatest(stream_stats.newest_timestamp, excluded.newest_timestamp),
                oldest_timestamp = least(stream_stats.oldest_timestamp, excluded.oldest_timestamp),
                future_readings = stream_stats.future_readings + excluded.future_readings,
                past_readings = stream_stats.past_readings + excluded.past_readings
            """,
            [
                String(streamReference), stats.skewSample.map { String($0) }, stats.skewSample == nil ? "0" : "1",
                stats.newest.map { String($0) }, stats.oldest.map { String($0) }, String(stats.future),
                String(stats.past), String(configuration.clock.skewSmoothing), stats.skewSample.map { String($0) },
                String(receivedAt), String(configuration.clock.skewTimeConstantNanoseconds),
            ])
    }
}

/// Reading ids for one transaction: `count` ids drawn from whole chunks of `reading_id_chunks`.
private struct ReadingIDs {
    private var chunks: [Int64]
    private var chunk = 0
    private var offset: Int64 = 0

    init(count: Int, in connection: PostgresConnection) throws {
        let needed = (Int64(count) + PostgresSchema.readingIDChunkSize - 1) / PostgresSchema.readingIDChunkSize
        let rows = try connection.query(
            "SELECT nextval('reading_id_chunks') FROM generate_series(1, $1)", [String(max(1, needed))])
        chunks = try (0..<rows.count).map { row in
            let chunk = try rows.requiredInt64(row, 0)
            guard chunk > 0, chunk < Int64.max >> PostgresSchema.readingIDChunkBits else {
                throw CollectorStorageError("reading_id_chunks reached \(chunk): reading ids are exhausted")
            }
            return chunk
        }
    }

    /// Ids left before the next chunk starts.
    var leftInChunk: Int { Int(PostgresSchema.readingIDChunkSize - offset) }

    /// The id `take()` returns next.
    var peek: Int64 { chunks[chunk] << PostgresSchema.readingIDChunkBits + offset }

    mutating func take() -> Int64 {
        let id = peek
        offset += 1
        if offset == PostgresSchema.readingIDChunkSize, chunk + 1 < chunks.count {
            chunk += 1
            offset = 0
        }
        return id
    }
}
