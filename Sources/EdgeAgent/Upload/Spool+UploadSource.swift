import EdgeSyncCodec
import EdgeSyncProtocol
import Synchronization

/// Wakes every task waiting in `wait()` when `signal()` is called; cancellation ends a wait early.
final class AppendSignal: Sendable {
    private struct State {
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    func signal() {
        let waiters = state.withLock { state in
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns at the next `signal()` or when the task is cancelled.
    func wait() async {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}

extension Spool: UploadSource {
    package var identity: (device: String, stream: UInt64) { (device, stream) }

    /// The highest sequence number assigned so far, read from the file so that readings another
    /// process (an `edge-agent import` beside the running agent) committed are seen too.
    package func lastSequence() async throws -> UInt64 {
        try await run("reading the spool position") { store in try store.assignedThrough() }
    }

    /// Returns once a reading above `sequence` exists: woken at once by commits in this process, and
    /// by a check of the file every `pollInterval` for commits of other processes.
    package func waitForReadings(after sequence: UInt64) async {
        await waitForReadings(after: sequence, pollInterval: .milliseconds(250))
    }

    func waitForReadings(after sequence: UInt64, pollInterval: Duration) async {
        while !Task.isCancelled {
            if let last = try? await lastSequence(), last > sequence { return }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.appendSignal.wait() }
                group.addTask { try? await Task.sleep(for: pollInterval) }
                await group.next()
                group.cancelAll()
            }
        }
    }

    package func frames(in range: SequenceRange, maximumReadings: Int, maximumBytes: Int) async throws -> UploadBatch? {
        try await run("reading the spool") { store in
            try store.storedRun(in: range, maxReadings: maximumReadings, maxBytes: maximumBytes)
        }
    }
}

extension SpoolStore {
    /// `next_seq - 1` as stored in the file.
    func assignedThrough() throws -> UInt64 {
        let statement = try database.statement("SELECT value FROM meta WHERE key = 'next_seq'")
        defer { statement.reset() }
        guard try statement.step() else { return nextSequence - 1 }
        return UInt64(max(1, statement.int64(at: 0))) - 1
    }
}
