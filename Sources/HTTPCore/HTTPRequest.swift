/// A request as a handler sees it: the parsed head and a body that may still be arriving.
public struct HTTPRequest: Sendable {
    public var head: HTTPRequestHead
    public var body: HTTPRequestBody

    public init(head: HTTPRequestHead, body: HTTPRequestBody = HTTPRequestBody()) {
        self.head = head
        self.body = body
    }

    public var method: String { head.method }
    public var target: String { head.target }
    public var path: String { head.path }
    public var query: String? { head.query }
    public var version: HTTPVersion { head.version }
    public var headers: HTTPHeaders { head.headers }
}

/// What a handler may want to know about the connection a request came in on.
public struct HTTPRequestContext: Sendable {
    /// Identifies the connection for the server's lifetime; requests on one keep-alive connection share it.
    public var connectionID: UInt64
    /// The peer as `address:port` (IPv6 addresses in brackets).
    public var remoteAddress: String
    /// 0 for the first request on the connection, then 1, 2, ...
    public var requestIndex: Int

    public init(connectionID: UInt64 = 0, remoteAddress: String = "", requestIndex: Int = 0) {
        self.connectionID = connectionID
        self.remoteAddress = remoteAddress
        self.requestIndex = requestIndex
    }
}

/// The one thing an application implements: turn a request into a response.
///
/// Called on the Swift concurrency pool, never on the event loop, so a handler may await freely; but a
/// handler that blocks a thread (file I/O, SQLite) should move that work off the cooperative pool.
/// Throw an `HTTPResponseError` to answer with its status; any other error becomes a bare 500.
public protocol HTTPResponder: Sendable {
    func respond(to request: HTTPRequest, context: HTTPRequestContext) async throws -> HTTPResponse
}

/// A responder made from a closure, for small servers and tests.
public struct HTTPClosureResponder: HTTPResponder {
    private let body: @Sendable (HTTPRequest, HTTPRequestContext) async throws -> HTTPResponse

    public init(_ body: @escaping @Sendable (HTTPRequest, HTTPRequestContext) async throws -> HTTPResponse) {
        self.body = body
    }

    public func respond(to request: HTTPRequest, context: HTTPRequestContext) async throws -> HTTPResponse {
        try await body(request, context)
    }
}
