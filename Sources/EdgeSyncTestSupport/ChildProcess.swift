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
        var isStdoutClosed = false
        var outputClosedWaiters: [CheckedContinuation<Void, Never>] = []
        var exitStatus: Int32?
        var lineWaiters:
            [(predicate: @Sendable (String) -> Bool, continuation: CheckedContinuation<String, any Error>)] =
                []
        var exitWaiters: [CheckedContinuation<Int32, Never>] = []
    }

    /// Holds the state so the pipe and termination handlers can share it with the process object.
    private final class Shared: Sendable {
        let state = Mutex(State())

        /// Records the exit status (the first report wins) and wakes the exit waiters.
        func receiveExit(_ status: Int32) {
            let waiters = state.withLock { state -> [CheckedContinuation<Int32, Never>] in
                guard state.exitStatus == nil else { return [] }
                state.exitStatus = status
                defer { state.exitWaiters.removeAll() }
                return state.exitWaiters
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }

        /// Takes a piece of standard output; empty data is end of file.
        func receiveStdout(_ data: Data) {
            if data.isEmpty {
                let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                    state.isStdoutClosed = true
                    guard state.isStderrClosed else { return [] }
                    defer { state.outputClosedWaiters.removeAll() }
                    return state.outputClosedWaiters
                }
                for waiter in waiters { waiter.resume() }
                return
            }
            state.withLock { $0.stdout.append(data) }
        }

        /// Takes a piece of standard error; empty data is end of file. Wakes line waiters.
        func receiveStderr(_ data: Data) {
            let matched = state.withLock {
                state -> [(CheckedContinuation<String, any Error>, Result<String, any Error>)] in
                if data.isEmpty {
                    state.isStderrClosed = true
                } else {
                    state.partialStderr.append(data)
                }
                var newLines: [String] = []
                while let newline = state.partialStderr.firstIndex(of: 10) {
                    newLines.append(String(decoding: state.partialStderr[..<newline], as: UTF8.self))
                    state.partialStderr.removeSubrange(...newline)
                }
                if state.isStderrClosed, !state.partialStderr.isEmpty {
                    // A last line without a newline still counts.
                    newLines.append(String(decoding: state.partialStderr, as: UTF8.self))
                    state.partialStderr.removeAll()
                }
                state.stderrLines.append(contentsOf: newLines)
                if state.isStderrClosed, state.isStdoutClosed {
                    for waiter in state.outputClosedWaiters { waiter.resume() }
                    state.outputClosedWaiters.removeAll()
                }
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

    /// Starts `executable`; `input` is written to its standard input (then closed) from a thread of
    /// its own, standard output and error are collected.
    package init(
        _ executable: URL,
        _ arguments: [String],
        environment: [String: String]? = nil,
        input: Data? = nil,
        name: String? = nil
    ) throws {
        self.name = name ?? executable.lastPathComponent
        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let stdout = Pipe.closingOnExec()
        let stderr = Pipe.closingOnExec()
        let stdin = input.map { _ in Pipe.closingOnExec() }
        process.standardInput = stdin ?? FileHandle.nullDevice
        process.standardOutput = stdout
        process.standardError = stderr
        process.terminationHandler = { [shared] process in shared.receiveExit(process.terminationStatus) }
        try process.run()
        // Foundation reports the exit only once every descendant that inherited its internal
        // descriptor has gone too (a `sleep 60 &` keeps a finished shell "running" for a minute);
        // waitid sees the child itself become a zombie, without reaping it.
        Self.watchExit(of: process.processIdentifier, shared)
        // Blocking reads on threads of their own: Foundation's readabilityHandler was seen to crash
        // libdispatch's event loop when many children come and go.
        for (pipe, receive) in [(stdout, shared.receiveStdout), (stderr, shared.receiveStderr)] {
            let handle = pipe.fileHandleForReading
            Thread {
                // One read(2) at a time: whatever has arrived is delivered at once (a log line the
                // test awaits), and 0 is end of file.
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = buffer.withUnsafeMutableBytes {
                        Glibc.read(handle.fileDescriptor, $0.baseAddress, $0.count)
                    }
                    if count < 0 && errno == EINTR { continue }
                    let data = count > 0 ? Data(buffer[..<count]) : Data()
                    receive(data)
                    if data.isEmpty { break }
                }
            }.start()
        }
        if let stdin, let input {
            // A child that exits without reading everything must not kill the test with SIGPIPE:
            // the write then fails with EPIPE instead.
            signal(SIGPIPE, SIG_IGN)
            // A feeder thread, so a child that writes before it reads can never deadlock with us.
            Thread {
                try? stdin.fileHandleForWriting.write(contentsOf: input)
                try? stdin.fileHandleForWriting.close()
            }.start()
        }
    }

    /// Waits on a thread of its own for the child `pid` to exit and reports its status as
    /// Foundation does (the exit code, or the signal number), leaving the reaping to Foundation
    /// (`WNOWAIT`). When Foundation has reaped it first, `waitid` fails and Foundation's report
    /// stands.
    private static func watchExit(of pid: Int32, _ shared: Shared) {
        Thread {
            var info = siginfo_t()
            while true {
                if waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == 0 { break }
                if errno != EINTR { return }
            }
            shared.receiveExit(info._sifields._sigchld.si_status)
        }.start()
    }

    package var processIdentifier: Int32 { process.processIdentifier }

    /// The exit status once the process has ended, nil while it runs: for polling with a deadline
    /// where awaiting `waitForExit()` could wait forever.
    package var exitStatus: Int32? { shared.state.withLock { $0.exitStatus } }

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

    /// Returns once standard output and standard error have both reached end of file.
    package func waitForOutputToClose() async {
        await withCheckedContinuation { continuation in
            let isClosed = shared.state.withLock { state -> Bool in
                if state.isStderrClosed && state.isStdoutClosed { return true }
                state.outputClosedWaiters.append(continuation)
                return false
            }
            if isClosed { continuation.resume() }
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
    ///
    /// A child still running after `timeout` is killed and the run fails, naming the command and
    /// what it wrote: a hung child must fail its test, never stall the whole suite. After the exit,
    /// end of file on both pipes is awaited for at most `outputGrace` (a grandchild that inherited
    /// the write end would otherwise hold the test until it exits) and whatever arrived is returned.
    package static func run(
        _ executable: URL,
        _ arguments: [String],
        environment: [String: String]? = nil,
        input: Data? = nil,
        timeout: Duration = .seconds(300),
        outputGrace: Duration = .seconds(30)
    ) async throws -> Output {
        let child = try ChildProcess(executable, arguments, environment: environment, input: input)
        guard await finishes(within: timeout, { _ = await child.waitForExit() }) else {
            child.kill()
            _ = await child.waitForExit()
            throw Failure(
                "\(executable.lastPathComponent) \(arguments.joined(separator: " ")) did not exit within \(timeout);"
                    + " killed. stdout: \(child.stdoutText) stderr: \(child.stderrLines.joined(separator: "\n"))")
        }
        let status = await child.waitForExit()
        // The pipes may still hold the last bytes after exit: wait for end of file on both.
        _ = await finishes(within: outputGrace) { await child.waitForOutputToClose() }
        return Output(status: status, stdout: child.stdoutText, stderr: child.stderrLines.joined(separator: "\n"))
    }

    /// Whether `operation` returns within `limit`. On false it is left running (suspended on an
    /// event that has not come), which only happens when a test is already failing.
    private static func finishes(within limit: Duration, _ operation: @escaping @Sendable () async -> Void) async -> Bool {
        final class Once: Sendable {
            let continuation = Mutex<CheckedContinuation<Bool, Never>?>(nil)
            func resume(_ value: Bool) { continuation.withLock { $0.take() }?.resume(returning: value) }
        }
        let once = Once()
        return await withCheckedContinuation { continuation in
            once.continuation.withLock { $0 = continuation }
            let timer = Task {
                // Cancelled once the operation has finished (and resumed with true first).
                try? await Task.sleep(for: limit)
                once.resume(false)
            }
            Task {
                await operation()
                once.resume(true)
                timer.cancel()
            }
        }
    }
}

extension Pipe {
    /// A pipe whose two ends are closed in any child process started later, except where a child
    /// is given them as its standard streams. Without this a child started by a parallel test
    /// inherits the write end of another child's output, and the reader waits for end of file until
    /// that unrelated process exits.
    package static func closingOnExec() -> Pipe {
        let pipe = Pipe()
        for handle in [pipe.fileHandleForReading, pipe.fileHandleForWriting] {
            _ = fcntl(handle.fileDescriptor, F_SETFD, FD_CLOEXEC)
        }
        return pipe
    }
}
