import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite

/// How the embedded store keeps readings (`storage.layout`).
package enum ReadingLayout: String, Sendable, CaseIterable {
    /// One `readings` row per reading (decision 0004); `readings_view` works with nothing loaded.
    case rows
    /// Compressed column blocks with summary rows in `reading_blocks` (decision 0027).
    case blocks
}

/// What a block's summary row says about its readings, the way SQL aggregates over the row layout
/// see them: NaN is counted but not a number, -0.0 compares as 0.
struct BlockSummary {
    var readings = 0
    var minimumTimestamp = Int64.max
    var maximumTimestamp = Int64.min
    /// Readings whose value is not NaN, and their extremes and exact sum.
    var numbers = 0
    var minimum: Double?
    var maximum: Double?
    var sum = ExactSum()

    @inline(__always)
    mutating func add(timestamp: Int64, value: Double) {
        readings += 1
        minimumTimestamp = min(minimumTimestamp, timestamp)
        maximumTimestamp = max(maximumTimestamp, timestamp)
        add(value: value)
    }

    /// Folds a value into the value part only (aggregate buckets count readings themselves).
    @inline(__always)
    mutating func add(value: Double) {
        guard !value.isNaN else { return }
        let number = value == 0 ? 0 : value  // -0.0 as the REAL column holds it
        numbers += 1
        minimum = Swift.min(minimum ?? number, number)
        maximum = Swift.max(maximum ?? number, number)
        sum.add(number)
    }

    /// Adds another summary's value part (the readings of a whole block in an aggregate bucket).
    mutating func merge(_ other: BlockSummary) {
        numbers += other.numbers
        if let low = other.minimum { minimum = Swift.min(minimum ?? low, low) }
        if let high = other.maximum { maximum = Swift.max(maximum ?? high, high) }
        sum.add(other.sum)
    }
}

/// The block layout's side of the ingest transaction: cuts a batch's new readings into column
/// blocks per series and inserts each with its summary row. Called once per new range, as the row
/// layout's insert is, so readings keep the same relative order: (block_id, index in block) in
/// the block layout is the row layout's reading_id order.
enum ColumnBlockStorage {
    /// A reading's position among its series' readings: `block_id << indexBits | index in block`,
    /// the block layout's stand-in for the row layout's reading_id (ties in time break by it).
    static let indexBits = 16
    /// Largest block_id that still leaves room for the index (2^47 blocks).
    static let maximumBlockID: Int64 = (1 << (63 - indexBits)) - 1

    static func readingID(block: Int64, index: Int) -> Int64 { block << indexBits | Int64(index) }

    /// The position of reading `index` of a decoded block: its index in a block as ingest wrote it,
    /// the position it had before in a merged one (`ColumnBlock` format 2, checked on decode).
    static func readingID(block: Int64, index: Int, of columns: ColumnBlock.Columns) -> Int64 {
        guard let positions = columns.positionOffsets else { return readingID(block: block, index: index) }
        return (block << indexBits) &+ positions[index]
    }

    static let insertSQL = """
        INSERT INTO reading_blocks (series_id, stream_ref, first_seq, last_seq, readings, min_timestamp,
                                    max_timestamp, numbers, min_value, max_value, sum, data)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    /// Binds a block's summary and data to parameters `first ...` of `statement`, in the table's
    /// column order: readings, min_timestamp, max_timestamp, numbers, min_value, max_value, sum, data.
    static func bind(_ summary: BlockSummary, data: [UInt8], to statement: SQLiteStatement, from first: Int32) throws {
        try statement.bind(summary.readings, at: first)
        try statement.bind(summary.minimumTimestamp, at: first + 1)
        try statement.bind(summary.maximumTimestamp, at: first + 2)
        try statement.bind(summary.numbers, at: first + 3)
        if let minimum = summary.minimum {
            try statement.bind(minimum, at: first + 4)
        } else {
            try statement.bindNull(at: first + 4)
        }
        if let maximum = summary.maximum {
            try statement.bind(maximum, at: first + 5)
        } else {
            try statement.bindNull(at: first + 5)
        }
        try statement.bind(bytes: summary.sum.encoded, at: first + 6)
        try statement.bind(bytes: data, at: first + 7)
    }

    static func insert(
        _ batch: Batch, range: SequenceRange, seriesIDs ids: [Int64], streamReference: Int64, maximumReadings: Int,
        spans: inout BlockSpans, in db: SQLiteDatabase
    ) throws {
        let start = Int(range.first - batch.firstSequence)
        let end = start + Int(range.count)
        let perBlock = max(1, min(maximumReadings, ColumnBlock.maximumReadings))
        let order = try StorageLayout.groupedBySeries(batch.readings, start..<end, seriesCount: ids.count)
        let insert = try db.statement(insertSQL)
        var offsets: [Int64] = []
        var timestamps: [Int64] = []
        var values: [Double] = []
        offsets.reserveCapacity(min(perBlock, order.count))
        timestamps.reserveCapacity(min(perBlock, order.count))
        values.reserveCapacity(min(perBlock, order.count))
        try batch.readings.withUnsafeBufferPointer { readings in
            var index = 0
            while index < order.count {
                let series = readings[order[index]].series
                let first = order[index]
                var summary = BlockSummary()
                offsets.removeAll(keepingCapacity: true)
                timestamps.removeAll(keepingCapacity: true)
                values.removeAll(keepingCapacity: true)
                var stop = index
                while stop < order.count, stop - index < perBlock, readings[order[stop]].series == series {
                    let reading = readings[order[stop]]
                    offsets.append(Int64(order[stop] - first))
                    timestamps.append(reading.timestamp)
                    values.append(reading.value)
                    summary.add(timestamp: reading.timestamp, value: reading.value)
                    stop += 1
                }
                let data = offsets.withUnsafeBufferPointer { offsets in
                    timestamps.withUnsafeBufferPointer { timestamps in
                        values.withUnsafeBufferPointer { values in
                            ColumnBlock.encode(sequenceOffsets: offsets, timestamps: timestamps, values: values)
                        }
                    }
                }
                try insert.bind(ids[series], at: 1)
                try insert.bind(streamReference, at: 2)
                try insert.bind(Int64(batch.firstSequence) + Int64(first), at: 3)
                try insert.bind(Int64(batch.firstSequence) + Int64(order[stop - 1]), at: 4)
                try bind(summary, data: data, to: insert, from: 5)
                try insert.run()
                guard db.lastInsertRowID <= maximumBlockID else {
                    throw CollectorStorageError("reading_blocks reached block_id \(db.lastInsertRowID), above 2^47-1")
                }
                spans.add(series: ids[series], minimum: summary.minimumTimestamp, maximum: summary.maximumTimestamp)
                index = stop
            }
        }
    }
}
