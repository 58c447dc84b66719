/// One `key=value` line per uploader event.
package enum UploadLog {
    /// Logs retries, quarantines and halts through `log`; acknowledgements are too frequent for a log
    /// (`status` and /metrics carry the counts).
    package static func writer(_ log: @escaping @Sendable (String) -> Void) -> @Sendable (UploadEvent) -> Void {
        { event in
            switch event {
            case .acknowledged:
                break
            case .retrying(let range, let wait, let reason):
                log(
                    "level=warn event=retry range=\(range) wait_ms=\(wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000) reason=\(quoted(reason))"
                )
            case .quarantined(let range, let reason):
                log("level=error event=quarantined range=\(range) reason=\(quoted(reason))")
            case .halted(let reason):
                log("level=error event=halted reason=\(quoted(reason))")
            }
        }
    }

    package static func fields(_ statistics: UploadStatistics) -> String {
        "acknowledged=\(statistics.readingsAcknowledged) duplicates=\(statistics.readingsDuplicate)"
            + " bytes_sent=\(statistics.bytesSent) quarantined=\(statistics.readingsQuarantined)"
            + " retries=\(statistics.retries.values.reduce(0, +))"
    }

    static func quoted(_ text: String) -> String {
        "\""
            + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: " ") + "\""
    }
}
