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
    /// The format of a block made of other blocks' bytes, unchanged (a merge that would not gain
    /// by re-encoding): varint part count, then per part varint block offset, varint sequence
    /// offset (from the outer block's first sequence number), varint reading count, varint byte
    /// length and the part's bytes, a block of format 1 or 2.
    package static let partsFormat: UInt8 = 3
    /// Most readings one block may hold (a batch's series is cut into blocks of at most this).
    package static let maximumReadings = 65_536
    /// Bits of a position below the block id: a reading's position is `block id << 16 | index`.
    package static let positionIndexBits = 16

    /// One block inside a format-3 block.
    package struct Part: Sendable {
        /// Its block id minus the outer block's.
        package var blockOffset: Int64
        /// Its first sequence number minus the outer block's.
        package var sequenceOffset: Int64
        package var count: Int
        /// A block of format 1 or 2.
        package var bytes: [UInt8]

        package init(blockOffset: Int64, sequenceOffset: Int64, count: Int, bytes: [UInt8]) {
            self.blockOffset = blockOffset
            self.sequenceOffset = sequenceOffset
            self.count = count
            self.bytes = bytes
        }
    }

    /// A format-3 block of `parts`, in position order.
    package static func concatenate(_ parts: [Part]) -> [UInt8] {
        var writer = ByteWriter(capacity: 8 + parts.reduce(0) { $0 + $1.bytes.count + 16 })
        writer.append(partsFormat)
        writer.appendVarint(UInt64(parts.count))
        for part in parts {
            precondition(part.blockOffset >= 0 && part.sequenceOffset >= 0, "column block part before its block")
            writer.appendVarint(UInt64(part.blockOffset))
            writer.appendVarint(UInt64(part.sequenceOffset))
            writer.appendVarint(UInt64(part.count))
            writer.appendVarint(UInt64(part.bytes.count))
            writer.append(contentsOf: part.bytes)
        }
        return writer.bytes
    }

    /// The parts of a format-3 block, or `nil` for a block of another format (one part itself).
    package static func parts(of bytes: UnsafeRawBufferPointer) throws(CodecError) -> [Part]? {
        guard bytes.first == partsFormat else { return nil }
        var reader = ByteReader(bytes)
        _ = try reader.readByte("column block format")
        return try readParts(&reader)
    }

    private static func readParts(_ reader: inout ByteReader) throws(CodecError) -> [Part] {
        let count = try reader.readCount("column block part count", atMost: maximumReadings, code: .limitExceeded)
        var parts: [Part] = []
        var readings = 0
        for _ in 0..<count {
            let blockOffset = try reader.readVarint("column block part's block offset")
            let sequenceOffset = try reader.readVarint("column block part's sequence offset")
            let partReadings = try reader.readCount(
                "column block part's reading count", atMost: maximumReadings - readings)
            let length = try reader.readCount("column block part's length", atMost: reader.remaining)
            let start = reader.position
            let raw = try reader.readBytes(length, "column block part")
            guard blockOffset < 1 << (63 - positionIndexBits), sequenceOffset <= UInt64(Int64.max), partReadings > 0,
                raw.first == format || raw.first == positionedFormat
            else {
                throw reader.error(
                    .malformed, "column block part is out of range or not a block of format 1 or 2", at: start)
            }
            readings += partReadings
            parts.append(
                Part(
                    blockOffset: Int64(blockOffset), sequenceOffset: Int64(sequenceOffset), count: partReadings,
                    bytes: Array(raw)))
        }
        guard reader.isAtEnd else {
            throw reader.error(.malformed, "column block has \(reader.remaining) bytes after its last part")
        }
        return parts
    }

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
        if version == partsFormat {
            let parts = try readParts(&reader)
            return try join(parts, expectedCount: expectedCount)
        }
        guard version == format || version == positionedFormat else {
            throw reader.error(
                .unsupportedVersion, "column block format is \(version), only 1, 2 and 3 are defined", at: 0)
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

    /// The readings of a format-3 block's parts, positions and sequence offsets made the outer
    /// block's.
    private static func join(_ parts: [Part], expectedCount: Int) throws(CodecError) -> Columns {
        guard parts.reduce(0, { $0 + $1.count }) == expectedCount, expectedCount > 0 else {
            throw CodecError(
                .malformed, "column block parts hold other than the \(expectedCount) readings of its summary", at: 0)
        }
        var joined = Columns(sequenceOffsets: [], timestamps: [], values: [], positionOffsets: [])
        joined.sequenceOffsets.reserveCapacity(expectedCount)
        joined.timestamps.reserveCapacity(expectedCount)
        joined.values.reserveCapacity(expectedCount)
        joined.positionOffsets?.reserveCapacity(expectedCount)
        for part in parts {
            let decoded: Result<Columns, CodecError> = part.bytes.withUnsafeBytes { bytes in
                Result { () throws(CodecError) in try decode(bytes, expectedCount: part.count) }
            }
            let columns = try decoded.get()
            let base = part.blockOffset << positionIndexBits
            for index in columns.timestamps.indices {
                let sequence = part.sequenceOffset.addingReportingOverflow(columns.sequenceOffsets[index])
                let position = base.addingReportingOverflow(columns.positionOffsets?[index] ?? Int64(index))
                guard !sequence.overflow, !position.overflow else {
                    throw CodecError(.malformed, "column block part's offsets overflow", at: 0)
                }
                joined.sequenceOffsets.append(sequence.partialValue)
                joined.positionOffsets?.append(position.partialValue)
            }
            joined.timestamps += columns.timestamps
            joined.values += columns.values
        }
        return joined
    }
}
