/// One reading as a producer hands it to the spool, before it has a sequence number.
package struct IncomingReading: Sendable, Hashable {
    /// The series it belongs to, for example `weather,site=b01 temperature` (see `Docs/edge-agent.md`).
    package var seriesKey: String
    /// Nanoseconds since the Unix epoch.
    package var timestamp: Int64
    package var value: Double

    package init(seriesKey: String, timestamp: Int64, value: Double) {
        self.seriesKey = seriesKey
        self.timestamp = timestamp
        self.value = value
    }
}
