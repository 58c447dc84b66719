/// Where a batch keeps its timestamps.
enum TimestampLayout: UInt8 {
    /// Each series has its own timestamp column.
    case perSeries = 0
    /// One column holds a timestamp per row of the series pattern, shared by the row's readings.
    case perRow = 1
}

/// Turns one frame back into a ``Batch``, trusting nothing in it.
///
/// Every count, length and offset is checked against the input and ``limits`` before it is used;
/// the payload's declared inflated size is capped before inflating. A malformed frame throws a
/// ``CodecError`` naming what is wrong and at which byte; decoding never traps, never allocates
/// beyond the limits and always terminates.
public struct BatchDecoder: Sendable {
    public var limits: DecodingLimits

    public init(limits: DecodingLimits = .default) {
        self.limits = limits
    }

    public func decode(_ frame: [UInt8]) throws(CodecError) -> Batch {
        // `withUnsafeBytes` only rethrows untyped errors; carry the typed one out in a Result.
        try frame.withUnsafeBytes { raw in Result { () throws(CodecError) in try decode(raw) } }.get()
    }

    public func decode(_ frame: UnsafeRawBufferPointer) throws(CodecError) -> Batch {
        try withCheckedPayload(frame) { reader, version throws(CodecError) in
            try decodePayload(reader, version: version)
        }
    }

    /// What a frame says about itself, after the same checks as ``decode(_:)`` up to the end of the
    /// checksum and the payload's leading fields, without decoding its columns: what a spool checks
    /// before it sends a stored frame as it is.
    public func summary(of frame: UnsafeRawBufferPointer) throws(CodecError) -> FrameSummary {
        try withCheckedPayload(frame) { input, version throws(CodecError) in
            var reader = input
            let leading = try readLeadingFields(&reader, version: version)
            return FrameSummary(
                version: version, device: leading.device, stream: leading.stream,
                firstSequence: leading.firstSequence, readingCount: leading.count, frameBytes: frame.count)
        }
    }

    /// Checks the header, the length and the CRC, inflates when needed, and hands the payload on.
    private func withCheckedPayload<T>(
        _ frame: UnsafeRawBufferPointer, _ body: (consuming ByteReader, FormatVersion) throws(CodecError) -> T
    ) throws(CodecError) -> T {
        let header = try FrameHeader.parse(frame, limits: limits)
        guard frame.count >= header.frameBytes else {
            throw CodecError(.truncated, "frame declares \(header.frameBytes) bytes, only \(frame.count) arrived", at: frame.count, in: .frame)
        }
        guard frame.count == header.frameBytes else {
            throw CodecError(.malformed, "\(frame.count - header.frameBytes) bytes follow the frame's checksum", at: header.frameBytes, in: .frame)
        }
        let checked = UnsafeRawBufferPointer(rebasing: frame[0..<header.frameBytes - FrameHeader.trailerByteCount])
        let expected = UInt32(littleEndian: frame.loadUnaligned(fromByteOffset: checked.count, as: UInt32.self))
        let actual = Checksum.crc32(checked)
        guard expected == actual else {
            throw CodecError(.checksumMismatch, "CRC-32 is \(hex(actual)), the frame says \(hex(expected))", at: checked.count, in: .frame)
        }
        let stored = UnsafeRawBufferPointer(rebasing: frame[FrameHeader.byteCount..<checked.count])
        if header.isDeflated {
            let payload = try Deflate.decompress(stored, outputCount: header.payloadBytes, inputOffset: FrameHeader.byteCount)
            return try payload.withUnsafeBytes { raw in
                Result { () throws(CodecError) in
                    try body(ByteReader(raw, origin: 0, area: .payload), header.formatVersion)
                }
            }.get()
        }
        return try body(ByteReader(stored, origin: FrameHeader.byteCount, area: .frame), header.formatVersion)
    }

    private func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// The payload's leading fields, checked: device, stream, first sequence, (version 2) the
    /// sender's clock, and the reading count. Shared by ``summary(of:)`` and the full decode.
    private func readLeadingFields(_ reader: inout ByteReader, version: FormatVersion) throws(CodecError) -> (
        device: String, stream: UInt64, firstSequence: UInt64, sentAt: Int64, count: Int
    ) {
        let device = try reader.readString("device id", maxBytes: limits.maximumDeviceBytes)
        guard !device.isEmpty else { throw reader.error(.malformed, "device id is empty") }
        let stream = try reader.readUInt64("stream id")
        let sequenceOffset = reader.position
        let firstSequence = try reader.readVarint("first sequence number")
        guard firstSequence >= 1 else {
            throw reader.error(.malformed, "first sequence number is 0; sequences start at 1", at: sequenceOffset)
        }
        let sentAt = version == .v2 ? try reader.readSignedVarint("sent-at clock") : 0
        let count = try reader.readCount("reading count", atMost: limits.maximumReadings, code: .limitExceeded)
        guard UInt64.max - firstSequence >= UInt64(count) else {
            throw reader.error(.malformed, "sequence numbers \(firstSequence) + \(count) overflow 64 bits", at: sequenceOffset)
        }
        return (device, stream, firstSequence, sentAt, count)
    }

    /// Decodes a payload (already inflated and checksum-verified); exposed to the fuzzer so that it
    /// can reach the structure behind the checksum.
    func decodePayload(_ input: consuming ByteReader, version: FormatVersion) throws(CodecError) -> Batch {
        var reader = input
        let (device, stream, firstSequence, sentAt, count) = try readLeadingFields(&reader, version: version)
        // Each key takes at least two bytes in version 2 and one in version 3, so the remaining
        // input bounds the count too.
        let seriesCount = try reader.readCount("series count", atMost: limits.maximumSeries, code: .limitExceeded)
        guard seriesCount <= reader.remaining / (version == .v2 ? 2 : 1) else {
            throw reader.error(.truncated, "\(seriesCount) series keys cannot fit in the \(reader.remaining) bytes left")
        }
        guard count == 0 || seriesCount > 0 else {
            throw reader.error(.malformed, "\(count) readings but no series keys")
        }
        var seriesKeys: [String] = []
        if version == .v3 {
            seriesKeys = try SeriesKeys.decode(from: &reader, count: seriesCount, limits: limits)
        } else {
            seriesKeys = try decodeKeysV2(from: &reader, count: seriesCount)
        }

        var readings: [Reading] = []
        if count > 0 {
            readings = try decodeReadings(from: &reader, count: count, seriesKeys: seriesKeys, version: version)
        }
        guard reader.isAtEnd else {
            throw reader.error(.malformed, "\(reader.remaining) bytes follow the last column")
        }
        return Batch(device: device, stream: stream, firstSequence: firstSequence, seriesKeys: seriesKeys, readings: readings, sentAt: sentAt)
    }

    private func decodeKeysV2(from reader: inout ByteReader, count seriesCount: Int) throws(CodecError) -> [String] {
        var seriesKeys: [String] = []
        seriesKeys.reserveCapacity(seriesCount)
        var seen = Set<ExactString>(minimumCapacity: seriesCount)
        for index in 0..<seriesCount {
            let keyOffset = reader.position
            let key = try reader.readString("series key \(index)", maxBytes: limits.maximumSeriesKeyBytes)
            guard !key.isEmpty else { throw reader.error(.malformed, "series key \(index) is empty", at: keyOffset) }
            guard seen.insert(ExactString(key)).inserted else {
                throw reader.error(.malformed, "series key \(index) \"\(key)\" repeats an earlier key", at: keyOffset)
            }
            seriesKeys.append(key)
        }
        return seriesKeys
    }

    private func decodeReadings(
        from reader: inout ByteReader, count: Int, seriesKeys: [String], version: FormatVersion
    ) throws(CodecError) -> [Reading] {
        let seriesCount = seriesKeys.count
        let order = UnsafeMutableBufferPointer<Int32>.allocate(capacity: count)
        defer { order.deallocate() }
        let rows = UnsafeMutableBufferPointer<Int32>.allocate(capacity: count)
        defer { rows.deallocate() }
        var counts = [Int](repeating: 0, count: seriesCount)
        let (mode, rowCount) = try SeriesOrder.decode(
            from: &reader, seriesCount: seriesCount, into: order, rows: rows, counts: &counts, version: version)

        let layoutOffset = reader.position
        let rawLayout = try reader.readByte("timestamp layout")
        guard let layout = TimestampLayout(rawValue: rawLayout) else {
            throw reader.error(.malformed, "timestamp layout is \(rawLayout), only 0 (per series) and 1 (per row) are defined", at: layoutOffset)
        }
        guard layout == .perSeries || mode == .pattern || mode == .rows else {
            throw reader.error(.malformed, "per-row timestamps need the 'pattern' or 'rows' series order", at: layoutOffset)
        }
        // Per-row timestamps, when present, go first; there are at most as many rows as readings.
        let rowTimestamps = UnsafeMutableBufferPointer<Int64>.allocate(capacity: layout == .perRow ? rowCount : 0)
        defer { rowTimestamps.deallocate() }
        if layout == .perRow {
            try IntegerColumn.decode(from: &reader, into: rowTimestamps, what: "row timestamps")
        }

        let timestamps = UnsafeMutableBufferPointer<Int64>.allocate(capacity: count)
        defer { timestamps.deallocate() }
        let values = UnsafeMutableBufferPointer<Double>.allocate(capacity: count)
        defer { values.deallocate() }
        var starts = [Int](repeating: 0, count: seriesCount + 1)
        for series in 0..<seriesCount { starts[series + 1] = starts[series] + counts[series] }
        if version == .v3 {
            try decodeColumnsV3(from: &reader, perSeriesTimestamps: layout == .perSeries, starts: starts, timestamps: timestamps, values: values)
        }
        for series in 0..<seriesCount where version == .v2 {
            let range = starts[series]..<starts[series + 1]
            let what = "series \(series)"
            if layout == .perSeries {
                try IntegerColumn.decode(from: &reader, into: UnsafeMutableBufferPointer(rebasing: timestamps[range]), what: "\(what) timestamps")
            }
            try ValueColumn.decode(from: &reader, into: UnsafeMutableBufferPointer(rebasing: values[range]), what: "\(what) values")
        }
        return [Reading](unsafeUninitializedCapacity: count) { buffer, initialized in
            var cursor = starts
            for index in 0..<count {
                let series = Int(order[index])
                let slot = cursor[series]
                cursor[series] = slot + 1
                let timestamp = layout == .perRow ? rowTimestamps[Int(rows[index])] : timestamps[slot]
                (buffer.baseAddress! + index).initialize(to: Reading(series: series, timestamp: timestamp, value: values[slot]))
            }
            initialized = count
        }
    }

    private func decodeColumnsV3(
        from reader: inout ByteReader, perSeriesTimestamps: Bool, starts: [Int],
        timestamps: UnsafeMutableBufferPointer<Int64>, values: UnsafeMutableBufferPointer<Double>
    ) throws(CodecError) {
        let seriesCount = starts.count - 1
        if perSeriesTimestamps {
            for series in 0..<seriesCount {
                let range = starts[series]..<starts[series + 1]
                try IntegerColumn.decode(from: &reader, into: UnsafeMutableBufferPointer(rebasing: timestamps[range]), what: "series \(series) timestamps")
            }
        }
        let modeOffset = reader.position
        let rawMode = try reader.readByte("value section mode")
        switch SharedValues.Mode(rawValue: rawMode) {
        case .perSeries:
            for series in 0..<seriesCount {
                let range = starts[series]..<starts[series + 1]
                try ValueColumn.decode(from: &reader, into: UnsafeMutableBufferPointer(rebasing: values[range]), what: "series \(series) values")
            }
        case .shared:
            try SharedValues.decode(from: &reader, starts: starts, into: values)
        case nil:
            throw reader.error(.malformed, "value section mode is \(rawMode), only 0 (per series) and 1 (shared) are defined", at: modeOffset)
        }
    }
}
