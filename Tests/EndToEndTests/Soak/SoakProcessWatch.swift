import EdgeSyncTestSupport
import Foundation
import Synchronization

/// Every process the soak starts, by role (`collector`, `edge-agent gw-1`): notices any that exits
/// when the soak did not end it (a crash), and keeps each role's peak resident memory (`VmHWM`, the
/// kernel's high-water mark, read before every kill and once a second).
final class SoakProcessWatch: Sendable {
    private struct Entry {
        var process: ChildProcess
        var isExitExpected: Bool
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var peakKiB: [String: Int] = [:]
        var unexpectedExits: [String] = []
    }

    private let state = Mutex(State())

    func register(_ role: String, _ process: ChildProcess) {
        state.withLock { $0.entries[role] = Entry(process: process, isExitExpected: false) }
    }

    /// Marks `role`'s current process as about to be ended by the soak, after a last memory sample.
    func expectExit(_ role: String) {
        sample()
        state.withLock { $0.entries[role]?.isExitExpected = true }
    }

    var unexpectedExits: [String] { state.withLock { $0.unexpectedExits } }
    var peakKiB: [String: Int] { state.withLock { $0.peakKiB } }

    /// Reads each live process's VmHWM and records processes that ended unexpectedly.
    func sample() {
        let entries = state.withLock { $0.entries }
        var peaks: [String: Int] = [:]
        var exits: [String] = []
        for (role, entry) in entries {
            if let status = entry.process.exitStatus {
                if !entry.isExitExpected {
                    let tail = entry.process.stderrLines.suffix(8).joined(separator: " | ")
                    exits.append("\(role) exited on its own with status \(status); last stderr: \(tail)")
                }
                continue
            }
            if let kib = Self.highWaterMarkKiB(pid: entry.process.processIdentifier) { peaks[role] = kib }
        }
        state.withLock { state in
            for (role, kib) in peaks { state.peakKiB[role] = max(state.peakKiB[role] ?? 0, kib) }
            state.unexpectedExits += exits
            // Report each exit once.
            for (role, entry) in entries where entry.process.exitStatus != nil {
                if state.entries[role]?.process === entry.process { state.entries[role]?.isExitExpected = true }
            }
        }
    }

    /// The `VmHWM` line of /proc/PID/status, in KiB.
    static func highWaterMarkKiB(pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        }
        return nil
    }
}
