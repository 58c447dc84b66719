import EdgeSyncProtocol
import EdgeSyncSQLite

/// `ReadingQueries` on read-only connections to the collector's SQLite database, each owned by its
/// own serial queue, so queries never wait for the writer (WAL readers see the last commit) and
/// never block it. Every call steps its statements to the end or resets them before returning, so
/// no read transaction stays open between calls.
package final class SQLiteReadingQueries: ReadingQueries {
    private let readers: SQLiteReaderPool

    /// Opens `connections` read-only connections to the database at `path` (which must exist).
    package init(databasePath path: String, connections: Int = 2) throws {
        readers = try SQLiteReaderPool(path: path, count: connections, label: "cloud-collector.query")
    }

    func run<T: Sendable>(_ body: @escaping @Sendable (SQLiteDatabase) throws -> T) async throws -> T {
        try await readers.run(body)
    }

    /// The database's layout, from its schema version: read on every call (one indexed row), since
    /// a database without readings may switch layout when a store opens it.
    static func layout(of db: SQLiteDatabase) throws -> ReadingLayout {
        let select = try db.statement("SELECT version FROM collector_schema")
        defer { select.reset() }
        return try select.step() && select.int64(at: 0) == CollectorSchema.blocksVersion ? .blocks : .rows
    }

    package func series(device: String?, prefix: String, limit: Int) async throws -> [SeriesSummary] {
        try await run { db in
            // substr, not LIKE: a prefix holding % or _ means exactly those characters.
            let blocks = try Self.layout(of: db) == .blocks ? "reading_blocks" : "series_blocks"
            let select = try db.statement(Self.seriesListing(blocks: blocks))
            defer { select.reset() }
            if let device { try select.bind(device, at: 1) } else { try select.bindNull(at: 1) }
            try select.bind(prefix, at: 2)
            try select.bind(limit, at: 3)
            var rows: [SeriesSummary] = []
            while try select.step() {
                rows.append(
                    SeriesSummary(
                        device: select.text(at: 0) ?? "", series: select.text(at: 1) ?? "",
                        firstTimestamp: select.isNull(at: 2) ? nil : select.int64(at: 2),
                        lastTimestamp: select.isNull(at: 3) ? nil : select.int64(at: 3)))
            }
            return rows
        }
    }

    package func series(device: String, key: String) async throws -> SeriesReference? {
        try await run { db in
            let select = try db.statement("SELECT series_id FROM series WHERE device = ? AND series_key = ?")
            defer { select.reset() }
            try select.bind(device, at: 1)
            try select.bind(key, at: 2)
            guard try select.step() else { return nil }
            return SeriesReference(device: device, key: key, id: select.int64(at: 0))
        }
    }

    /// The series listing, first and last timestamps from `blocks` (`series_blocks` of the row
    /// layout or `reading_blocks`, which both have min_timestamp and max_timestamp by series).
    private static func seriesListing(blocks: String) -> String {
        """
        SELECT s.device, s.series_key,
               (SELECT min(min_timestamp) FROM \(blocks) WHERE series_id = s.series_id),
               (SELECT max(max_timestamp) FROM \(blocks) WHERE series_id = s.series_id)
        FROM series AS s
        WHERE (?1 IS NULL OR s.device = ?1) AND substr(s.series_key, 1, length(?2)) = ?2
        ORDER BY s.device, s.series_key
        LIMIT ?3
        """
    }

    /// The lower bound of a page as (timestamp, reading_id) to be strictly after.
    private static func lowerBound(after: ReadingPosition?, from: Int64) -> ReadingPosition {
        if let after, after.timestamp >= from { return after }
        // reading_id starts at 1, so every reading at `from` is after (from, Int64.min).
        return ReadingPosition(timestamp: from, readingID: .min)
    }

    /// The readings of one series in a time window, through `series_blocks` (decision 0010): every
    /// block that overlaps [?2, ?4) is read by reading_id range and its rows filtered by series and
    /// time. Parameters: ?1 series, ?2 and ?3 the exclusive lower position, ?4 the exclusive upper
    /// timestamp.
    ///
    /// A block overlapping the window ends at most `max_block_span` after the window's last
    /// timestamp (schema 4): that upper bound on `max_timestamp` stops the index scan there instead
    /// of at the series' last block, so a long export reads each block entry a bounded number of
    /// times. The bound is read in the same statement, so it covers every block the statement sees.
    private static let windowRows = """
        FROM series_blocks AS b INDEXED BY series_blocks_by_end CROSS JOIN readings AS r
             ON r.reading_id BETWEEN b.first_reading_id AND b.last_reading_id
        WHERE b.series_id = ?1 AND b.max_timestamp >= ?2 AND b.min_timestamp < ?4
          AND b.max_timestamp <= (SELECT CASE WHEN ?4 - 1 > 9223372036854775807 - s.max_block_span
                                              THEN 9223372036854775807 ELSE ?4 - 1 + s.max_block_span END
                                  FROM series AS s WHERE s.series_id = ?1)
          AND r.series_id = ?1 AND r.timestamp >= ?2 AND (r.timestamp > ?2 OR r.reading_id > ?3) AND r.timestamp < ?4
        """

    /// Most readings one window of a query covers: what a page's statements read and sort at once.
    private static let windowReadings = 65_536

    /// An exclusive upper timestamp, at most `to`, below which the readings after `lower` lie
    /// within the first blocks (by end time) that hold `rows` readings. Blocks that overlap in time
    /// (late readings) or begin before `lower` can make the window hold more or fewer; callers
    /// move on window by window.
    /// `blocks` selects (end time, readings) of series ?1's blocks ending in [?2, ?3) by end time:
    /// `series_blocks` here, `reading_blocks` in the block layout (`SQLiteBlockQueries`).
    static func windowEnd(
        of series: Int64, after lower: ReadingPosition, to: Int64, rows: Int, in db: SQLiteDatabase,
        blocks: String = """
            SELECT max_timestamp, last_reading_id - first_reading_id + 1
            FROM series_blocks INDEXED BY series_blocks_by_end
            WHERE series_id = ?1 AND max_timestamp >= ?2 AND max_timestamp < ?3
            ORDER BY max_timestamp
            """
    ) throws -> Int64 {
        let select = try db.statement(blocks)
        defer { select.reset() }
        try select.bind(series, at: 1)
        try select.bind(lower.timestamp, at: 2)
        try select.bind(to, at: 3)
        var total = 0
        while try select.step() {
            total += Int(clamping: select.int64(at: 1))
            // max_timestamp < to, so one more cannot overflow.
            if total >= rows { return select.int64(at: 0) + 1 }
        }
        return to
    }

    /// The readings of the series in (lower, end), counted or positioned; see `windowRows`.
    private static func bindWindow(
        _ statement: SQLiteStatement, series: Int64, after lower: ReadingPosition, end: Int64
    ) throws {
        try statement.bind(series, at: 1)
        try statement.bind(lower.timestamp, at: 2)
        try statement.bind(lower.readingID, at: 3)
        try statement.bind(end, at: 4)
    }

    package func pageEnd(
        of series: SeriesReference, after: ReadingPosition?, from: Int64, to: Int64, limit: Int
    ) async throws -> (last: ReadingPosition, hasMore: Bool)? {
        let lower = Self.lowerBound(after: after, from: from)
        return try await run { db in
            if try Self.layout(of: db) == .blocks {
                return try SQLiteBlockQueries.pageEnd(of: series.id, after: lower, to: to, limit: limit, in: db)
            }
            // Window by window in time: each is counted without sorting; the window holding the
            // page's last reading is sorted (at most `limit` plus one entries kept).
            let count = try db.statement("SELECT count(*) \(Self.windowRows)")
            let position = try db.statement(
                "SELECT r.timestamp, r.reading_id \(Self.windowRows) ORDER BY r.timestamp, r.reading_id LIMIT 2 OFFSET ?5"
            )
            let any = try db.statement("SELECT 1 \(Self.windowRows) LIMIT 1")
            var start = lower
            var remaining = max(1, limit)
            var lastFilled: (start: ReadingPosition, end: Int64)?
            while true {
                let wanted = min(remaining, Self.windowReadings - 1) + 1
                let end = try Self.windowEnd(of: series.id, after: start, to: to, rows: wanted, in: db)
                try Self.bindWindow(count, series: series.id, after: start, end: end)
                _ = try count.step()
                let found = Int(count.int64(at: 0))
                count.reset()
                if found >= remaining {
                    defer { position.reset() }
                    try Self.bindWindow(position, series: series.id, after: start, end: end)
                    try position.bind(remaining - 1, at: 5)
                    guard try position.step() else { break }
                    let last = ReadingPosition(timestamp: position.int64(at: 0), readingID: position.int64(at: 1))
                    if try position.step() { return (last, true) }
                    if end == to { return (last, false) }
                    // The page ends with this window; anything at or after its end comes next.
                    defer { any.reset() }
                    let next = ReadingPosition(timestamp: end, readingID: .min)
                    try Self.bindWindow(any, series: series.id, after: next, end: to)
                    return (last, try any.step())
                }
                remaining -= found
                if found > 0 { lastFilled = (start, end) }
                if end == to { break }
                start = ReadingPosition(timestamp: end, readingID: .min)
            }
            // Fewer than `limit` readings before `to`: the page ends at the last one there is.
            guard let lastFilled else { return nil }
            let tail = try db.statement(
                "SELECT r.timestamp, r.reading_id \(Self.windowRows) ORDER BY r.timestamp DESC, r.reading_id DESC LIMIT 1"
            )
            defer { tail.reset() }
            try Self.bindWindow(tail, series: series.id, after: lastFilled.start, end: lastFilled.end)
            guard try tail.step() else { return nil }
            return (ReadingPosition(timestamp: tail.int64(at: 0), readingID: tail.int64(at: 1)), false)
        }
    }

    package func readings(
        of series: SeriesReference, after: ReadingPosition?, through: ReadingPosition, from: Int64, to: Int64,
        limit: Int
    ) async throws -> [QueriedReading] {
        let lower = Self.lowerBound(after: after, from: from)
        return try await run { db in
            let stop = through.timestamp < to ? through.timestamp + 1 : to
            if try Self.layout(of: db) == .blocks {
                let found = try SQLiteBlockQueries.collect(
                    of: series.id, after: lower, stop: stop, through: through, limit: limit, in: db)
                return try SQLiteBlockQueries.queried(found, in: db)
            }
            // The page ends at `through`, which `pageEnd` found; windows in time up to right after it.
            let select = try db.statement(
                """
                SELECT r.timestamp, r.reading_id, r.value, r.value_bits,
                       (SELECT stream FROM streams WHERE stream_ref = r.stream_ref), r.seq
                \(Self.windowRows) AND (r.timestamp < ?5 OR r.reading_id <= ?6)
                ORDER BY r.timestamp, r.reading_id
                LIMIT ?7
                """)
            var rows: [QueriedReading] = []
            rows.reserveCapacity(limit)
            var start = lower
            while rows.count < limit {
                let wanted = limit - rows.count
                let end = try Self.windowEnd(of: series.id, after: start, to: stop, rows: wanted, in: db)
                defer { select.reset() }
                try Self.bindWindow(select, series: series.id, after: start, end: end)
                try select.bind(through.timestamp, at: 5)
                try select.bind(through.readingID, at: 6)
                try select.bind(wanted, at: 7)
                var found = 0
                while try select.step() {
                    let value =
                        select.isNull(at: 3)
                        ? select.double(at: 2) : Double(bitPattern: UInt64(bitPattern: select.int64(at: 3)))
                    rows.append(
                        QueriedReading(
                            position: ReadingPosition(timestamp: select.int64(at: 0), readingID: select.int64(at: 1)),
                            value: value, stream: UInt64(select.text(at: 4) ?? "") ?? 0, seq: select.int64(at: 5)))
                    found += 1
                }
                // A full fetch, or the window reached the page's end: nothing before it is missing.
                if found == wanted || end == stop { break }
                start = ReadingPosition(timestamp: end, readingID: .min)
            }
            return rows
        }
    }

    package func aggregate(of series: SeriesReference, from: Int64, to: Int64, step: Int64) async throws
        -> [AggregateBucket]
    {
        try await run { db in
            if try Self.layout(of: db) == .blocks {
                return try SQLiteBlockQueries.aggregate(of: series.id, from: from, to: to, step: step, in: db)
            }
            // `value` is NULL for NaN, so min/max/avg skip NaNs while count(*) counts them. The caller
            // guarantees to - from fits in 64 bits, so timestamp - from cannot overflow. Rows come in
            // block order, so SQLite groups them in a sorter (which spills to disk, not to RAM).
            let select = try db.statement(
                """
                SELECT (r.timestamp - ?2) / ?5 AS bucket, count(*), min(r.value), max(r.value), avg(r.value)
                \(Self.windowRows)
                GROUP BY bucket
                ORDER BY bucket
                """)
            defer { select.reset() }
            try select.bind(series.id, at: 1)
            try select.bind(from, at: 2)
            try select.bind(Int64.min, at: 3)
            try select.bind(to, at: 4)
            try select.bind(step, at: 5)
            var buckets: [AggregateBucket] = []
            while try select.step() {
                func optional(_ column: Int32) -> Double? {
                    select.isNull(at: column) ? nil : select.double(at: column)
                }
                buckets.append(
                    AggregateBucket(
                        start: from + select.int64(at: 0) * step, count: select.int64(at: 1), min: optional(2),
                        max: optional(3), mean: optional(4)))
            }
            return buckets
        }
    }

    package func streams() async throws -> [StreamFacts] {
        try await run { db in
            try db.transaction(.deferred) { db in
                // One read transaction: ranges and stats from the same commit.
                var received: [Int64: [SequenceRange]] = [:]
                var dropped: [Int64: [SequenceRange]] = [:]
                for (table, into) in [("received_ranges", 0), ("dropped_ranges", 1)] {
                    let select = try db.statement(
                        "SELECT stream_ref, first_seq, last_seq FROM \(table) ORDER BY stream_ref, first_seq")
                    defer { select.reset() }
                    while try select.step() {
                        let first = select.int64(at: 1)
                        let last = select.int64(at: 2)
                        guard first >= 1, first <= last else {
                            throw CollectorStorageError("\(table) holds an invalid range [\(first), \(last)]")
                        }
                        let range = SequenceRange(UInt64(first), UInt64(last))
                        if into == 0 {
                            received[select.int64(at: 0), default: []].append(range)
                        } else {
                            dropped[select.int64(at: 0), default: []].append(range)
                        }
                    }
                }
                let select = try db.statement(
                    """
                    SELECT st.stream_ref, st.device, st.stream, st.last_seen, ss.newest_timestamp, ss.oldest_timestamp,
                           ss.skew_ns, ss.last_skew_ns, coalesce(ss.skew_samples, 0),
                           coalesce(ss.future_readings, 0), coalesce(ss.past_readings, 0)
                    FROM streams AS st LEFT JOIN stream_stats AS ss ON ss.stream_ref = st.stream_ref
                    """)
                defer { select.reset() }
                var facts: [StreamFacts] = []
                while try select.step() {
                    func int(_ column: Int32) -> Int64? { select.isNull(at: column) ? nil : select.int64(at: column) }
                    let reference = select.int64(at: 0)
                    facts.append(
                        StreamFacts(
                            device: select.text(at: 1) ?? "", stream: UInt64(select.text(at: 2) ?? "") ?? 0,
                            received: SequenceRangeSet(received[reference] ?? []),
                            dropped: SequenceRangeSet(dropped[reference] ?? []), lastSeen: int(3),
                            newestTimestamp: int(4), oldestTimestamp: int(5),
                            skewNanoseconds: select.isNull(at: 6) ? nil : select.double(at: 6),
                            lastSkewNanoseconds: int(7), skewSamples: select.int64(at: 8),
                            futureReadings: select.int64(at: 9), pastReadings: select.int64(at: 10)))
                }
                return facts.sorted { ($0.device, $0.stream) < ($1.device, $1.stream) }
            }
        }
    }
}
