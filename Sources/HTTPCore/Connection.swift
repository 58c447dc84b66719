import Glibc

/// One client connection's state; owned by the event loop thread and touched nowhere else.
///
/// A connection alternates between waiting for a request head and running one exchange (a request
/// and its response). Requests pipelined behind the current one wait in the parser's buffer until the
/// response is complete, which is how responses stay in request order.
final class Connection {
    enum Phase {
        /// Between requests, or reading a head.
        case waiting
        /// A handler owns the current request.
        case exchange
        /// Our side is shut down after a final response; reading and discarding until the client
        /// closes, so that unread input does not turn our close into a reset that destroys the response.
        case lingering(deadline: UInt64)
    }

    let id: UInt64
    let fd: Int32
    let peer: String
    var parser: HTTPRequestParser
    var phase = Phase.waiting
    var requestCount = 0

    /// When the first byte of the current head arrived; `nil` while idle.
    var headStartedAt: UInt64?
    /// When the connection last became idle (accept or end of an exchange).
    var idleSince: UInt64

    // The current exchange.
    /// A request parsed in this pass over the input whose handler has not been started yet.
    var pendingDispatch: PendingDispatch?
    /// Body bytes parsed in the same pass as the head, before the handler starts (`nil` when the
    /// request has no body or reads it through `body`). A body that is complete by then is handed
    /// to the handler as bytes, with no stream, lock or wake-up between loop and handler.
    var earlyBody: [UInt8]?
    var body: BodyStream?
    var isBodyComplete = true
    var isResponseStarted = false
    var isResponseComplete = false
    var closeAfterResponse = false
    var isReadingPausedForBody = false
    var bodyProgressAt: UInt64 = 0
    var bodyWindowStart: UInt64 = 0
    var bodyWindowBytes = 0

    // Output.
    var outbound: [UInt8] = []
    var outboundOffset = 0
    var ackWaiters: [CheckedContinuation<Void, any Error>] = []
    var lastWriteProgress: UInt64 = 0
    var closeWhenFlushed = false
    var peerClosed = false

    /// The epoll events currently registered, to skip redundant `epoll_ctl` calls.
    var registeredEvents: UInt32 = 0

    init(id: UInt64, fd: Int32, peer: String, limits: HTTPRequestParser.Limits, now: UInt64) {
        self.id = id
        self.fd = fd
        self.peer = peer
        self.parser = HTTPRequestParser(limits: limits)
        self.idleSince = now
    }

    var pendingOutbound: Int { outbound.count - outboundOffset }

    var isLingering: Bool {
        if case .lingering = phase { return true }
        return false
    }

    var isInExchange: Bool {
        if case .exchange = phase { return true }
        return false
    }
}

/// What a handler task needs, held until the loop finishes the current pass over the input.
struct PendingDispatch {
    var request: HTTPRequest
    var context: HTTPRequestContext
    var handle: ConnectionHandle
}
