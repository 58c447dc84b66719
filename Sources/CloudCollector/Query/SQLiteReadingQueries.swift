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

    private func run<T: Sendable>(_ body: @escaping @Sendable (SQLiteDatabase) throws -> T) async throws -> T {
        try await readers.run(body)
    }

    package func series(device: String?, prefix: String, limit: Int) async throws -> [SeriesSummary] {
        try await run { db in
            // substr, not LIKE: a prefix holding % or _ means exactly those characters.
            let select = try db.statement(
                """
                SELECT s.device, s.series_key,
                       (SELECT min(min_timestamp) FROM series_blocks WHERE series_id = s.series_id),
                       (SELECT max(max_timestamp) FROM series_blocks WHERE series_id = s.series_id)
                FROM series AS s
                WHERE (?1 IS NULL OR s.device = ?1) AND substr(s.series_key, 1, length(?2)) = ?2
                ORDER BY s.device, s.series_key
                LIMIT ?3
                """)
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

    /// The lower bound of a page as (timestamp, reading_id) to be strictly after.
    private static func lowerBound(after: ReadingPosition?, from: Int64) -> ReadingPosition {
        if let after, after.timestamp >= from { return after }
        // reading_id starts at 1, so every reading at `from` is after (from, Int64.min).
        return ReadingPosition(timestamp: from, readingID: .min)
    }

    /// The readings of one series in a time window, through `series_blocks` (decision 0008): every
    /// block that overlaps [?2, ?4) is read by reading_id range and its rows filtered by series and
    /// time. Parameters: ?1 series, ?2 and ?3 the exclusive lower position, ?4 the exclusive upper
    /// timestamp.
    private static let windowRows = """
        FROM series_blocks AS b CROSS JOIN readings AS r
             ON r.reading_id BETWEEN b.first_reading_id AND b.last_reading_id
        WHERE b.series_id = ?1 AND b.max_timestamp >= ?2 AND b.min_timestamp < ?4
          AND r.series_id = ?1 AND r.timestamp >= ?2 AND (r.timestamp > ?2 OR r.reading_id > ?3) AND r.timestamp < ?4
        """

    /// An exclusive upper timestamp, at most `to`, below which the blocks after `lower` hold about
    /// `rows` readings: where the first block starts once the blocks before it hold `rows`. Blocks
    /// that overlap in time (late readings) and blocks that begin before `lower` make the window
    /// hold fewer; callers widen it until it holds what they need or reaches `to`.
    private static func windowEnd(
        of series: Int64, after lower: ReadingPosition, to: Int64, rows: Int, in db: SQLiteDatabase
    ) throws -> Int64 {
        let select = try db.statement(
            """
            SELECT min_timestamp, last_reading_id - first_reading_id + 1 FROM series_blocks
            WHERE series_id = ?1 AND max_timestamp >= ?2 AND min_timestamp < ?3
            ORDER BY min_timestamp
            """)
        defer { select.reset() }
        try select.bind(series, at: 1)
        try select.bind(lower.timestamp, at: 2)
        try select.bind(to, at: 3)
        var total = 0
        while try select.step() {
            let start = select.int64(at: 0)
            if total >= rows, start > lower.timestamp { return start }
            total += Int(clamping: select.int64(at: 1))
        }
        return to
    }

    package func pageEnd(
        of series: SeriesReference, after: ReadingPosition?, from: Int64, to: Int64, limit: Int
    ) async throws -> (last: ReadingPosition, hasMore: Bool)? {
        let lower = Self.lowerBound(after: after, from: from)
        return try await run { db in
            let select = try db.statement(
                "SELECT r.timestamp, r.reading_id \(Self.windowRows) ORDER BY r.timestamp, r.reading_id LIMIT 2 OFFSET ?5"
            )
            var wanted = limit + 1
            while true {
                // Exact within the window: any reading not in it is stamped at or after its end.
                let end = try Self.windowEnd(of: series.id, after: lower, to: to, rows: wanted, in: db)
                defer { select.reset() }
                try select.bind(series.id, at: 1)
                try select.bind(lower.timestamp, at: 2)
                try select.bind(lower.readingID, at: 3)
                try select.bind(end, at: 4)
                try select.bind(max(0, limit - 1), at: 5)
                if try select.step() {
                    let last = ReadingPosition(timestamp: select.int64(at: 0), readingID: select.int64(at: 1))
                    let hasMore = try select.step()
                    if hasMore || end == to { return (last, hasMore) }
                } else if end == to {
                    break
                }
                wanted = wanted.multipliedReportingOverflow(by: 2).overflow ? Int.max : wanted * 2
            }
            // Fewer than `limit` readings before `to`: the page ends at the last one there is.
            let tail = try db.statement(
                "SELECT r.timestamp, r.reading_id \(Self.windowRows) ORDER BY r.timestamp DESC, r.reading_id DESC LIMIT 1")
            defer { tail.reset() }
            try tail.bind(series.id, at: 1)
            try tail.bind(lower.timestamp, at: 2)
            try tail.bind(lower.readingID, at: 3)
            try tail.bind(to, at: 4)
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
            // The page ends at `through`, which `pageEnd` found, so the window ends right after it.
            let select = try db.statement(
                """
                SELECT r.timestamp, r.reading_id, r.value, r.value_bits,
                       (SELECT stream FROM streams WHERE stream_ref = r.stream_ref), r.seq
                \(Self.windowRows) AND (r.timestamp < ?5 OR r.reading_id <= ?6)
                ORDER BY r.timestamp, r.reading_id
                LIMIT ?7
                """)
            defer { select.reset() }
            let end = through.timestamp < to ? through.timestamp + 1 : to
            try select.bind(series.id, at: 1)
            try select.bind(lower.timestamp, at: 2)
            try select.bind(lower.readingID, at: 3)
            try select.bind(end, at: 4)
            try select.bind(through.timestamp, at: 5)
            try select.bind(through.readingID, at: 6)
            try select.bind(limit, at: 7)
            var rows: [QueriedReading] = []
            rows.reserveCapacity(limit)
            while try select.step() {
                let value =
                    select.isNull(at: 3)
                    ? select.double(at: 2) : Double(bitPattern: UInt64(bitPattern: select.int64(at: 3)))
                rows.append(
                    QueriedReading(
                        position: ReadingPosition(timestamp: select.int64(at: 0), readingID: select.int64(at: 1)),
                        value: value, stream: UInt64(select.text(at: 4) ?? "") ?? 0, seq: select.int64(at: 5)))
            }
            return rows
        }
    }

    package func aggregate(of series: SeriesReference, from: Int64, to: Int64, step: Int64) async throws
        -> [AggregateBucket]
    {
        try await run { db in
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
