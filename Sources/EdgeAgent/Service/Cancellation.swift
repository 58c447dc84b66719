import Foundation
import Synchronization

/// Returns once the current task is cancelled (at once if it already is): what a `run()` awaits
/// between starting its threads and stopping them.
func waitForCancellation() async {
    let waiter = CancellationWaiter()
    await withTaskCancellationHandler {
        await withCheckedContinuation { waiter.park($0) }
    } onCancel: {
        waiter.cancel()
    }
}

/// Runs blocking `work` (joining threads that may wait on the spool) on a thread of its own, never
/// on the cooperative pool, and returns when it is done.
func awaitBlocking(_ work: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        Thread {
            work()
            done.resume()
        }.start()
    }
}

/// `@unchecked`-free: the state is a `Mutex`. Cancellation may come before or after the park.
private final class CancellationWaiter: Sendable {
    private let state = Mutex<(cancelled: Bool, parked: CheckedContinuation<Void, Never>?)>((false, nil))

    func park(_ continuation: CheckedContinuation<Void, Never>) {
        let resumeNow = state.withLock { state -> Bool in
            if state.cancelled { return true }
            state.parked = continuation
            return false
        }
        if resumeNow { continuation.resume() }
    }

    func cancel() {
        let parked = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.cancelled = true
            defer { state.parked = nil }
            return state.parked
        }
        parked?.resume()
    }
}
