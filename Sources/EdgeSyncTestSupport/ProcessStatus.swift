import Foundation

/// Fields of `/proc/PID/status`, for tests and benchmarks that bound a process's memory.
package enum ProcessStatus {
    /// The value in kB of `field` (`"VmHWM"`: peak resident set, `"VmRSS"`: resident set now) of
    /// process `pid`, or nil when the process or the field is not there.
    package static func kilobytes(_ field: String, pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") }
        return line?.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }
}
