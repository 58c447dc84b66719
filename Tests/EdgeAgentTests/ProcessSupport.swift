import Foundation
import Testing

/// Every test that starts child processes, one at a time: they block a thread while they wait for
/// their child, and children started at the same moment could inherit each other's pipe ends and
/// then never see end-of-file.
@Suite(.serialized) enum ChildProcessTests {}

/// The built `edge-agent` binary, beside the test bundle in SwiftPM's build folder.
func edgeAgentBinary() throws -> URL {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("edge-agent"),
        Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("edge-agent"),
        Bundle.main.bundleURL.appendingPathComponent("edge-agent"),
    ]
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw ProcessFailure(description: "edge-agent binary not found beside the tests (build with --build-tests)")
    }
    return found
}

struct ProcessFailure: Error, CustomStringConvertible { var description: String }

struct ProcessOutput {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `executable` with `arguments`, feeding `input` on stdin, and collects everything it writes.
/// The waiting happens on a thread of its own: blocking a cooperative-pool thread (two on this
/// machine) stalls every other test running in parallel.
func runProcess(_ executable: URL, _ arguments: [String], input: Data = Data()) async throws -> ProcessOutput {
    try await onOwnThread { try runProcessBlocking(executable, arguments, input: input) }
}

/// Runs blocking work on a new thread and resumes the caller with its result.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

private func runProcessBlocking(_ executable: URL, _ arguments: [String], input: Data) throws -> ProcessOutput {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let stdin = Pipe()
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    // Feed and drain on other threads so a full pipe can never stall both sides.
    // A child that stops reading early (a bad line, a full spool) closes its end: the write then
    // fails with EPIPE, which must neither kill the test process nor be fatal.
    signal(SIGPIPE, SIG_IGN)
    let feeder = Thread {
        try? stdin.fileHandleForWriting.write(contentsOf: input)
        try? stdin.fileHandleForWriting.close()
    }
    feeder.start()
    let errorData = Locked(Data())
    let errorDone = DispatchSemaphore(value: 0)
    let errorReader = Thread {
        errorData.set(stderr.fileHandleForReading.readDataToEndOfFile())
        errorDone.signal()
    }
    errorReader.start()
    let outData = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    errorDone.wait()
    return ProcessOutput(
        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errorData.value, as: UTF8.self))
}

/// A value handed from one thread to another once.
final class Locked<T>: @unchecked Sendable {
    // Guarded by `lock`.
    private var stored: T
    private let lock = NSLock()
    init(_ value: T) { stored = value }
    func set(_ value: T) {
        lock.withLock { stored = value }
    }
    var value: T { lock.withLock { stored } }
}
