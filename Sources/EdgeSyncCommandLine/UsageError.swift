/// A mistake in how a command was invoked or configured, reported with the name of the setting
/// at fault. Commands print it to stderr and exit with `ExitCode.usage` (64).
package struct UsageError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The flag, positional argument or configuration key at fault (`--listen`, `limits.max_bytes`).
    package var setting: String?
    package var reason: String

    package init(_ reason: String, setting: String? = nil) {
        self.setting = setting
        self.reason = reason
    }

    package var description: String {
        if let setting { return "\(setting): \(reason)" }
        return reason
    }
}
