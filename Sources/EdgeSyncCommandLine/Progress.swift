import EdgeSyncLogging
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One progress line (`[#####.....] 52% 5,200,000/10,000,000 readings  1.2 M/s  eta 4s`), rendered
/// purely so it can be tested without a terminal.
package struct ProgressLine: Sendable, Equatable {
    package var done: Int64
    /// Unknown (`nil`) for input read from a pipe: the bar then shows a count and a rate only.
    package var total: Int64?
    package var elapsedSeconds: Double
    package var unit: String

    package init(done: Int64, total: Int64?, elapsedSeconds: Double, unit: String) {
        self.done = done
        self.total = total
        self.elapsedSeconds = elapsedSeconds
        self.unit = unit
    }

    package func rendered(barWidth: Int = 30) -> String {
        let rate = elapsedSeconds > 0 ? Double(done) / elapsedSeconds : 0
        let rateText = "\(Self.compact(rate))/s"
        guard let total, total > 0 else {
            return "\(Self.grouped(done)) \(unit)  \(rateText)"
        }
        let fraction = min(1, max(0, Double(done) / Double(total)))
        let filled = Int((fraction * Double(barWidth)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled)
        var text = "[\(bar)] \(Int(fraction * 100))% \(Self.grouped(done))/\(Self.grouped(total)) \(unit)  \(rateText)"
        if rate > 0, done < total {
            text += "  eta \(Self.duration(Double(total - done) / rate))"
        }
        return text
    }

    /// `1234567` → `"1,234,567"`.
    package static func grouped(_ value: Int64) -> String {
        let digits = String(value.magnitude)
        var result = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { result.append(",") }
            result.append(digit)
        }
        return value < 0 ? "-" + result : result
    }

    /// `1_234_567` → `"1.2 M"`.
    package static func compact(_ value: Double) -> String {
        switch value {
        case 1e9...: formatted(value / 1e9) + " G"
        case 1e6...: formatted(value / 1e6) + " M"
        case 1e3...: formatted(value / 1e3) + " k"
        default: formatted(value)
        }
    }

    package static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.up))
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m\(whole % 60)s" }
        return "\(whole / 3600)h\((whole % 3600) / 60)m"
    }

    private static func formatted(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// Draws a progress line on standard error when it is a terminal, at most every `interval`, and
/// stays silent otherwise so logs and pipes see only the final summary.
package final class ProgressReporter: Sendable {
    private struct State {
        var done: Int64 = 0
        var total: Int64?
        var lastDraw: ContinuousClock.Instant?
        var hasDrawn = false
    }

    private let state: Mutex<State>
    private let unit: String
    private let start: ContinuousClock.Instant
    private let interval: Duration
    private let isEnabled: Bool
    private let write: @Sendable (String) -> Void

    /// - Parameters:
    ///   - isEnabled: defaults to whether standard error is a terminal.
    ///   - write: receives each piece of output; defaults to standard error.
    package init(
        unit: String,
        total: Int64? = nil,
        interval: Duration = .milliseconds(200),
        isEnabled: Bool = isatty(STDERR_FILENO) == 1,
        write: @escaping @Sendable (String) -> Void = { StandardError.write($0) }
    ) {
        self.state = Mutex(State(total: total))
        self.unit = unit
        self.start = .now
        self.interval = interval
        self.isEnabled = isEnabled
        self.write = write
    }

    package func setTotal(_ total: Int64?) {
        state.withLock { $0.total = total }
    }

    /// Adds `count` to the work done and redraws if the interval has passed.
    package func advance(by count: Int64) {
        let now = ContinuousClock.now
        let line: String? = state.withLock { state in
            state.done += count
            guard isEnabled else { return nil }
            if let last = state.lastDraw, now - last < interval { return nil }
            state.lastDraw = now
            state.hasDrawn = true
            return render(done: state.done, total: state.total, at: now)
        }
        if let line { write("\r\u{1B}[2K" + line) }
    }

    /// Sets the work done to `done` (for sources that report totals, not increments).
    package func update(done: Int64) {
        let current = state.withLock { $0.done }
        if done > current { advance(by: done - current) }
    }

    /// Draws the final state and ends the line, so whatever is printed next starts cleanly.
    package func finish() {
        let now = ContinuousClock.now
        let line: String? = state.withLock { state in
            guard isEnabled else { return nil }
            state.hasDrawn = true
            return render(done: state.done, total: state.total, at: now)
        }
        if let line { write("\r\u{1B}[2K" + line + "\n") }
    }

    package var done: Int64 { state.withLock { $0.done } }

    private func render(done: Int64, total: Int64?, at now: ContinuousClock.Instant) -> String {
        let elapsed = now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return ProgressLine(done: done, total: total, elapsedSeconds: seconds, unit: unit).rendered()
    }
}

/// Unbuffered writes to standard error, safe from any thread.
package enum StandardError {
    package static func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { return }
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(STDERR_FILENO, base + offset, bytes.count - offset)
                if written <= 0 {
                    if written < 0 && errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }

    /// Writes `message` and a newline; a log line (`level=… event=…`) is made readable on a terminal.
    package static func print(_ message: String) {
        write(LogLine.forTerminal(message, isTerminal: isTerminal) + "\n")
    }

    /// Whether standard error is a terminal (read once).
    package static let isTerminal = isatty(STDERR_FILENO) == 1

    /// The root logger of an executable: one logfmt line per record on standard error, made
    /// readable on a terminal. Only executables build it; libraries log through what they are given.
    package static func logger(label: String, warningName: String = "warning") -> Logger {
        Logger(label: label) { record in print(record.logfmt(warningName: warningName)) }
    }
}

/// Log lines are `level=info event=listening key=value …`: one event per line, for log collectors.
/// On a terminal the same line reads `12:04:05 INFO  listening  key=value …`.
package enum LogLine {
    package static func forTerminal(_ line: String, isTerminal: Bool, now: Int64? = nil) -> String {
        guard isTerminal, line.hasPrefix("level=") else { return line }
        var fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        let level = String(fields.removeFirst().dropFirst("level=".count)).uppercased()
        var event = ""
        if let first = fields.first, first.hasPrefix("event=") {
            event = String(first.dropFirst("event=".count))
            fields.removeFirst()
        }
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        let seconds = now.map { $0 / 1_000_000_000 } ?? Int64(time.tv_sec)
        let clock = String(format: "%02d:%02d:%02d", Int((seconds / 3600) % 24), Int((seconds / 60) % 60), Int(seconds % 60))
        let padded = level.padding(toLength: 5, withPad: " ", startingAt: 0)
        return ([clock, padded, event] + fields).filter { !$0.isEmpty }.joined(separator: " ")
    }
}
