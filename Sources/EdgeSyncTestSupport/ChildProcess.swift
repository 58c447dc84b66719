import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process of a test (one of the project's binaries, or a tool), with its output collected
/// line by line so a test can await a specific log line instead of sleeping, and kill it at will.
package final class ChildProcess: Sendable {
    package struct Output: Sendable {
        package var status: Int32
        package var stdout: String
        package var stderr: String
    }

    package struct Failure: Error, CustomStringConvertible {
        package var description: String
        package init(_ description: String) { self.description = description }
    }

    private struct State {
        var stdout = Data()
        var stderrLines: [String] = []
        var partialStderr = Data()
        var isStderrClosed = false
        var exitStatus: Int32?
        var lineWaiters:
            [(predicate: @Sendable (String) -> Bool, continuation: CheckedContinuation<String, any Error>)] =
                []
        var exitWaiters: [CheckedContinuation<Int32, Never>] = []
    }

    /// Holds the state so the pipe and termination handlers can share it with the process object.
    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private let process: Process
    private let shared = Shared()
    package let name: String

    /// The built product `name` (an executable target of this package), next to the test bundle.
    package static func productURL(_ name: String) throws -> URL {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent(name),
            Bundle.main.bundleURL.appendingPathComponent(name),
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw Failure("\(name) was not found beside the tests; build with `swift build --build-tests`")
        }
        return found
    }

    /// Starts `executable`; standard input is closed, standard output and error are collected.
    package init(
        _ executable: URL,
        _ arguments: [String],
        environment: [String: String]? = nil,
        name: String? = nil
    ) throws {
        self.name = name ?? executable.lastPathComponent
        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout
        process.standardError = stderr
        stdout.fileHandleForReading.readabilityHandler = { [shared] handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            shared.state.withLock { $0.stdout.append(data) }
        }
        stderr.fileHandleForReading.readabilityHandler = { [shared] handle in
            let data = handle.availableData
            let matched = shared.state.withLock {
                state -> [(CheckedContinuation<String, any Error>, Result<String, any Error>)] in
                if data.isEmpty {
                    state.isStderrClosed = true
                    handle.readabilityHandler = nil
                } else {
                    state.partialStderr.append(data)
                }
                var newLines: [String] = []
                while let newline = state.partialStderr.firstIndex(of: 10) {
                    newLines.append(String(decoding: state.partialStderr[..<newline], as: UTF8.self))
                    state.partialStderr.removeSubrange(...newline)
                }
                state.stderrLines.append(contentsOf: newLines)
                var resumed: [(CheckedContinuation<String, any Error>, Result<String, any Error>)] = []
                state.lineWaiters.removeAll { waiter in
                    if let line = newLines.first(where: waiter.predicate) {
                        resumed.append((waiter.continuation, .success(line)))
                        return true
                    }
                    if state.isStderrClosed {
                        resumed.append((waiter.continuation, .failure(Failure("the process closed stderr"))))
                        return true
                    }
                    return false
                }
                return resumed
            }
            for (continuation, result) in matched { continuation.resume(with: result) }
        }
        process.terminationHandler = { [shared] process in
            let waiters = shared.state.withLock { state in
                state.exitStatus = process.terminationStatus
                defer { state.exitWaiters.removeAll() }
                return state.exitWaiters
            }
            for waiter in waiters { waiter.resume(returning: process.terminationStatus) }
        }
        try process.run()
    }

    package var processIdentifier: Int32 { process.processIdentifier }

    /// Everything written to standard error so far, one element per line.
    package var stderrLines: [String] { shared.state.withLock { $0.stderrLines } }
    package var stdoutText: String { shared.state.withLock { String(decoding: $0.stdout, as: UTF8.self) } }

    /// Waits for a standard-error line satisfying `predicate` (already written or still to come).
    /// Fails when the process closes standard error first.
    package func waitForLine(where predicate: @escaping @Sendable (String) -> Bool) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            let immediate = shared.state.withLock { state -> Result<String, any Error>? in
                if let line = state.stderrLines.first(where: predicate) { return .success(line) }
                if state.isStderrClosed { return .failure(Failure("\(name) exited before logging the awaited line")) }
                state.lineWaiters.append((predicate, continuation))
                return nil
            }
            if let immediate { continuation.resume(with: immediate) }
        }
    }

    /// Sends `signal` (SIGKILL by default: a crash, not a shutdown).
    package func kill(_ signal: Int32 = SIGKILL) {
        // Never signal pid 0 or a pid that may have been reused after the child was reaped.
        let pid = process.processIdentifier
        let hasExited = shared.state.withLock { $0.exitStatus != nil }
        guard pid > 0, !hasExited else { return }
        Glibc.kill(pid, signal)
    }

    /// The exit status once the process has ended (the signal number for a signal).
    package func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = shared.state.withLock { state -> Int32? in
                if let status = state.exitStatus { return status }
                state.exitWaiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Runs `executable` to completion and returns what it wrote.
    package static func run(
        _ executable: URL,
        _ arguments: [String],
        environment: [String: String]? = nil
    ) async throws -> Output {
        let child = try ChildProcess(executable, arguments, environment: environment)
        let status = await child.waitForExit()
        // The pipes may still hold the last bytes after exit: wait for end of file on stderr.
        _ = try? await child.waitForLine { _ in false }
        return Output(status: status, stdout: child.stdoutText, stderr: child.stderrLines.joined(separator: "\n"))
    }
}
