import EdgeSyncLogging
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// SIGTERM and SIGINT as an `AsyncSequence`: a long-running command awaits the first one and shuts
/// down between units of work instead of dying in the middle of one.
///
/// A real `sigaction` handler writes the signal number to a pipe (the only thing it does, and it is
/// async-signal-safe); one thread reads the pipe and hands each signal to every live stream. This
/// works whichever thread the kernel picks, from the moment `stream()` returns. (Ignoring the
/// signal and relying on a Dispatch signal source loses a signal that arrives before Dispatch has
/// registered, and was seen to hang.) With no live stream, a signal terminates the process as usual.
package enum TerminationSignals {
    package static func stream() -> AsyncStream<Int32> {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        let id = SignalRelay.shared.subscribe(continuation)
        continuation.onTermination = { _ in SignalRelay.shared.unsubscribe(id) }
        return stream
    }

    /// Runs `body` until it finishes or a signal arrives on `signals`, which cancels it (logged as
    /// `event=shutdown signal=N`): cancellation is shutdown, so `body` returns once the service it
    /// runs has stopped, with what it did.
    package static func runUntilSignal<T: Sendable>(
        _ signals: AsyncStream<Int32>, logger: Logger, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let work = Task { try await body() }
        let watcher = Task {
            for await number in signals {
                logger.info("shutdown", ["signal": "\(number)"])
                work.cancel()
                break
            }
        }
        defer { watcher.cancel() }
        return try await work.value
    }
}

/// Write end of the signal pipe; written once before the handler is installed, read by the handler.
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

private func relayTerminationSignal(_ signal: Int32) {
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: signal)
    _ = write(signalPipeWriteEnd, &byte, 1)
    errno = saved
}

private final class SignalRelay: Sendable {
    static let shared = SignalRelay()

    private struct State {
        var nextID = 0
        var subscribers: [Int: AsyncStream<Int32>.Continuation] = [:]
    }

    private let state = Mutex(State())

    private init() {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { return }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        signalPipeWriteEnd = ends[1]
        let readEnd = ends[0]
        Thread { [self] in relay(from: readEnd) }.start()
        for number in [SIGTERM, SIGINT] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = relayTerminationSignal
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
    }

    func subscribe(_ continuation: AsyncStream<Int32>.Continuation) -> Int {
        state.withLock { state in
            defer { state.nextID += 1 }
            state.subscribers[state.nextID] = continuation
            return state.nextID
        }
    }

    func unsubscribe(_ id: Int) {
        state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
    }

    private func relay(from readEnd: Int32) {
        var byte: UInt8 = 0
        while true {
            let count = read(readEnd, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            guard count == 1 else { return }
            let number = Int32(byte)
            let subscribers = state.withLock { Array($0.subscribers.values) }
            if subscribers.isEmpty {
                // Nobody is listening: behave as if no handler were installed.
                signal(number, SIG_DFL)
                raise(number)
                continue
            }
            for subscriber in subscribers { subscriber.yield(number) }
        }
    }
}
