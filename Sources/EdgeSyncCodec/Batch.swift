/// One sensor reading: which series, when (nanoseconds since the Unix epoch) and what value.
///
/// Equality compares the value's bits, so NaN payloads and -0.0 count as themselves; that is the
/// equality the codec preserves.
public struct Reading: Sendable, Hashable, CustomStringConvertible {
    /// Index into the batch's ``Batch/seriesKeys``.
    public var series: Int
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    public var timestamp: Int64
    public var value: Double

    public init(series: Int, timestamp: Int64, value: Double) {
        self.series = series
        self.timestamp = timestamp
        self.value = value
    }

    public static func == (lhs: Reading, rhs: Reading) -> Bool {
        lhs.series == rhs.series && lhs.timestamp == rhs.timestamp && lhs.value.bitPattern == rhs.value.bitPattern
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(series)
        hasher.combine(timestamp)
        hasher.combine(value.bitPattern)
    }

    public var description: String { "(\(series), \(timestamp), \(value))" }
}

/// A contiguous run of one stream's readings: reading `i` has sequence number `firstSequence + i`.
///
/// The identity of a reading is `(device, stream, sequence)`, never its timestamp: two readings of
/// one series may share a timestamp and both are real.
public struct Batch: Sendable, Hashable {
    /// The configured device id (UTF-8, at most ``DecodingLimits/maximumDeviceBytes`` bytes).
    public var device: String
    /// The random 64-bit id drawn when the spool was created.
    public var stream: UInt64
    /// Sequence number of the first reading; sequence numbers start at 1.
    public var firstSequence: UInt64
    /// Series keys (for example `temperature,site=b01`); readings refer to them by index.
    public var seriesKeys: [String]
    /// Readings in sequence order.
    public var readings: [Reading]
    /// The sender's wall clock when it encoded the batch, in nanoseconds since the epoch, so the
    /// receiver can measure the gateway's clock skew (a gateway without a real-time clock reads 1970
    /// until NTP syncs). The sender sets it just before encoding; readings keep their own timestamps.
    public var sentAt: Int64

    public init(
        device: String, stream: UInt64, firstSequence: UInt64, seriesKeys: [String], readings: [Reading],
        sentAt: Int64 = 0
    ) {
        self.device = device
        self.stream = stream
        self.firstSequence = firstSequence
        self.seriesKeys = seriesKeys
        self.readings = readings
        self.sentAt = sentAt
    }

    /// The sequence numbers this batch covers (empty when it holds no readings).
    public var sequences: Range<UInt64> { firstSequence..<firstSequence + UInt64(readings.count) }

    public static func == (lhs: Batch, rhs: Batch) -> Bool {
        lhs.device == rhs.device && lhs.stream == rhs.stream && lhs.firstSequence == rhs.firstSequence
            && lhs.seriesKeys == rhs.seriesKeys && lhs.readings == rhs.readings && lhs.sentAt == rhs.sentAt
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(device)
        hasher.combine(stream)
        hasher.combine(firstSequence)
        hasher.combine(seriesKeys)
        hasher.combine(readings)
        hasher.combine(sentAt)
    }
}
