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
                       (SELECT timestamp FROM readings WHERE series_id = s.series_id ORDER BY timestamp LIMIT 1),
                       (SELECT timestamp FROM readings WHERE series_id = s.series_id ORDER BY timestamp DESC LIMIT 1)
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

    package func pageEnd(
        of series: SeriesReference, after: ReadingPosition?, from: Int64, to: Int64, limit: Int
    ) async throws -> (last: ReadingPosition, hasMore: Bool)? {
        let lower = Self.lowerBound(after: after, from: from)
        return try await run { db in
            // Walks the index only (it holds timestamp and reading_id): no table rows are read.
            let select = try db.statement(
                """
                SELECT timestamp, reading_id FROM readings
                WHERE series_id = ?1 AND timestamp >= ?2 AND (timestamp > ?2 OR reading_id > ?3) AND timestamp < ?4
                ORDER BY timestamp, reading_id
                LIMIT 2 OFFSET ?5
                """)
            defer { select.reset() }
            try select.bind(series.id, at: 1)
            try select.bind(lower.timestamp, at: 2)
            try select.bind(lower.readingID, at: 3)
            try select.bind(to, at: 4)
            try select.bind(max(0, limit - 1), at: 5)
            if try select.step() {
                let last = ReadingPosition(timestamp: select.int64(at: 0), readingID: select.int64(at: 1))
                return (last, try select.step())
            }
            // Fewer than `limit` readings: the page ends at the last one there is.
            let tail = try db.statement(
                """
                SELECT timestamp, reading_id FROM readings
                WHERE series_id = ?1 AND timestamp >= ?2 AND (timestamp > ?2 OR reading_id > ?3) AND timestamp < ?4
                ORDER BY timestamp DESC, reading_id DESC
                LIMIT 1
                """)
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
            // CROSS JOIN keeps readings (through the index) as the outer loop.
            let select = try db.statement(
                """
                SELECT r.timestamp, r.reading_id, r.value, r.value_bits, s.stream, r.seq
                FROM readings AS r CROSS JOIN streams AS s ON s.stream_ref = r.stream_ref
                WHERE r.series_id = ?1 AND r.timestamp >= ?2 AND (r.timestamp > ?2 OR r.reading_id > ?3)
                  AND r.timestamp < ?4 AND r.timestamp <= ?5 AND (r.timestamp < ?5 OR r.reading_id <= ?6)
                ORDER BY r.timestamp, r.reading_id
                LIMIT ?7
                """)
            defer { select.reset() }
            try select.bind(series.id, at: 1)
            try select.bind(lower.timestamp, at: 2)
            try select.bind(lower.readingID, at: 3)
            try select.bind(to, at: 4)
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
            // guarantees to - from fits in 64 bits, so timestamp - from cannot overflow.
            let select = try db.statement(
                """
                SELECT (timestamp - ?2) / ?4 AS bucket, count(*), min(value), max(value), avg(value)
                FROM readings
                WHERE series_id = ?1 AND timestamp >= ?2 AND timestamp < ?3
                GROUP BY bucket
                ORDER BY bucket
                """)
            defer { select.reset() }
            try select.bind(series.id, at: 1)
            try select.bind(from, at: 2)
            try select.bind(to, at: 3)
            try select.bind(step, at: 4)
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
