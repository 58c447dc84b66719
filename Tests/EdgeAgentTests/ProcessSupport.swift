import EdgeSyncTestSupport
import Foundation
import Testing

/// Every test that starts child processes, one at a time: some of them count on their child being
/// the only one they started (signals, a FIFO), and a quiet neighbour keeps their timing honest.
@Suite(.serialized) enum ChildProcessTests {}

/// The built `edge-agent` binary, beside the test bundle in SwiftPM's build folder.
func edgeAgentBinary() throws -> URL {
    try ChildProcess.productURL("edge-agent")
}

typealias ProcessOutput = ChildProcess.Output

/// Runs `executable` with `arguments`, feeding `input` on stdin, and collects everything it writes,
/// without blocking a thread of the cooperative pool.
func runProcess(_ executable: URL, _ arguments: [String], input: Data? = nil) async throws -> ProcessOutput {
    try await ChildProcess.run(executable, arguments, input: input)
}

/// Runs blocking work on a new thread and resumes the caller with its result: blocking a
/// cooperative-pool thread (two on this machine) stalls every other test running in parallel.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}
