import EdgeSyncLogging

/// The log records of the uploader's events and totals.
package enum UploadLog {
    /// Logs retries, quarantines and halts; acknowledgements are too frequent for a log (`status`
    /// and /metrics carry the counts).
    package static func writer(_ logger: Logger) -> @Sendable (UploadEvent) -> Void {
        { event in
            switch event {
            case .acknowledged:
                break
            case .retrying(let range, let wait, let reason):
                let milliseconds = wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000
                logger.warning("retry", ["range": "\(range)", "wait_ms": "\(milliseconds)", "reason": .quoted(reason)])
            case .quarantined(let range, let reason):
                logger.error("quarantined", ["range": "\(range)", "reason": .quoted(reason)])
            case .halted(let reason):
                logger.error("halted", ["reason": .quoted(reason)])
            case .fellBackToSingleFrames(let reason):
                logger.warning("frame_runs_refused", ["fallback": "single version 2 frames", "reason": .quoted(reason)])
            }
        }
    }

    /// The totals of a run, for its `stopped` record.
    package static func fields(_ statistics: UploadStatistics) -> [(key: String, value: Logger.Value)] {
        [
            ("acknowledged", "\(statistics.readingsAcknowledged)"), ("duplicates", "\(statistics.readingsDuplicate)"),
            ("bytes_sent", "\(statistics.bytesSent)"), ("quarantined", "\(statistics.readingsQuarantined)"),
            ("retries", "\(statistics.retries.values.reduce(0, +))"),
            ("sent_as_stored", "\(statistics.readingsSentAsStored)"),
        ]
    }
}
