/// The storage variant of the codec's per-series columns: one series' readings from one batch (or
/// several, once merged) as the collector keeps them at rest (decision 0027).
///
/// A block holds, for `count` readings in storage order, three columns: each reading's sequence
/// number minus the block's first one, its timestamp and its value. The integer columns are the
/// wire format's (`IntegerColumn`: a difference order, then Huffman-coded or packed residuals), so
/// a series that is every k-th reading of its batch costs almost nothing for its sequence numbers,
/// and regular timestamps almost nothing for theirs; values are the wire's value column (decimal
/// scaling with exceptions, or XOR), exact for every bit pattern.
///
/// Layout: format byte, varint count, sequence-offset column, timestamp column, value column, and
/// in format 2 only a fourth integer column of position offsets. Format 1 (a block as ingest
/// writes it) leaves each reading's position implicit (its index); format 2 (a block merged from
/// several, decision 0027) carries the positions its readings had, so merging never reorders
/// readings nor moves a query cursor. No checksum: the block lives in a database page, and what the
/// summary row says about it (count, sequence range, time span) is checked against what decodes.
package enum ColumnBlock {
    /// The format of a block with implicit positions.
    package static let format: UInt8 = 1
    /// The format of a block with a position column.
    package static let positionedFormat: UInt8 = 2
    /// Most readings one block may hold (a batch's series is cut into blocks of at most this).
    package static let maximumReadings = 65_536

    /// Encodes the columns; all must have the same count, 1 ... `maximumReadings`. With
    /// `positionOffsets` the block is format 2.
    package static func encode(
        sequenceOffsets: UnsafeBufferPointer<Int64>, timestamps: UnsafeBufferPointer<Int64>,
        values: UnsafeBufferPointer<Double>, positionOffsets: UnsafeBufferPointer<Int64>? = nil
    ) -> [UInt8] {
        precondition(
            sequenceOffsets.count == timestamps.count && timestamps.count == values.count
                && (positionOffsets.map { $0.count == values.count } ?? true)
                && (1...maximumReadings).contains(values.count), "column block of \(values.count) readings")
        var writer = ByteWriter(capacity: 16 + values.count * 2)
        writer.append(positionOffsets == nil ? format : positionedFormat)
        writer.appendVarint(UInt64(values.count))
        IntegerColumn.encode(sequenceOffsets, into: &writer)
        IntegerColumn.encode(timestamps, into: &writer)
        ValueColumn.encode(values, errorBound: nil, into: &writer)
        if let positionOffsets { IntegerColumn.encode(positionOffsets, into: &writer) }
        return writer.bytes
    }

    /// A decoded block's columns.
    package struct Columns: Sendable {
        package var sequenceOffsets: [Int64]
        package var timestamps: [Int64]
        package var values: [Double]
        /// Format 2: each reading's position relative to the block's; `nil` in format 1, where
        /// the index is the position.
        package var positionOffsets: [Int64]?
    }

    /// Decodes a block that must hold exactly `expectedCount` readings, checking every field; the
    /// whole input must be the block.
    package static func decode(_ bytes: UnsafeRawBufferPointer, expectedCount: Int) throws(CodecError) -> Columns {
        var reader = ByteReader(bytes)
        let version = try reader.readByte("column block format")
        guard version == format || version == positionedFormat else {
            throw reader.error(
                .unsupportedVersion, "column block format is \(version), only \(format) and \(positionedFormat) are defined",
                at: 0)
        }
        let countOffset = reader.position
        let count = try reader.readCount("column block reading count", atMost: maximumReadings, code: .limitExceeded)
        guard count == expectedCount, count > 0 else {
            throw reader.error(
                .malformed, "column block holds \(count) readings, its summary says \(expectedCount)", at: countOffset)
        }
        // Plain buffers, not arrays: the non-copyable reader cannot be captured by their closures.
        let sequenceOffsets = UnsafeMutableBufferPointer<Int64>.allocate(capacity: count)
        let timestamps = UnsafeMutableBufferPointer<Int64>.allocate(capacity: count)
        let values = UnsafeMutableBufferPointer<Double>.allocate(capacity: count)
        let positions = UnsafeMutableBufferPointer<Int64>.allocate(capacity: version == positionedFormat ? count : 0)
        sequenceOffsets.initialize(repeating: 0)
        timestamps.initialize(repeating: 0)
        values.initialize(repeating: 0)
        positions.initialize(repeating: 0)
        defer {
            sequenceOffsets.deallocate()
            timestamps.deallocate()
            values.deallocate()
            positions.deallocate()
        }
        try IntegerColumn.decode(from: &reader, into: sequenceOffsets, what: "column block sequence offsets")
        try IntegerColumn.decode(from: &reader, into: timestamps, what: "column block timestamps")
        try ValueColumn.decode(from: &reader, into: values, what: "column block values")
        if version == positionedFormat {
            try IntegerColumn.decode(from: &reader, into: positions, what: "column block position offsets")
        }
        guard reader.isAtEnd else {
            throw reader.error(.malformed, "column block has \(reader.remaining) bytes after its last column")
        }
        return Columns(
            sequenceOffsets: Array(sequenceOffsets), timestamps: Array(timestamps), values: Array(values),
            positionOffsets: version == positionedFormat ? Array(positions) : nil)
    }
}
