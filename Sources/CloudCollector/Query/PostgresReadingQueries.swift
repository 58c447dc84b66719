import EdgeSyncPostgres
import EdgeSyncProtocol

/// `ReadingQueries` on a PostgreSQL database written by `PostgresReadingStore`: the same questions
/// and the same answers as `SQLiteReadingQueries`, by the same plan (decision 0010: pages read
/// `series_blocks` by end time and fetch each block's readings by reading id range).
///
/// Every call runs on one of the pool's connections, off the cooperative thread pool. Calls that
/// need several statements run them in one read-only REPEATABLE READ transaction (one snapshot),
/// committed before the call returns, so nothing stays open between calls.
package final class PostgresReadingQueries: ReadingQueries {
    let pool: PostgresPool

    /// Queries through `pool`, which the caller makes (and sizes) for query traffic.
    package init(pool: PostgresPool) {
        self.pool = pool
    }

    package func series(device: String?, prefix: String, limit: Int) async throws -> [SeriesSummary] {
        try await pool.run { connection in
            // starts_with, not LIKE: a prefix holding % or _ means exactly those characters. The
            // C collation orders by bytes, as SQLite's BINARY does, whatever the database's locale.
            // A negative limit means none, as in SQLite (LIMIT NULL).
            let rows = try connection.query(
                """
                SELECT s.device, s.series_key,
                       (SELECT min(min_timestamp) FROM series_blocks WHERE series_id = s.series_id),
                       (SELECT max(max_timestamp) FROM series_blocks WHERE series_id = s.series_id)
                FROM series AS s
                WHERE ($1::text IS NULL OR s.device = $1::text) AND starts_with(s.series_key, $2::text)
                ORDER BY s.device COLLATE "C", s.series_key COLLATE "C"
                LIMIT $3
                """, [device, prefix, limit < 0 ? nil : String(limit)])
            return try (0..<rows.count).map { row in
                SeriesSummary(
                    device: rows.string(row, 0) ?? "", series: rows.string(row, 1) ?? "",
                    firstTimestamp: try rows.int64(row, 2), lastTimestamp: try rows.int64(row, 3))
            }
        }
    }

    package func series(device: String, key: String) async throws -> SeriesReference? {
        try await pool.run { connection in
            let rows = try connection.query(
                "SELECT series_id FROM series WHERE device = $1 AND series_key = $2", [device, key])
            guard rows.count > 0 else { return nil }
            return SeriesReference(device: device, key: key, id: try rows.requiredInt64(0, 0))
        }
    }

    /// The lower bound of a page as (timestamp, reading_id) to be strictly after.
    private static func lowerBound(after: ReadingPosition?, from: Int64) -> ReadingPosition {
        if let after, after.timestamp >= from { return after }
        // Reading ids are positive, so every reading at `from` is after (from, Int64.min).
        return ReadingPosition(timestamp: from, readingID: .min)
    }

    /// The readings of one series in a time window, through `series_blocks`: every block that
    /// overlaps [$2, $4) (found through `series_blocks_by_end`) is read by reading_id range (the
    /// readings primary key) and its rows filtered by series and time. Parameters: $1 series, $2
    /// and $3 the exclusive lower position, $4 the exclusive upper timestamp.
    ///
    /// The plan is spelled out because PostgreSQL has no index hints and, left alone, prefers a
    /// (parallel) sequential scan of readings joined to the blocks, which costs the whole table
    /// per page. `OFFSET 0` keeps the lateral subquery from being flattened, so it runs once per
    /// block as a range scan of the primary key. `min_timestamp + 0` is not indexable, so
    /// `series_blocks_by_start` cannot look cheaper than it is: the blocks come from
    /// `series_blocks_by_end` (index only: it covers every column read), except in windows near a
    /// series' start, where the planner may take by_start on `series_id` alone (both then read
    /// the same entries: every block of the series lies after the window's start).
    private static let windowRows = """
        FROM series_blocks AS b CROSS JOIN LATERAL (
            SELECT r.reading_id, r.timestamp, r.value, r.value_bits, r.stream_ref, r.seq
            FROM readings AS r
            WHERE r.reading_id BETWEEN b.first_reading_id AND b.last_reading_id
              AND r.series_id = $1 AND r.timestamp >= $2 AND (r.timestamp > $2 OR r.reading_id > $3) AND r.timestamp < $4
            OFFSET 0
        ) AS r
        WHERE b.series_id = $1 AND b.max_timestamp >= $2 AND b.min_timestamp + 0 < $4
          AND b.max_timestamp <= (SELECT least($4::numeric - 1 + s.max_block_span, 9223372036854775807)::bigint
                                  FROM series AS s WHERE s.series_id = $1)
        """

    /// Most readings one window of a query covers: what a page's statements read and sort at once.
    private static let windowReadings = 65_536

    /// `windowEnd`'s statement: $1 series, $2 lower timestamp, $3 upper bound, $4 readings wanted.
    private static let windowEndQuery = """
        SELECT max_timestamp FROM (
            SELECT max_timestamp,
                   sum(readings) OVER (ORDER BY max_timestamp ROWS UNBOUNDED PRECEDING) AS total
            FROM (
                SELECT max_timestamp, last_reading_id - first_reading_id + 1 AS readings
                FROM series_blocks
                WHERE series_id = $1 AND max_timestamp >= $2 AND max_timestamp < $3
                ORDER BY max_timestamp
                LIMIT $4
            ) AS first_blocks
        ) AS blocks
        WHERE total >= $4
        ORDER BY max_timestamp
        LIMIT 1
        """

    /// An exclusive upper timestamp, at most `to`, below which the readings after `lower` lie
    /// within the first blocks (by end time) that hold `rows` readings; see `SQLiteReadingQueries`.
    /// Every block holds at least one reading, so the first `rows` blocks by end time always
    /// suffice: the inner LIMIT bounds the work and makes an ordered scan of
    /// `series_blocks_by_end` the plan, not a sort of every later block of the series.
    private static func windowEnd(
        of series: Int64, after lower: ReadingPosition, to: Int64, rows: Int, in connection: PostgresConnection
    ) throws -> Int64 {
        let found = try connection.query(
            windowEndQuery, [String(series), String(lower.timestamp), String(to), String(rows)])
        guard found.count > 0 else { return to }
        // max_timestamp < to, so one more cannot overflow.
        return try found.requiredInt64(0, 0) + 1
    }

    /// Parameters $1...$4 of `windowRows`.
    private static func window(series: Int64, after lower: ReadingPosition, end: Int64) -> [String?] {
        [String(series), String(lower.timestamp), String(lower.readingID), String(end)]
    }

    /// Runs `body` in one read-only snapshot, committed (or rolled back) before returning.
    ///
    /// `readsWindows` steers the planner for `windowRows` and `windowEnd` within the transaction
    /// only: without sequential and bitmap scans the blocks come from ordered index scans of
    /// `series_blocks_by_end` (index only), which the LIMITs stop early, instead of every block of
    /// the series collected and sorted. Readings are read by primary key either way.
    private static func snapshot<T>(
        _ connection: PostgresConnection, readsWindows: Bool = false, _ body: (PostgresConnection) throws -> T
    ) throws -> T {
        do {
            // One round trip for all three statements.
            try connection.execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                    + (readsWindows ? "; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off" : ""))
            let value = try body(connection)
            try connection.commit()
            return value
        } catch {
            // ROLLBACK outside a transaction only warns, so this is safe whatever failed.
            if !connection.isBroken { try? connection.execute("ROLLBACK") }
            throw error
        }
    }

    package func pageEnd(
        of series: SeriesReference, after: ReadingPosition?, from: Int64, to: Int64, limit: Int
    ) async throws -> (last: ReadingPosition, hasMore: Bool)? {
        let lower = Self.lowerBound(after: after, from: from)
        let page = try await pool.run { connection -> PageEnd? in
            try Self.snapshot(connection, readsWindows: true) { connection in
                try Self.pageEnd(of: series.id, after: lower, to: to, limit: limit, in: connection)
            }
        }
        return page.map { ($0.last, $0.hasMore) }
    }

    /// `pageEnd` as a Sendable value, to come back from the pool's queue.
    private struct PageEnd: Sendable {
        var last: ReadingPosition
        var hasMore: Bool
    }

    /// The `remaining`-th reading of a window ($5 = remaining - 1) and whether one follows it.
    private static let positionQuery =
        "SELECT r.timestamp, r.reading_id \(windowRows) ORDER BY r.timestamp, r.reading_id LIMIT 2 OFFSET $5"

    private static func pageEnd(
        of series: Int64, after lower: ReadingPosition, to: Int64, limit: Int, in connection: PostgresConnection
    ) throws -> PageEnd? {
        // Window by window in time: each is counted without sorting; the window holding the
        // page's last reading is sorted (at most `limit` plus one entries kept).
        var start = lower
        var remaining = max(1, limit)
        var lastFilled: (start: ReadingPosition, end: Int64)?
        while true {
            let wanted = min(remaining, windowReadings - 1) + 1
            let end = try windowEnd(of: series, after: start, to: to, rows: wanted, in: connection)
            let counted = try connection.query(
                "SELECT count(*) \(windowRows)", window(series: series, after: start, end: end))
            let found = Int(try counted.requiredInt64(0, 0))
            if found >= remaining {
                let position = try connection.query(
                    positionQuery, window(series: series, after: start, end: end) + [String(remaining - 1)])
                guard position.count > 0 else { break }
                let last = ReadingPosition(
                    timestamp: try position.requiredInt64(0, 0), readingID: try position.requiredInt64(0, 1))
                if position.count > 1 { return PageEnd(last: last, hasMore: true) }
                if end == to { return PageEnd(last: last, hasMore: false) }
                // The page ends with this window; anything at or after its end comes next.
                let next = ReadingPosition(timestamp: end, readingID: .min)
                let any = try connection.query(
                    "SELECT 1 \(windowRows) LIMIT 1", window(series: series, after: next, end: to))
                return PageEnd(last: last, hasMore: any.count > 0)
            }
            remaining -= found
            if found > 0 { lastFilled = (start, end) }
            if end == to { break }
            start = ReadingPosition(timestamp: end, readingID: .min)
        }
        // Fewer than `limit` readings before `to`: the page ends at the last one there is.
        guard let lastFilled else { return nil }
        let tail = try connection.query(
            "SELECT r.timestamp, r.reading_id \(windowRows) ORDER BY r.timestamp DESC, r.reading_id DESC LIMIT 1",
            window(series: series, after: lastFilled.start, end: lastFilled.end))
        guard tail.count > 0 else { return nil }
        return PageEnd(
            last: ReadingPosition(timestamp: try tail.requiredInt64(0, 0), readingID: try tail.requiredInt64(0, 1)),
            hasMore: false)
    }

    /// `readings`' statement: `windowRows`, then $5 and $6 the inclusive upper position, $7 the limit.
    private static let readingsQuery = """
        SELECT r.timestamp, r.reading_id, r.value, r.value_bits,
               (SELECT stream FROM streams WHERE stream_ref = r.stream_ref), r.seq
        \(windowRows) AND (r.timestamp < $5 OR r.reading_id <= $6)
        ORDER BY r.timestamp, r.reading_id
        LIMIT $7
        """

    package func readings(
        of series: SeriesReference, after: ReadingPosition?, through: ReadingPosition, from: Int64, to: Int64,
        limit: Int
    ) async throws -> [QueriedReading] {
        let lower = Self.lowerBound(after: after, from: from)
        return try await pool.run { connection in
            try Self.snapshot(connection, readsWindows: true) { connection in
                // The page ends at `through`, which `pageEnd` found; windows in time up to right after it.
                let stop = through.timestamp < to ? through.timestamp + 1 : to
                var rows: [QueriedReading] = []
                rows.reserveCapacity(max(0, limit))
                var start = lower
                while rows.count < limit {
                    let wanted = limit - rows.count
                    let end = try Self.windowEnd(of: series.id, after: start, to: stop, rows: wanted, in: connection)
                    let found = try connection.query(
                        Self.readingsQuery,
                        Self.window(series: series.id, after: start, end: end)
                            + [String(through.timestamp), String(through.readingID), String(wanted)])
                    for row in 0..<found.count {
                        rows.append(
                            QueriedReading(
                                position: ReadingPosition(
                                    timestamp: try found.requiredInt64(row, 0),
                                    readingID: try found.requiredInt64(row, 1)),
                                value: StoredValue.decode(
                                    value: try found.double(row, 2), bits: try found.int64(row, 3)),
                                stream: UInt64(found.string(row, 4) ?? "") ?? 0, seq: try found.requiredInt64(row, 5)))
                    }
                    // A full fetch, or the window reached the page's end: nothing before it is missing.
                    if found.count == wanted || end == stop { break }
                    start = ReadingPosition(timestamp: end, readingID: .min)
                }
                return rows
            }
        }
    }

    /// 2^64 and 2^-64: the mean's sum is taken over values scaled down by 2^64 (exactly, a power of
    /// two), so it cannot overflow. PostgreSQL's float8 `sum` and `avg` raise an error instead of
    /// returning infinity when finite values overflow (avg already when their squares do, near
    /// 1e154), which would make a bucket holding large readings unanswerable.
    private static let meanScale = 0x1p64
    /// Below this magnitude scaling by 2^-64 could lose bits (or raise PostgreSQL's underflow
    /// error); such values are summed unscaled, where they cannot overflow either.
    private static let unscaledBelow = 0x1p-900

    /// `aggregate`'s statement: `windowRows` over the whole range, $5 the step, $6 and $7 see `meanScale`.
    private static let aggregateQuery = """
        SELECT (r.timestamp - $2) / $5 AS bucket, count(*), min(r.value), max(r.value), count(r.value),
               sum(CASE WHEN abs(r.value) >= $6::float8 THEN r.value * $7::float8 END),
               sum(CASE WHEN abs(r.value) < $6::float8 THEN r.value END)
        \(windowRows)
        GROUP BY bucket
        ORDER BY bucket
        """

    private static func aggregateParameters(series: Int64, from: Int64, to: Int64, step: Int64) -> [String?] {
        [
            String(series), String(from), String(Int64.min), String(to), String(step), String(unscaledBelow),
            String(1 / meanScale),
        ]
    }

    package func aggregate(of series: SeriesReference, from: Int64, to: Int64, step: Int64) async throws
        -> [AggregateBucket]
    {
        try await pool.run { connection in
            // `value` is NULL for NaN, so min/max/sum/count(value) skip NaNs while count(*) counts them.
            // The caller guarantees to - from fits in 64 bits, so timestamp - from cannot overflow.
            let parameters = Self.aggregateParameters(series: series.id, from: from, to: to, step: step)
            let rows = try Self.snapshot(connection, readsWindows: true) { connection in
                try connection.query(Self.aggregateQuery, parameters)
            }
            return try (0..<rows.count).map { row in
                let numbers = try rows.requiredInt64(row, 4)
                var mean: Double?
                if numbers > 0 {
                    let large = try rows.double(row, 5) ?? 0
                    let small = try rows.double(row, 6) ?? 0
                    let sum = large * Self.meanScale + small
                    // SQLite turns a NaN mean (+inf and -inf in one bucket) into NULL.
                    let average = sum / Double(numbers)
                    mean = average.isNaN ? nil : average
                }
                return AggregateBucket(
                    start: from + (try rows.requiredInt64(row, 0)) * step, count: try rows.requiredInt64(row, 1),
                    min: try rows.double(row, 2), max: try rows.double(row, 3), mean: mean)
            }
        }
    }

    /// The plans PostgreSQL picks, under the settings the queries run with, for the statements of
    /// a page over [`from`, `to`) of `series` (block window, count, page end, readings) and for an
    /// aggregate with `step`: `EXPLAIN` text, one string per statement. For tests and operators
    /// checking that pages read `series_blocks_by_end` and the readings primary key, never all of
    /// readings.
    package func plans(of series: SeriesReference, from: Int64, to: Int64, step: Int64) async throws -> [String] {
        try await pool.run { connection in
            try Self.snapshot(connection, readsWindows: true) { connection in
                let window = Self.window(
                    series: series.id, after: ReadingPosition(timestamp: from, readingID: .min), end: to)
                let statements: [(String, [String?])] = [
                    (Self.windowEndQuery, [String(series.id), String(from), String(to), "1001"]),
                    ("SELECT count(*) \(Self.windowRows)", window),
                    (Self.positionQuery, window + ["999"]),
                    (Self.readingsQuery, window + [String(to), String(Int64.max), "1000"]),
                    (Self.aggregateQuery, Self.aggregateParameters(series: series.id, from: from, to: to, step: step)),
                ]
                return try statements.map { sql, parameters in
                    let rows = try connection.query("EXPLAIN " + sql, parameters)
                    return (0..<rows.count).compactMap { rows.string($0, 0) }.joined(separator: "\n")
                }
            }
        }
    }

    package func streams() async throws -> [StreamFacts] {
        try await pool.run { connection in
            // One snapshot: ranges and stats from the same commit.
            try Self.snapshot(connection) { connection in
                var received: [Int64: [SequenceRange]] = [:]
                var dropped: [Int64: [SequenceRange]] = [:]
                for table in ["received_ranges", "dropped_ranges"] {
                    let rows = try connection.query(
                        "SELECT stream_ref, first_seq, last_seq FROM \(table) ORDER BY stream_ref, first_seq")
                    for row in 0..<rows.count {
                        let first = try rows.requiredInt64(row, 1)
                        let last = try rows.requiredInt64(row, 2)
                        guard first >= 1, first <= last else {
                            throw CollectorStorageError("\(table) holds an invalid range [\(first), \(last)]")
                        }
                        let range = SequenceRange(UInt64(first), UInt64(last))
                        if table == "received_ranges" {
                            received[try rows.requiredInt64(row, 0), default: []].append(range)
                        } else {
                            dropped[try rows.requiredInt64(row, 0), default: []].append(range)
                        }
                    }
                }
                let rows = try connection.query(
                    """
                    SELECT st.stream_ref, st.device, st.stream, st.last_seen, ss.newest_timestamp, ss.oldest_timestamp,
                           ss.skew_ns, ss.last_skew_ns, coalesce(ss.skew_samples, 0),
                           coalesce(ss.future_readings, 0), coalesce(ss.past_readings, 0)
                    FROM streams AS st LEFT JOIN stream_stats AS ss ON ss.stream_ref = st.stream_ref
                    """)
                let facts = try (0..<rows.count).map { row in
                    let reference = try rows.requiredInt64(row, 0)
                    return StreamFacts(
                        device: rows.string(row, 1) ?? "", stream: UInt64(rows.string(row, 2) ?? "") ?? 0,
                        received: SequenceRangeSet(received[reference] ?? []),
                        dropped: SequenceRangeSet(dropped[reference] ?? []), lastSeen: try rows.int64(row, 3),
                        newestTimestamp: try rows.int64(row, 4), oldestTimestamp: try rows.int64(row, 5),
                        skewNanoseconds: try rows.double(row, 6), lastSkewNanoseconds: try rows.int64(row, 7),
                        skewSamples: try rows.requiredInt64(row, 8), futureReadings: try rows.requiredInt64(row, 9),
                        pastReadings: try rows.requiredInt64(row, 10))
                }
                return facts.sorted { ($0.device, $0.stream) < ($1.device, $1.stream) }
            }
        }
    }
}
