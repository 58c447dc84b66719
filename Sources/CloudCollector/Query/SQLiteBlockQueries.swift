import EdgeSyncCodec
import EdgeSyncSQLite

/// The queries of `SQLiteReadingQueries` over the column-block layout (decision 0027): the same
/// answers as over rows, from `reading_blocks`. Pages decode only the blocks that overlap their
/// window in time; aggregates add whole blocks from their summaries and decode only the blocks
/// that straddle a bucket edge or the range's ends.
///
/// A reading's position is (timestamp, `block_id << 16 | index`), which orders readings of equal
/// timestamps as the row layout's reading_id does: both follow insertion order.
enum SQLiteBlockQueries {
    /// One decoded reading of a window.
    struct Decoded {
        var position: ReadingPosition
        var value: Double
        var streamReference: Int64
        var seq: Int64
    }

    /// Most readings a window of blocks covers; as the row layout's windows.
    static let windowReadings = 65_536

    /// The blocks of series ?1 that may hold readings in [?2, ?3): every block overlapping it ends
    /// at most `max_block_span` after ?3 - 1, which bounds the index scan (decision 0010, schema 4).
    static let overlapping = """
        FROM reading_blocks INDEXED BY reading_blocks_by_end
        WHERE series_id = ?1 AND max_timestamp >= ?2 AND min_timestamp < ?3
          AND max_timestamp <= (SELECT CASE WHEN ?3 - 1 > 9223372036854775807 - s.max_block_span
                                            THEN 9223372036854775807 ELSE ?3 - 1 + s.max_block_span END
                                FROM series AS s WHERE s.series_id = ?1)
        """

    /// An exclusive upper timestamp, at most `to`, below which the readings after `lower` lie in
    /// the first blocks (by end time) that hold `rows` readings; see the row layout's `windowEnd`.
    static func windowEnd(
        of series: Int64, after lower: ReadingPosition, to: Int64, rows: Int, in db: SQLiteDatabase
    ) throws -> Int64 {
        try SQLiteReadingQueries.windowEnd(
            of: series, after: lower, to: to, rows: rows, in: db,
            blocks: """
                SELECT max_timestamp, readings FROM reading_blocks INDEXED BY reading_blocks_by_end
                WHERE series_id = ?1 AND max_timestamp >= ?2 AND max_timestamp < ?3
                ORDER BY max_timestamp
                """)
    }

    /// The readings after `lower`, before `end` and up to `through`, decoded from every block that
    /// overlaps the window, in query order.
    static func window(
        of series: Int64, after lower: ReadingPosition, end: Int64, through: ReadingPosition?, in db: SQLiteDatabase
    ) throws -> [Decoded] {
        let select = try db.statement(
            "SELECT block_id, stream_ref, first_seq, last_seq, readings, min_timestamp, max_timestamp, data \(overlapping)")
        defer { select.reset() }
        try select.bind(series, at: 1)
        try select.bind(lower.timestamp, at: 2)
        try select.bind(end, at: 3)
        var found: [Decoded] = []
        while try select.step() {
            let block = select.int64(at: 0)
            let stream = select.int64(at: 1)
            let firstSeq = select.int64(at: 2)
            let columns = try decode(select, block: block)
            for index in columns.timestamps.indices {
                let position = ReadingPosition(
                    timestamp: columns.timestamps[index],
                    readingID: ColumnBlockStorage.readingID(block: block, index: index, of: columns))
                guard position > lower, position.timestamp < end else { continue }
                if let through, position > through { continue }
                found.append(
                    Decoded(
                        position: position, value: columns.values[index], streamReference: stream,
                        seq: firstSeq + columns.sequenceOffsets[index]))
            }
        }
        found.sort { $0.position < $1.position }
        return found
    }

    /// Decodes the block in the current row of `select` (columns: block_id, stream_ref, first_seq,
    /// last_seq, readings, min_timestamp, max_timestamp, data) and checks it against its summary.
    static func decode(_ select: SQLiteStatement, block: Int64) throws -> ColumnBlock.Columns {
        let firstSeq = select.int64(at: 2)
        let lastSeq = select.int64(at: 3)
        let count = select.int64(at: 4)
        let minimum = select.int64(at: 5)
        let maximum = select.int64(at: 6)
        guard count >= 1, count <= Int64(ColumnBlock.maximumReadings) else {
            throw CollectorStorageError("reading_blocks block \(block) says it holds \(count) readings")
        }
        let columns: ColumnBlock.Columns
        do {
            columns = try select.withBlob(at: 7) { (bytes) throws(CodecError) in
                try ColumnBlock.decode(bytes, expectedCount: Int(count))
            }
        } catch {
            throw CollectorStorageError("reading_blocks block \(block) does not decode: \(error)")
        }
        var previous: Int64 = -1
        for offset in columns.sequenceOffsets {
            guard offset > previous else {
                throw CollectorStorageError("reading_blocks block \(block): sequence offsets do not increase")
            }
            previous = offset
        }
        guard columns.sequenceOffsets.first == 0, firstSeq.addingReportingOverflow(previous) == (lastSeq, false) else {
            throw CollectorStorageError(
                "reading_blocks block \(block): its readings do not cover sequence numbers \(firstSeq)...\(lastSeq)")
        }
        if let positions = columns.positionOffsets {
            // Merged: positions as the readings had them, increasing, the first the block's own.
            var previous: Int64 = -1
            for offset in positions {
                guard offset > previous else {
                    throw CollectorStorageError("reading_blocks block \(block): position offsets do not increase")
                }
                previous = offset
            }
            guard positions.first == 0, !ColumnBlockStorage.readingID(block: block, index: 0).addingReportingOverflow(previous).overflow
            else {
                throw CollectorStorageError("reading_blocks block \(block): position offsets out of range")
            }
        }
        for timestamp in columns.timestamps where timestamp < minimum || timestamp > maximum {
            throw CollectorStorageError(
                "reading_blocks block \(block): timestamp \(timestamp) outside its summary's \(minimum)...\(maximum)")
        }
        return columns
    }

    /// At most `limit` readings after `lower`, before `stop` and up to `through`, window by window.
    static func collect(
        of series: Int64, after lower: ReadingPosition, stop: Int64, through: ReadingPosition?, limit: Int,
        in db: SQLiteDatabase
    ) throws -> [Decoded] {
        var rows: [Decoded] = []
        var start = lower
        while rows.count < limit {
            let wanted = limit - rows.count
            let end = try windowEnd(of: series, after: start, to: stop, rows: wanted, in: db)
            let found = try window(of: series, after: start, end: end, through: through, in: db)
            rows += found.prefix(wanted)
            if found.count >= wanted || end == stop { break }
            start = ReadingPosition(timestamp: end, readingID: .min)
        }
        return rows
    }

    static func pageEnd(
        of series: Int64, after lower: ReadingPosition, to: Int64, limit: Int, in db: SQLiteDatabase
    ) throws -> (last: ReadingPosition, hasMore: Bool)? {
        var start = lower
        var remaining = max(1, limit)
        var lastSeen: ReadingPosition?
        while true {
            let wanted = min(remaining, windowReadings - 1) + 1
            let end = try windowEnd(of: series, after: start, to: to, rows: wanted, in: db)
            let found = try window(of: series, after: start, end: end, through: nil, in: db)
            if found.count >= remaining {
                let last = found[remaining - 1].position
                if found.count > remaining { return (last, true) }
                if end == to { return (last, false) }
                let next = ReadingPosition(timestamp: end, readingID: .min)
                let more = try collect(of: series, after: next, stop: to, through: nil, limit: 1, in: db)
                return (last, !more.isEmpty)
            }
            remaining -= found.count
            if let last = found.last { lastSeen = last.position }
            if end == to { break }
            start = ReadingPosition(timestamp: end, readingID: .min)
        }
        return lastSeen.map { ($0, false) }
    }

    /// Readings as queries return them, with each stream's id looked up once.
    static func queried(_ decoded: [Decoded], in db: SQLiteDatabase) throws -> [QueriedReading] {
        let select = try db.statement("SELECT stream FROM streams WHERE stream_ref = ?")
        var streams: [Int64: UInt64] = [:]
        var result: [QueriedReading] = []
        result.reserveCapacity(decoded.count)
        for reading in decoded {
            let stream: UInt64
            if let known = streams[reading.streamReference] {
                stream = known
            } else {
                defer { select.reset() }
                try select.bind(reading.streamReference, at: 1)
                stream = try select.step() ? UInt64(select.text(at: 0) ?? "") ?? 0 : 0
                streams[reading.streamReference] = stream
            }
            result.append(QueriedReading(position: reading.position, value: reading.value, stream: stream, seq: reading.seq))
        }
        return result
    }

    /// Count, min, max and mean per bucket, as the row layout's SQL computes them; the mean is the
    /// exact sum's (decision 0027), which is the row layout's whenever its running sum is exact.
    static func aggregate(of series: Int64, from: Int64, to: Int64, step: Int64, in db: SQLiteDatabase) throws
        -> [AggregateBucket]
    {
        struct Bucket {
            var count: Int64 = 0
            var values = BlockSummary()

            mutating func add(_ value: Double) {
                count += 1
                values.add(value: value)
            }

            mutating func add(_ summary: BlockSummary) {
                count += Int64(summary.readings)
                values.merge(summary)
            }
        }
        var buckets: [Int64: Bucket] = [:]
        let select = try db.statement(
            """
            SELECT block_id, stream_ref, first_seq, last_seq, readings, min_timestamp, max_timestamp,
                   numbers, min_value, max_value, sum
            \(overlapping)
            """)
        defer { select.reset() }
        let data = try db.statement(
            "SELECT block_id, stream_ref, first_seq, last_seq, readings, min_timestamp, max_timestamp, data FROM reading_blocks WHERE block_id = ?")
        try select.bind(series, at: 1)
        try select.bind(from, at: 2)
        try select.bind(to, at: 3)
        while try select.step() {
            let block = select.int64(at: 0)
            let minimum = select.int64(at: 5)
            let maximum = select.int64(at: 6)
            // The caller guarantees to - from fits in 64 bits; min and max lie in [from, to) here.
            if minimum >= from, maximum < to, (minimum - from) / step == (maximum - from) / step {
                var summary = BlockSummary()
                summary.readings = Int(select.int64(at: 4))
                summary.numbers = Int(select.int64(at: 7))
                summary.minimum = select.isNull(at: 8) ? nil : select.double(at: 8)
                summary.maximum = select.isNull(at: 9) ? nil : select.double(at: 9)
                summary.sum = try ExactSum(encoded: select.blob(at: 10))
                guard summary.numbers >= 0, summary.numbers <= summary.readings,
                    (summary.numbers == 0) == (summary.minimum == nil || summary.maximum == nil)
                else {
                    throw CollectorStorageError("reading_blocks block \(block): its summary is inconsistent")
                }
                buckets[(minimum - from) / step, default: Bucket()].add(summary)
                continue
            }
            defer { data.reset() }
            try data.bind(block, at: 1)
            guard try data.step() else { continue }
            let columns = try decode(data, block: block)
            for (timestamp, value) in zip(columns.timestamps, columns.values) where timestamp >= from && timestamp < to {
                buckets[(timestamp - from) / step, default: Bucket()].add(value)
            }
        }
        return buckets.sorted { $0.key < $1.key }.map { key, bucket in
            var mean: Double?
            if bucket.values.numbers > 0 {
                // SQLite's avg turns a NaN (+inf and -inf in one bucket) into NULL.
                let average = bucket.values.sum.value / Double(bucket.values.numbers)
                mean = average.isNaN ? nil : average
            }
            return AggregateBucket(
                start: from + key * step, count: bucket.count, min: bucket.values.minimum, max: bucket.values.maximum,
                mean: mean)
        }
    }
}
