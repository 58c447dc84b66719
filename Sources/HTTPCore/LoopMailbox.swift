import Glibc
import Synchronization

/// What handler tasks ask of the event loop. Everything that touches a socket goes through here,
/// so sockets have exactly one owner: the loop thread.
enum LoopMessage: Sendable {
    /// How a response leaves the connection once its last byte is queued.
    enum Ending: Sendable {
        case keepAlive
        case close
    }

    /// Queue bytes of the response; `ending` marks the last bytes; `ack` resumes once the bytes are
    /// queued and the connection's send buffer is below its high-water mark (or throws if it closed).
    case write(UInt64, [UInt8], ending: Ending?, ack: CheckedContinuation<Void, any Error>?)
    /// The handler failed mid-response: close the connection without finishing the body.
    case abort(UInt64)
    /// The handler drained its body buffer: read from the socket again.
    case resumeReading(UInt64)
    /// The handler started reading a body the client is holding back for `100 Continue`.
    case sendContinue(UInt64)
    /// Stop accepting, let in-flight requests finish until the deadline (monotonic nanoseconds).
    case shutdown(deadline: UInt64)
    /// A job of a handler task that prefers the loop as its executor.
    case run(UnownedJob)
}

/// A queue of messages for the loop thread, plus the eventfd that wakes it.
///
/// The eventfd is written only when the queue goes from empty to non-empty; the loop reads the
/// eventfd before taking the queue, so no message can be left behind without a wake-up pending.
final class LoopMailbox: Sendable {
    private struct State {
        var messages: [LoopMessage] = []
        var isClosed = false
        /// The loop's own thread, once it runs: its posts need no wake-up.
        var loopThread: pthread_t?
    }

    private let state = Mutex(State())
    let eventFD: Int32

    init() throws {
        eventFD = try Epoll.makeEventFD()
    }

    deinit { Glibc.close(eventFD) }

    func post(_ message: LoopMessage) {
        if !postIfOpen(message) { LoopMailbox.reject(message) }
    }

    /// Queues a message unless the loop has stopped; false means the caller must deal with it.
    func postIfOpen(_ message: LoopMessage) -> Bool {
        let poster = pthread_self()
        let wake: Bool? = state.withLock { state in
            if state.isClosed { return nil }
            state.messages.append(message)
            guard state.messages.count == 1 else { return false }
            // The loop posting to itself (handlers running on it) is awake already and drains the
            // queue before it waits again: two syscalls per request saved.
            if let loop = state.loopThread, pthread_equal(loop, poster) != 0 { return false }
            return true
        }
        guard let wake else { return false }
        if wake {
            var one: UInt64 = 1
            _ = write(eventFD, &one, 8)
        }
        return true
    }

    /// Called on the loop thread when the loop starts: from then on its own posts skip the eventfd,
    /// and the loop must take what it posted (`hasMessages`) before each wait.
    func attachLoopThread() {
        let thread = pthread_self()
        state.withLock { $0.loopThread = thread }
    }

    /// Whether messages are queued (for the loop, before it waits).
    var hasMessages: Bool { state.withLock { !$0.messages.isEmpty } }

    /// Takes every queued message. The loop resets the eventfd on the first take after a wake-up;
    /// later takes in the same pass skip that syscall (a wake-up left pending only costs a spurious
    /// turn of the loop).
    func takeAll(resettingWakeUp: Bool = true) -> [LoopMessage] {
        if resettingWakeUp {
            var counter: UInt64 = 0
            _ = read(eventFD, &counter, 8)
        }
        return state.withLock { state in
            defer { state.messages = [] }
            return state.messages
        }
    }

    /// The loop has stopped: later posts are refused; returns what was still queued.
    func close() -> [LoopMessage] {
        state.withLock { state in
            state.isClosed = true
            defer { state.messages = [] }
            return state.messages
        }
    }

    static func reject(_ message: LoopMessage) {
        if case .write(_, _, _, let ack?) = message {
            ack.resume(throwing: HTTPError.connectionClosed)
        }
    }
}

/// A handler task's way to reach its connection on the loop.
struct ConnectionHandle: Sendable {
    let id: UInt64
    let mailbox: LoopMailbox

    func post(_ message: LoopMessage) { mailbox.post(message) }

    /// Queues bytes and waits for room in the connection's send buffer.
    func write(_ bytes: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (ack: CheckedContinuation<Void, any Error>) in
            mailbox.post(.write(id, bytes, ending: nil, ack: ack))
        }
    }
}

/// Nanoseconds on the monotonic clock; the loop's only notion of time.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

extension Duration {
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }
}

/// Writes a line to standard error; the core has no logging dependency, and errors must reach the
/// operator without reaching the client.
func logToStandardError(_ message: String) {
    var line = Array("http: \(message)\n".utf8)
    line.withUnsafeMutableBytes { _ = write(2, $0.baseAddress, $0.count) }
}

/// The event loop thread as a task executor, for handlers configured to run there.
///
/// Jobs go through the mailbox like any other message, so they run between socket events in the
/// order they were enqueued; a job that blocks stalls every connection, hence the opt-in.
final class LoopExecutor: TaskExecutor {
    let mailbox: LoopMailbox

    init(mailbox: LoopMailbox) { self.mailbox = mailbox }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        // Once the loop has stopped, jobs run on the enqueuing thread so that late tasks still finish.
        if !mailbox.postIfOpen(.run(unowned)) {
            unowned.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
