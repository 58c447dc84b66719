import Glibc

/// The single thread that owns every socket: accepts, reads, parses, writes, enforces timeouts.
///
/// Level-triggered epoll over non-blocking sockets. Handlers never run here; they run as tasks and
/// talk back through the `LoopMailbox`, whose eventfd is registered like a socket. Not Sendable:
/// after `run()` starts, only the loop thread touches it.
final class EventLoop {
    private static let listenerToken: UInt64 = 1
    private static let mailboxToken: UInt64 = 2
    private static let readBufferSize = 64 * 1024
    /// Above this many unsent bytes a streaming handler waits before writing more.
    private static let sendHighWater = 256 * 1024
    private static let continueBytes = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
    private static let refusalBytes = Array(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 20\r\n\r\ntoo many connections".utf8)

    private let configuration: HTTPServer.Configuration
    private let responder: any HTTPResponder
    private let mailbox: LoopMailbox
    private let flags = ServerFlags()
    /// Set when handlers run on this thread (`Configuration.runsHandlersOnEventLoop`).
    private let executor: LoopExecutor?
    private let epollFD: Int32
    private var listenerFD: Int32
    private var isListenerPaused = false
    private var connections: [UInt64: Connection] = [:]
    /// Connection ids are unique across loops: loop `i` of `n` hands out 16 + i, 16 + i + n, ...
    private var nextID: UInt64
    private let idStride: UInt64
    private let maxConnections: Int
    private var now: UInt64
    private var nextSweep: UInt64 = 0
    private let sweepInterval: UInt64
    private var shutdownDeadline: UInt64?
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// Bytes a connection may buffer beyond the request being served (pipelined requests).
    private let pipelineLimit: Int

    private let headerTimeout: UInt64
    private let bodyTimeout: UInt64
    private let idleTimeout: UInt64
    private let lingerTimeout: UInt64

    init(
        configuration: HTTPServer.Configuration, responder: any HTTPResponder, listenerFD: Int32,
        mailbox: LoopMailbox, index: Int = 0, count: Int = 1
    ) throws {
        let epollFD = try Epoll.create()
        self.configuration = configuration
        self.responder = responder
        self.listenerFD = listenerFD
        self.mailbox = mailbox
        self.epollFD = epollFD
        self.nextID = 16 + UInt64(index)
        self.idStride = UInt64(count)
        self.maxConnections = (configuration.maxConnections + count - 1) / count
        self.executor = configuration.runsHandlersOnEventLoop ? LoopExecutor(mailbox: mailbox) : nil
        self.now = monotonicNanoseconds()
        headerTimeout = configuration.headerReadTimeout.nanoseconds
        bodyTimeout = configuration.bodyReadTimeout.nanoseconds
        idleTimeout = configuration.idleTimeout.nanoseconds
        lingerTimeout = min(2_000_000_000, headerTimeout)
        // Check timeouts often enough to enforce the shortest within a quarter of itself.
        let shortest = min(headerTimeout, bodyTimeout, idleTimeout)
        sweepInterval = max(1_000_000, min(250_000_000, shortest / 4))
        pipelineLimit = max(64 * 1024, configuration.limits.maxRequestLineLength + configuration.limits.maxHeaderBytes)
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
        register(listenerFD, token: Self.listenerToken, events: Epoll.input, operation: Epoll.add)
        register(mailbox.eventFD, token: Self.mailboxToken, events: Epoll.input, operation: Epoll.add)
    }

    deinit {
        readBuffer.deallocate()
        Glibc.close(epollFD)
    }

    // MARK: - Main loop

    func run() {
        let capacity = 512
        let events = UnsafeMutableRawPointer.allocate(byteCount: capacity * Epoll.eventStride, alignment: 16)
        defer { events.deallocate() }
        let timeoutMilliseconds = Int32(max(1, sweepInterval / 1_000_000))
        mailbox.attachLoopThread()
        while true {
            // What the loop posted to itself woke no eventfd: do not sleep on it.
            let timeout = mailbox.hasMessages ? 0 : timeoutMilliseconds
            let count = Epoll.wait(epollFD, events, capacity: capacity, timeoutMilliseconds: timeout)
            now = monotonicNanoseconds()
            if count < 0 && errno != EINTR {
                logToStandardError("epoll_wait failed: errno \(errno); stopping")
                break
            }
            for index in 0..<max(0, Int(count)) {
                let (flags, token) = Epoll.events(in: events, at: index)
                switch token {
                case Self.listenerToken: acceptConnections()
                case Self.mailboxToken: handleMessages()
                default:
                    if let connection = connections[token] { handleEvents(flags, on: connection) }
                }
            }
            if mailbox.hasMessages { handleMessages(resettingWakeUp: false) }
            if now >= nextSweep {
                sweep()
                nextSweep = now + sweepInterval
            }
            if shutdownDeadline != nil && connections.isEmpty { break }
        }
        for connection in Array(connections.values) { closeConnection(connection) }
        if listenerFD >= 0 { Glibc.close(listenerFD) }
        for message in mailbox.close() {
            if case .run(let job) = message, let executor {
                job.runSynchronously(on: executor.asUnownedTaskExecutor())
            } else {
                LoopMailbox.reject(message)
            }
        }
    }

    private func register(_ fd: Int32, token: UInt64, events: UInt32, operation: Int32) {
        Epoll.control(epollFD, operation, fd, events: events, token: token)
    }

    // MARK: - Accepting

    private func acceptConnections() {
        for _ in 0..<256 {
            guard let (fd, peer) = Socket.accept(listenerFD) else {
                if errno == EMFILE || errno == ENFILE {
                    // Out of descriptors: stop listening until a connection closes, or epoll spins.
                    logToStandardError("accept: out of file descriptors; pausing accepts")
                    register(listenerFD, token: Self.listenerToken, events: 0, operation: Epoll.modify)
                    isListenerPaused = true
                }
                return
            }
            if connections.count >= maxConnections && !reclaimIdleConnection() {
                refuse(fd)
                continue
            }
            let connection = Connection(
                id: nextID, fd: fd, peer: peer, limits: configuration.limits, now: now)
            nextID += idStride
            connections[connection.id] = connection
            connection.registeredEvents = Epoll.input
            register(fd, token: connection.id, events: Epoll.input, operation: Epoll.add)
        }
    }

    /// Makes room for a new connection at the limit by closing the one that has waited longest for
    /// a request, as nginx reuses keep-alive
    /// connections. A connection reading a head, running an exchange or sending a response is never
    /// chosen: returns false when every connection is active, and the newcomer gets 503.
    ///
    /// Without this, one local process holding `maxConnections` idle keep-alive connections would
    /// lock every producer out for as long as it likes. A linear scan: it runs only at the limit.
    private func reclaimIdleConnection() -> Bool {
        var oldest: Connection?
        for connection in connections.values {
            switch connection.phase {
            case .waiting:
                guard connection.headStartedAt == nil, connection.parser.isIdle, connection.pendingOutbound == 0,
                    !connection.closeWhenFlushed
                else { continue }
                if oldest.map({ connection.idleSince < $0.idleSince }) ?? true { oldest = connection }
            case .exchange, .lingering:
                continue  // a lingering connection's response may still be unread: a close could reset it
            }
        }
        guard let oldest else { return false }
        closeConnection(oldest)
        return true
    }

    /// Answers 503 on a connection over the limit; the request it may have sent is read and dropped
    /// first so that closing does not reset the connection before the client sees the answer.
    private func refuse(_ fd: Int32) {
        Self.refusalBytes.withUnsafeBytes { _ = Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        Glibc.shutdown(fd, Int32(SHUT_WR))
        _ = recv(fd, readBuffer.baseAddress, readBuffer.count, Int32(MSG_DONTWAIT))
        Glibc.close(fd)
    }

    // MARK: - Socket events

    private func handleEvents(_ events: UInt32, on connection: Connection) {
        let readable = events & (Epoll.input | Epoll.hangUp | Epoll.error) != 0
        if readable {
            if connection.registeredEvents & Epoll.input != 0 {
                readFrom(connection)
            } else if events & (Epoll.hangUp | Epoll.error) != 0 {
                closeConnection(connection)
                return
            }
        }
        if events & Epoll.output != 0, connections[connection.id] != nil {
            flush(connection)
        }
    }

    private func readFrom(_ connection: Connection) {
        let count = recv(connection.fd, readBuffer.baseAddress, readBuffer.count, 0)
        if count > 0 {
            if connection.isLingering { return }
            switch connection.phase {
            case .waiting:
                if connection.headStartedAt == nil { connection.headStartedAt = now }
            case .exchange where !connection.isBodyComplete:
                connection.bodyProgressAt = now
                connection.bodyWindowBytes += count
            default:
                break
            }
            connection.parser.append(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]))
            process(connection)
        } else if count == 0 {
            peerClosed(connection)
        } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
            closeConnection(connection)
            return
        }
        updateInterest(connection)
    }

    private func peerClosed(_ connection: Connection) {
        connection.peerClosed = true
        switch connection.phase {
        case .waiting, .lingering:
            closeConnection(connection)
        case .exchange:
            // The client may half-close after its request and still read the response.
            if connection.isBodyComplete {
                connection.closeAfterResponse = true
                if connection.isResponseComplete { finishExchange(connection) }
            } else {
                failBody(of: connection, HTTPError.connectionClosed)
            }
        }
    }

    // MARK: - Requests

    /// Runs the parser as far as the connection's phase allows.
    private func process(_ connection: Connection) {
        defer { dispatchPending(connection) }
        while connections[connection.id] != nil {
            switch connection.phase {
            case .lingering: return
            case .exchange where connection.isBodyComplete: return  // pipelined requests wait their turn
            case .waiting where connection.pendingOutbound > Self.sendHighWater:
                return  // a client that pipelines without reading gets no more work until it reads
            default: break
            }
            let event: HTTPRequestParser.Event?
            do {
                event = try connection.parser.next()
            } catch {
                parseFailed(connection, error)
                return
            }
            guard let event else { return }
            switch event {
            case .head(let head):
                startExchange(connection, head: head)
            case .body(let bytes):
                if var early = connection.earlyBody {
                    connection.earlyBody = nil  // keeps `early` uniquely referenced while appending
                    if early.isEmpty { early = bytes } else { early += bytes }
                    connection.earlyBody = early
                } else if let body = connection.body, body.push(bytes) {
                    connection.isReadingPausedForBody = true
                }
            case .end:
                connection.isBodyComplete = true
                connection.body?.finish()
                if connection.isResponseComplete { finishExchange(connection) }
            }
        }
    }

    private func startExchange(_ connection: Connection, head: HTTPRequestHead) {
        connection.phase = .exchange
        connection.headStartedAt = nil
        connection.isResponseStarted = false
        connection.isResponseComplete = false
        connection.isBodyComplete = false
        connection.isReadingPausedForBody = false
        connection.closeAfterResponse = !head.isKeepAlive || shutdownDeadline != nil
        connection.bodyProgressAt = now
        connection.bodyWindowStart = now
        connection.bodyWindowBytes = 0
        let handle = ConnectionHandle(id: connection.id, mailbox: mailbox)
        var body = HTTPRequestBody()
        connection.body = nil
        connection.earlyBody = nil
        if head.expectsContinue && head.framing != .none {
            // Nothing arrives before `100 Continue`, which the stream sends on the handler's first read.
            let stream = BodyStream(connection: handle, needsContinue: true)
            connection.body = stream
            body = HTTPRequestBody(stream: stream)
        } else if head.framing != .none {
            connection.earlyBody = []  // collected until `dispatchPending` decides bytes or stream
        }
        let request = HTTPRequest(head: head, body: body)
        let context = HTTPRequestContext(
            connectionID: connection.id, remoteAddress: connection.peer, requestIndex: connection.requestCount)
        connection.requestCount += 1
        connection.pendingDispatch = PendingDispatch(request: request, context: context, handle: handle)
    }

    /// Starts the handler task for a request whose head (and whatever body was already read) has been
    /// parsed. Deferred to the end of `process` so a small body is already buffered when the handler
    /// first reads it, saving a second task wake-up per request.
    private func dispatchPending(_ connection: Connection) {
        guard var pending = connection.pendingDispatch, connections[connection.id] != nil else { return }
        connection.pendingDispatch = nil
        if let early = connection.earlyBody {
            connection.earlyBody = nil
            if connection.isBodyComplete {
                pending.request.body = HTTPRequestBody(bytes: early)
            } else {
                // The rest is still to come: stream it, starting with what already arrived.
                let stream = BodyStream(connection: pending.handle, needsContinue: false)
                if !early.isEmpty && stream.push(early) { connection.isReadingPausedForBody = true }
                connection.body = stream
                pending.request.body = HTTPRequestBody(stream: stream)
            }
        }
        let responder = self.responder
        let flags = self.flags
        let dispatched = pending
        // Without a preference the task runs on the global concurrency pool.
        Task(executorPreference: executor) {
            await Exchange.run(
                request: dispatched.request, context: dispatched.context, responder: responder,
                connection: dispatched.handle, flags: flags)
        }
    }

    private func parseFailed(_ connection: Connection, _ error: HTTPError) {
        switch connection.phase {
        case .lingering:
            break
        case .exchange where connection.pendingDispatch == nil:
            // The handler is running: it sees the error from the body; the exchange then answers it.
            failBody(of: connection, error)
        case .waiting, .exchange:
            // The head failed, or the body failed before the handler started: the request never
            // reaches a handler. Answer here and close.
            connection.pendingDispatch = nil
            connection.earlyBody = nil
            connection.body = nil
            enqueue(Exchange.errorResponseBytes(for: error), on: connection)
            connection.closeWhenFlushed = true
            if connections[connection.id] != nil { flush(connection) }
        }
    }

    /// Ends the request body with `error` for its handler; the connection closes after the response.
    private func failBody(of connection: Connection, _ error: HTTPError) {
        connection.body?.fail(error)
        connection.isBodyComplete = true
        connection.closeAfterResponse = true
        if connection.isResponseComplete { finishExchange(connection) }
    }

    /// Both the request body and the response are complete: close, or wait for the next request.
    private func finishExchange(_ connection: Connection) {
        connection.body = nil
        if connection.closeAfterResponse || connection.peerClosed || shutdownDeadline != nil {
            connection.closeWhenFlushed = true
            if connection.pendingOutbound == 0 { beginClose(connection) }
            return
        }
        connection.phase = .waiting
        connection.idleSince = now
        connection.headStartedAt = connection.parser.isIdle ? nil : now
        process(connection)
    }

    /// Shuts down our sending side after the last response and lingers for the client's close.
    private func beginClose(_ connection: Connection) {
        guard !connection.isLingering else { return }
        if connection.peerClosed {
            closeConnection(connection)
            return
        }
        Glibc.shutdown(connection.fd, Int32(SHUT_WR))
        connection.phase = .lingering(deadline: now + lingerTimeout)
        connection.body = nil
        updateInterest(connection)
    }

    private func closeConnection(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.id) != nil else { return }
        Glibc.close(connection.fd)
        connection.body?.fail(HTTPError.connectionClosed)
        connection.body = nil
        let waiters = connection.ackWaiters
        connection.ackWaiters = []
        waiters.forEach { $0.resume(throwing: HTTPError.connectionClosed) }
        if isListenerPaused && listenerFD >= 0 {
            isListenerPaused = false
            register(listenerFD, token: Self.listenerToken, events: Epoll.input, operation: Epoll.modify)
        }
    }

    // MARK: - Output

    /// Queues bytes, sending directly when nothing is queued before them.
    private func enqueue(_ bytes: [UInt8], on connection: Connection) {
        var offset = 0
        if connection.pendingOutbound == 0 {
            guard let sent = bytes.withUnsafeBytes({ sendWhatFits($0, from: 0, on: connection) }) else {
                closeConnection(connection)
                return
            }
            offset = sent
            if offset == bytes.count { return }
            connection.lastWriteProgress = now
        }
        connection.outbound.append(contentsOf: bytes[offset...])
    }

    /// Sends from `offset` until the socket would block or everything is sent; returns the new
    /// offset, or nil when the connection failed (the caller closes it, outside any buffer access).
    private func sendWhatFits(_ bytes: UnsafeRawBufferPointer, from offset: Int, on connection: Connection) -> Int? {
        var offset = offset
        while offset < bytes.count {
            let sent = Self.send(bytes, from: offset, to: connection.fd)
            if sent > 0 {
                offset += sent
                connection.lastWriteProgress = now
            } else if sent < 0 && errno == EINTR {
                continue
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                break
            } else {
                return nil
            }
        }
        return offset
    }

    private func flush(_ connection: Connection) {
        if connection.pendingOutbound > 0 {
            let offset = connection.outbound.withUnsafeBytes {
                sendWhatFits($0, from: connection.outboundOffset, on: connection)
            }
            guard let offset else {
                closeConnection(connection)
                return
            }
            connection.outboundOffset = offset
        }
        afterOutput(connection)
    }

    /// One non-blocking `send` of `bytes[offset...]`; MSG_NOSIGNAL turns a closed peer into EPIPE
    /// instead of a process-killing SIGPIPE.
    private static func send(_ bytes: UnsafeRawBufferPointer, from offset: Int, to fd: Int32) -> Int {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        return Glibc.send(fd, rest.baseAddress, rest.count, Int32(MSG_NOSIGNAL))
    }

    private func afterOutput(_ connection: Connection) {
        if connection.pendingOutbound == 0 {
            connection.outbound.removeAll(keepingCapacity: connection.outbound.capacity <= 64 * 1024)
            connection.outboundOffset = 0
        }
        if connection.pendingOutbound <= Self.sendHighWater && !connection.ackWaiters.isEmpty {
            let waiters = connection.ackWaiters
            connection.ackWaiters = []
            waiters.forEach { $0.resume() }
        }
        if connection.pendingOutbound == 0 && connection.closeWhenFlushed {
            beginClose(connection)
        } else if case .waiting = connection.phase, connection.parser.bufferedByteCount > 0,
            connection.pendingOutbound <= Self.sendHighWater, !connection.closeWhenFlushed
        {
            process(connection)  // pipelined requests held back while the client was not reading
        }
        updateInterest(connection)
    }

    private func updateInterest(_ connection: Connection) {
        guard connections[connection.id] != nil else { return }
        let wantsRead: Bool
        switch connection.phase {
        case .lingering:
            wantsRead = true
        case .waiting:
            wantsRead =
                !connection.peerClosed && !connection.closeWhenFlushed
                && connection.parser.bufferedByteCount < pipelineLimit
        case .exchange:
            wantsRead =
                !connection.peerClosed && !connection.closeWhenFlushed
                && (connection.isBodyComplete
                    ? connection.parser.bufferedByteCount < pipelineLimit : !connection.isReadingPausedForBody)
        }
        var events: UInt32 = wantsRead ? Epoll.input : 0
        if connection.pendingOutbound > 0 { events |= Epoll.output }
        if events != connection.registeredEvents {
            connection.registeredEvents = events
            register(connection.fd, token: connection.id, events: events, operation: Epoll.modify)
        }
    }

    // MARK: - Messages from handlers

    private func handleMessages(resettingWakeUp: Bool = true) {
        // Jobs run here can post more messages (a handler's response); take those in the same pass,
        // a bounded number of times so sockets are not starved.
        for round in 0..<8 {
            let messages = mailbox.takeAll(resettingWakeUp: resettingWakeUp && round == 0)
            if messages.isEmpty { return }
            handle(messages)
        }
    }

    private func handle(_ messages: [LoopMessage]) {
        for message in messages {
            switch message {
            case .run(let job):
                if let executor { job.runSynchronously(on: executor.asUnownedTaskExecutor()) }
            case .write(let id, let bytes, let ending, let ack):
                handleWrite(id: id, bytes: bytes, ending: ending, ack: ack)
            case .abort(let id):
                if let connection = connections[id] { closeConnection(connection) }
            case .resumeReading(let id):
                guard let connection = connections[id], connection.isReadingPausedForBody else { continue }
                connection.isReadingPausedForBody = false
                connection.bodyWindowStart = now
                connection.bodyProgressAt = now
                connection.bodyWindowBytes = 0
                process(connection)
                updateInterest(connection)
            case .sendContinue(let id):
                guard let connection = connections[id], connection.isInExchange, !connection.isResponseStarted,
                    !connection.isBodyComplete
                else { continue }
                // The client starts sending only now; body timing starts now too.
                connection.bodyWindowStart = now
                connection.bodyProgressAt = now
                enqueue(Self.continueBytes, on: connection)
                if connections[id] != nil { updateInterest(connection) }
            case .shutdown(let deadline):
                beginShutdown(deadline: deadline)
            }
        }
    }

    private func handleWrite(
        id: UInt64, bytes: [UInt8], ending: LoopMessage.Ending?, ack: CheckedContinuation<Void, any Error>?
    ) {
        guard let connection = connections[id], connection.isInExchange, !connection.isResponseComplete else {
            ack?.resume(throwing: HTTPError.connectionClosed)
            return
        }
        connection.isResponseStarted = true
        enqueue(bytes, on: connection)
        guard connections[id] != nil else {
            ack?.resume(throwing: HTTPError.connectionClosed)
            return
        }
        if let ack {
            if connection.pendingOutbound <= Self.sendHighWater {
                ack.resume()
            } else {
                connection.ackWaiters.append(ack)
            }
        }
        if let ending {
            connection.isResponseComplete = true
            if ending == .close { connection.closeAfterResponse = true }
            if connection.isBodyComplete {
                finishExchange(connection)
            } else {
                // The handler answered without reading the whole body. If the client still waits for
                // 100 Continue we cannot tell whether a body will follow, so close; otherwise read and
                // discard the rest so the next request can be found.
                connection.body?.abandon()
                if connection.body?.isContinuePending ?? false { connection.closeAfterResponse = true }
                if connection.closeAfterResponse {
                    connection.isBodyComplete = true
                    finishExchange(connection)
                } else {
                    connection.isReadingPausedForBody = false
                    process(connection)
                }
            }
        }
        if connections[id] != nil { afterOutput(connection) }
    }

    private func beginShutdown(deadline: UInt64) {
        guard shutdownDeadline == nil else { return }
        shutdownDeadline = deadline
        flags.isDraining.store(true, ordering: .relaxed)
        if listenerFD >= 0 {
            Epoll.control(epollFD, Epoll.delete, listenerFD, events: 0, token: 0)
            Glibc.close(listenerFD)
            listenerFD = -1
        }
        for connection in Array(connections.values) {
            switch connection.phase {
            case .waiting:
                closeConnection(connection)
            case .exchange:
                connection.closeAfterResponse = true
            case .lingering:
                break
            }
        }
    }

    // MARK: - Timeouts

    private func sweep() {
        if let deadline = shutdownDeadline, now >= deadline {
            for connection in Array(connections.values) { closeConnection(connection) }
            return
        }
        if isListenerPaused && listenerFD >= 0 {
            // Descriptors may have been freed elsewhere in the process: try accepting again.
            isListenerPaused = false
            register(listenerFD, token: Self.listenerToken, events: Epoll.input, operation: Epoll.modify)
        }
        for connection in Array(connections.values) where connections[connection.id] != nil {
            if connection.pendingOutbound > 0 && now - connection.lastWriteProgress > idleTimeout {
                closeConnection(connection)  // the client stopped reading
                continue
            }
            switch connection.phase {
            case .lingering(let deadline):
                if now >= deadline { closeConnection(connection) }
            case .waiting:
                if let started = connection.headStartedAt {
                    if now - started > headerTimeout && !connection.closeWhenFlushed {
                        parseFailed(connection, HTTPError.timeout("request head not received in time"))
                    }
                } else if connection.parser.isIdle {
                    let limit = connection.requestCount == 0 ? headerTimeout : idleTimeout
                    if now - connection.idleSince > limit { closeConnection(connection) }
                }
            case .exchange:
                checkBodyProgress(connection)
            }
        }
    }

    /// Enforces the body timeouts while the client is the one we are waiting for.
    private func checkBodyProgress(_ connection: Connection) {
        guard !connection.isBodyComplete, !connection.isReadingPausedForBody,
            !(connection.body?.isContinuePending ?? false)
        else { return }
        let elapsed = now - connection.bodyWindowStart
        let expected = Double(configuration.bodyMinimumBytesPerSecond) * Double(elapsed) / 1e9
        let stalled = now - connection.bodyProgressAt > bodyTimeout
        let tooSlow = elapsed > bodyTimeout && Double(connection.bodyWindowBytes) < expected
        guard stalled || tooSlow else { return }
        failBody(of: connection, HTTPError.timeout("request body arrived too slowly"))
        updateInterest(connection)
    }
}
