import Foundation
import Glibc
import Synchronization

/// An HTTP/1.1 server: one epoll event loop thread for all sockets, handlers on Swift concurrency.
///
/// `run()` binds, serves until cancelled or `shutdown` is called, then drains: it stops accepting,
/// closes idle connections, lets in-flight requests finish until the grace period ends, and returns.
///
/// ```swift
/// let server = HTTPServer(configuration: .init(port: 0), responder: MyResponder())
/// async let serving: Void = server.run()
/// let address = try await server.localAddress
/// ```
public final class HTTPServer: Sendable {
    /// Where the server listens.
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// Everything tunable; the defaults suit a service behind a reverse proxy or on a LAN.
    public struct Configuration: Sendable {
        /// Numeric IPv4 or IPv6 address (or a name) to bind; `::1` and `127.0.0.1` for loopback only.
        public var host: String
        /// Port to bind; 0 picks a free port, readable from `localAddress`.
        public var port: Int
        public var limits: HTTPRequestParser.Limits
        /// Longest time from the first byte of a request head to its end; then 408 and close.
        public var headerReadTimeout: Duration
        /// Longest time without any body bytes; also the grace period before the minimum rate applies.
        public var bodyReadTimeout: Duration
        /// Slowest acceptable average body rate once the grace period is over; then 408 and close.
        public var bodyMinimumBytesPerSecond: Int
        /// How long an idle keep-alive connection is kept; also how long a stalled send may last.
        public var idleTimeout: Duration
        /// Most open connections (split evenly across event loops). At the limit a new connection
        /// takes the place of the connection idle longest between requests, which is closed; only
        /// when every connection is busy with a request is the newcomer answered 503 and closed.
        public var maxConnections: Int
        /// How long in-flight requests may run after shutdown begins before their connections are cut.
        public var shutdownGrace: Duration
        public var listenBacklog: Int32
        /// Runs handler tasks on the event loop thread instead of the global concurrency pool.
        ///
        /// Saves two thread hand-overs per request, which is most of the per-request cost for small
        /// requests. Only for handlers that never block a thread and compute briefly: a blocking call
        /// (SQLite, file I/O, a lock held long) in a handler stalls every connection of the server.
        public var runsHandlersOnEventLoop: Bool
        /// Event-loop threads, each with its own listening socket on the port (`SO_REUSEPORT`) and its
        /// own share of `maxConnections`. One is enough for most services; more help on machines
        /// with cores to spare.
        public var eventLoopCount: Int

        public init(
            host: String = "127.0.0.1", port: Int = 8080, limits: HTTPRequestParser.Limits = .init(),
            headerReadTimeout: Duration = .seconds(10), bodyReadTimeout: Duration = .seconds(30),
            bodyMinimumBytesPerSecond: Int = 1024, idleTimeout: Duration = .seconds(60),
            maxConnections: Int = 10_000, shutdownGrace: Duration = .seconds(10), listenBacklog: Int32 = 1024,
            runsHandlersOnEventLoop: Bool = false, eventLoopCount: Int = 1
        ) {
            self.host = host
            self.port = port
            self.limits = limits
            self.headerReadTimeout = headerReadTimeout
            self.bodyReadTimeout = bodyReadTimeout
            self.bodyMinimumBytesPerSecond = bodyMinimumBytesPerSecond
            self.idleTimeout = idleTimeout
            self.maxConnections = maxConnections
            self.shutdownGrace = shutdownGrace
            self.listenBacklog = listenBacklog
            self.runsHandlersOnEventLoop = runsHandlersOnEventLoop
            self.eventLoopCount = eventLoopCount
        }
    }

    private enum Phase {
        case idle(shutdownRequested: Bool)
        case running([LoopMailbox], Address)
        case stopped(SocketError?)
    }

    private struct State {
        var phase = Phase.idle(shutdownRequested: false)
        var addressWaiters: [CheckedContinuation<Address, any Error>] = []
        var hasStarted = false
    }

    public let configuration: Configuration
    private let responder: any HTTPResponder
    private let state = Mutex(State())

    public init(configuration: Configuration, responder: some HTTPResponder) {
        self.configuration = configuration
        self.responder = responder
    }

    /// The bound address, once `run()` is listening; waits until then.
    ///
    /// - Throws: the bind error if `run()` failed to listen, or `HTTPError` if the server already stopped.
    public var localAddress: Address {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let result: Result<Address, any Error>? = state.withLock { state in
                    switch state.phase {
                    case .idle:
                        state.addressWaiters.append(continuation)
                        return nil
                    case .running(_, let address):
                        return .success(address)
                    case .stopped(let error):
                        return .failure(error ?? HTTPError(.serviceUnavailable, "server stopped"))
                    }
                }
                if let result { continuation.resume(with: result) }
            }
        }
    }

    /// Serves until the task is cancelled or `shutdown` is called, then shuts down gracefully.
    ///
    /// - Throws: `SocketError` if the address cannot be bound; `HTTPError` if called a second time
    ///   (a server runs once).
    public func run() async throws {
        let isFirstRun = state.withLock { state in
            if case .idle = state.phase, !state.hasStarted {
                state.hasStarted = true
                return true
            }
            return false
        }
        guard isFirstRun else { throw HTTPError(.internalServerError, "HTTPServer.run() called twice") }
        let loopCount = max(1, configuration.eventLoopCount)
        var listeners: [Int32] = []
        var mailboxes: [LoopMailbox] = []
        var handOvers: [LoopHandOver] = []
        let address: Address
        do {
            // Several loops each get their own listening socket on the same port (SO_REUSEPORT), and
            // the kernel spreads new connections across them.
            let first = try Socket.listen(
                host: configuration.host, port: configuration.port, backlog: configuration.listenBacklog,
                reusePort: loopCount > 1)
            listeners.append(first.fd)
            address = first.address
            for _ in 1..<loopCount {
                let next = try Socket.listen(
                    host: configuration.host, port: address.port, backlog: configuration.listenBacklog,
                    reusePort: true)
                listeners.append(next.fd)
            }
            for (index, listener) in listeners.enumerated() {
                let mailbox = try LoopMailbox()
                let loop = try EventLoop(
                    configuration: configuration, responder: responder, listenerFD: listener, mailbox: mailbox,
                    index: index, count: loopCount)
                mailboxes.append(mailbox)
                handOvers.append(LoopHandOver(loop))
            }
        } catch {
            // No loop has run, so none has closed its listener.
            for listener in listeners { close(listener) }
            let waiters = state.withLock { state in
                state.phase = .stopped(error as? SocketError)
                defer { state.addressWaiters = [] }
                return state.addressWaiters
            }
            waiters.forEach { $0.resume(throwing: error) }
            throw error
        }
        let (waiters, shutdownRequested) = state.withLock { state in
            var requested = false
            if case .idle(let flag) = state.phase { requested = flag }
            state.phase = .running(mailboxes, address)
            defer { state.addressWaiters = [] }
            return (state.addressWaiters, requested)
        }
        waiters.forEach { $0.resume(returning: address) }
        if shutdownRequested { shutdown() }

        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                for (index, handOver) in handOvers.enumerated() {
                    group.addTask {
                        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                            let thread = Thread {
                                handOver.take().run()
                                done.resume()
                            }
                            thread.name = "http-event-loop-\(index)"
                            thread.start()
                        }
                    }
                }
            }
        } onCancel: {
            shutdown()
        }
        state.withLock { $0.phase = .stopped(nil) }
    }

    /// Begins a graceful shutdown: stop accepting, close idle connections, give in-flight requests
    /// `grace` (default: the configured `shutdownGrace`) to finish. `run()` returns when done.
    public func shutdown(grace: Duration? = nil) {
        let deadline = monotonicNanoseconds() + (grace ?? configuration.shutdownGrace).nanoseconds
        let mailboxes: [LoopMailbox] = state.withLock { state in
            switch state.phase {
            case .idle:
                state.phase = .idle(shutdownRequested: true)
                return []
            case .running(let mailboxes, _):
                return mailboxes
            case .stopped:
                return []
            }
        }
        for mailbox in mailboxes { mailbox.post(.shutdown(deadline: deadline)) }
    }
}

/// Carries the event loop to its thread.
///
/// `@unchecked Sendable` because `EventLoop` is not Sendable: it is created on the caller's thread,
/// taken exactly once by the loop thread, and never touched by the creator after the hand-over.
private final class LoopHandOver: @unchecked Sendable {
    private var loop: EventLoop?
    init(_ loop: EventLoop) { self.loop = loop }

    func take() -> EventLoop {
        guard let loop else { preconditionFailure("event loop taken twice") }
        self.loop = nil
        return loop
    }
}

/// State shared between the loop and handler tasks.
final class ServerFlags: Sendable {
    /// Set once shutdown begins, so responses announce `Connection: close`.
    let isDraining = Atomic<Bool>(false)
}
