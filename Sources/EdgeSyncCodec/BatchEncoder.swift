/// Turns a ``Batch`` into one self-describing, checksummed frame.
///
/// Readings are grouped per series; each series stores its timestamps as an integer column
/// (usually second differences) and its values as decimal-scaled integers or XOR blocks. The
/// encoding is deterministic: the same batch and options give the same bytes.
public struct BatchEncoder: Sendable {
    public var options: EncodingOptions

    public init(options: EncodingOptions = EncodingOptions()) {
        self.options = options
    }

    public func encode(_ batch: Batch) throws(CodecError) -> [UInt8] {
        var payload = try encodePayload(batch)
        var flags: FrameHeader.Flags = []
        let payloadCount = payload.count
        if let level = options.deflateLevel {
            guard (1...9).contains(level) else {
                throw CodecError(.invalidBatch, "deflate level \(level) is outside 1...9")
            }
            let deflated = try Deflate.compress(payload, level: level)
            if deflated.count < payload.count {
                payload = deflated
                flags.insert(.deflated)
            }
        }
        guard payload.count <= Int(UInt32.max) - FrameHeader.byteCount - FrameHeader.trailerByteCount else {
            throw CodecError(.invalidBatch, "batch encodes to \(payload.count) bytes, more than a frame can hold")
        }
        var frame = ByteWriter(capacity: FrameHeader.byteCount + payload.count + FrameHeader.trailerByteCount)
        frame.append(contentsOf: FrameHeader.magic)
        frame.append(options.version.rawValue)
        frame.append(flags.rawValue)
        frame.appendUInt32(UInt32(payload.count))
        frame.appendUInt32(UInt32(payloadCount))
        frame.append(contentsOf: payload)
        let crc = frame.bytes.withUnsafeBytes { Checksum.crc32($0) }
        frame.appendUInt32(crc)
        return frame.bytes
    }

    /// The payload before deflate: header fields, series dictionary, order, then columns.
    func encodePayload(_ batch: Batch) throws(CodecError) -> [UInt8] {
        try validate(batch)
        let count = batch.readings.count
        let seriesCount = batch.seriesKeys.count
        var writer = ByteWriter(capacity: 64 + count * 2 + batch.seriesKeys.reduce(0) { $0 + $1.utf8.count + 2 })
        writer.appendString(batch.device)
        writer.appendUInt64(batch.stream)
        writer.appendVarint(batch.firstSequence)
        // Version 3 leaves the sender's clock out, so the stored bytes can go on the wire as they are.
        let version = options.version
        if version == .v2 { writer.appendSignedVarint(batch.sentAt) }
        writer.appendVarint(UInt64(count))
        writer.appendVarint(UInt64(seriesCount))
        if version == .v2 {
            for key in batch.seriesKeys { writer.appendString(key) }
        } else {
            SeriesKeys.encode(batch.seriesKeys, into: &writer)
        }
        guard count > 0 else { return writer.bytes }

        // Group readings per series, keeping sequence order within each series.
        var counts = [Int](repeating: 0, count: seriesCount)
        var order = [Int32](repeating: 0, count: count)
        for index in 0..<count {
            let series = batch.readings[index].series
            order[index] = Int32(series)
            counts[series] += 1
        }
        var starts = [Int](repeating: 0, count: seriesCount + 1)
        for series in 0..<seriesCount { starts[series + 1] = starts[series] + counts[series] }
        var timestamps = [Int64](repeating: 0, count: count)
        var values = [Double](repeating: 0, count: count)
        var cursor = starts
        for reading in batch.readings {
            let slot = cursor[reading.series]
            timestamps[slot] = reading.timestamp
            values[slot] = reading.value
            cursor[reading.series] = slot + 1
        }

        let rowStart = (1..<max(count, 1)).first { batch.readings[$0].timestamp != batch.readings[$0 - 1].timestamp } ?? 0
        let layout = order.withUnsafeBufferPointer {
            SeriesOrder.plan(
                $0, seriesCount: seriesCount, rowStart: rowStart,
                timestamps: version == .v3 ? batch.readings.map(\.timestamp) : nil)
        }
        order.withUnsafeBufferPointer { SeriesOrder.encode(layout, series: $0, seriesCount: seriesCount, into: &writer) }

        // When every row of a pattern shares one timestamp, store one column for all series.
        let rowTimestamps = Self.rowTimestamps(batch.readings, layout: layout)
        writer.append(rowTimestamps == nil ? TimestampLayout.perSeries.rawValue : TimestampLayout.perRow.rawValue)
        rowTimestamps?.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }

        if version == .v3 {
            timestamps.withUnsafeBufferPointer { timestamps in
                values.withUnsafeBufferPointer { values in
                    encodeColumnsV3(
                        timestamps: rowTimestamps == nil ? timestamps : nil, values: values, starts: starts,
                        seriesKeys: batch.seriesKeys, count: count, into: &writer)
                }
            }
            return writer.bytes
        }
        timestamps.withUnsafeBufferPointer { timestamps in
            values.withUnsafeBufferPointer { values in
                for series in 0..<seriesCount {
                    let range = starts[series]..<starts[series + 1]
                    if rowTimestamps == nil {
                        IntegerColumn.encode(UnsafeBufferPointer(rebasing: timestamps[range]), into: &writer)
                    }
                    ValueColumn.encode(
                        UnsafeBufferPointer(rebasing: values[range]),
                        errorBound: options.errorBounds[batch.seriesKeys[series]], into: &writer)
                }
            }
        }
        return writer.bytes
    }

    /// Version 3 columns: the per-series timestamp columns (when there are no row timestamps), then
    /// the value section, either a value column per series or the shared form for short series.
    private func encodeColumnsV3(
        timestamps: UnsafeBufferPointer<Int64>?, values: UnsafeBufferPointer<Double>, starts: [Int],
        seriesKeys: [String], count: Int, into writer: inout ByteWriter
    ) {
        let seriesCount = seriesKeys.count
        if let timestamps {
            for series in 0..<seriesCount {
                IntegerColumn.encode(UnsafeBufferPointer(rebasing: timestamps[starts[series]..<starts[series + 1]]), into: &writer)
            }
        }
        let bounds: [Double?] =
            options.errorBounds.isEmpty ? [Double?](repeating: nil, count: seriesCount) : seriesKeys.map { options.errorBounds[$0] }
        if SharedValues.prefersShared(count: count, seriesCount: seriesCount) {
            SharedValues.encode(values, starts: starts, errorBounds: bounds, into: &writer)
            return
        }
        writer.append(SharedValues.Mode.perSeries.rawValue)
        for series in 0..<seriesCount {
            ValueColumn.encode(UnsafeBufferPointer(rebasing: values[starts[series]..<starts[series + 1]]), errorBound: bounds[series], into: &writer)
        }
    }

    /// One timestamp per pattern row, or nil when the layout has no rows or a row's readings
    /// disagree on their time.
    private static func rowTimestamps(_ readings: [Reading], layout: SeriesOrder.Layout) -> [Int64]? {
        guard layout.mode == .pattern || layout.mode == .rows, layout.pattern.count > 1 else { return nil }
        let period = layout.pattern.count
        var rows = [Int64](repeating: 0, count: layout.rowCount)
        var currentRow = -1
        for (index, reading) in readings.enumerated() {
            let row = layout.slots[index] / period
            if row != currentRow {
                rows[row] = reading.timestamp
                currentRow = row
            } else if rows[row] != reading.timestamp {
                return nil
            }
        }
        return rows
    }

    private func validate(_ batch: Batch) throws(CodecError) {
        let limits = DecodingLimits.default
        guard !batch.device.isEmpty, batch.device.utf8.count <= limits.maximumDeviceBytes else {
            throw CodecError(.invalidBatch, "device id must be 1...\(limits.maximumDeviceBytes) bytes of UTF-8, got \(batch.device.utf8.count)")
        }
        guard batch.firstSequence >= 1 else {
            throw CodecError(.invalidBatch, "sequence numbers start at 1, the batch starts at 0")
        }
        guard batch.readings.count <= limits.maximumReadings else {
            throw CodecError(.invalidBatch, "\(batch.readings.count) readings exceed the \(limits.maximumReadings) a receiver accepts in one batch")
        }
        guard UInt64.max - batch.firstSequence >= UInt64(batch.readings.count) else {
            throw CodecError(.invalidBatch, "sequence numbers overflow 64 bits")
        }
        guard batch.seriesKeys.count <= limits.maximumSeries else {
            throw CodecError(.invalidBatch, "\(batch.seriesKeys.count) series exceed the limit of \(limits.maximumSeries)")
        }
        var seen = Set<ExactString>(minimumCapacity: batch.seriesKeys.count)
        for key in batch.seriesKeys {
            guard !key.isEmpty, key.utf8.count <= limits.maximumSeriesKeyBytes else {
                throw CodecError(.invalidBatch, "series key must be 1...\(limits.maximumSeriesKeyBytes) bytes, got \(key.utf8.count)")
            }
            guard seen.insert(ExactString(key)).inserted else {
                throw CodecError(.invalidBatch, "series key \"\(key)\" appears twice")
            }
        }
        for (index, reading) in batch.readings.enumerated() where !(0..<batch.seriesKeys.count).contains(reading.series) {
            throw CodecError(.invalidBatch, "reading \(index) refers to series \(reading.series), the batch has \(batch.seriesKeys.count)")
        }
        for (key, bound) in options.errorBounds where !(bound.isFinite && bound > 0) {
            throw CodecError(.invalidBatch, "error bound for \"\(key)\" must be a positive number, got \(bound)")
        }
    }
}
