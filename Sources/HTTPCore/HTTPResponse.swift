/// A response: status, headers and a body that is either known bytes or written over time.
///
/// The server owns framing: it sets `Content-Length` for byte bodies, chunked transfer coding for
/// streamed bodies (or close-delimited for HTTP/1.0 clients), and `Connection`. Framing headers set by
/// a handler are replaced, so a handler cannot desynchronise the connection.
public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        case bytes([UInt8])
        /// Called once with a writer after the head is sent; returning ends the body, throwing aborts
        /// the connection (the client sees a truncated response, never a wrong one).
        case stream(@Sendable (HTTPResponseBodyWriter) async throws -> Void)
    }

    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: Body

    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), body: Body = .bytes([])) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), bytes: [UInt8]) {
        self.init(status: status, headers: headers, body: .bytes(bytes))
    }

    /// A `text/plain; charset=utf-8` response.
    public init(status: HTTPStatus = .ok, text: String) {
        self.init(status: status, headers: Self.plainTextHeaders, body: .bytes(Array(text.utf8)))
    }

    /// Shared by every text response (copied only if a caller changes its headers).
    private static let plainTextHeaders: HTTPHeaders = ["Content-Type": "text/plain; charset=utf-8"]

    /// A streamed response; the body is sent as it is written, with backpressure.
    public init(
        status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(),
        stream: @escaping @Sendable (HTTPResponseBodyWriter) async throws -> Void
    ) {
        self.init(status: status, headers: headers, body: .stream(stream))
    }
}

/// Writes the body of a streamed response.
///
/// Each `write` returns once the bytes are queued on the connection and its send buffer is below the
/// high-water mark, so a slow client slows the writer down instead of growing memory.
public struct HTTPResponseBodyWriter: Sendable {
    let connection: ConnectionHandle
    let isChunked: Bool

    /// Sends `bytes` as the next part of the body.
    ///
    /// - Throws: `HTTPError` when the connection has closed; stop writing then.
    public func write(_ bytes: [UInt8]) async throws {
        guard !bytes.isEmpty else { return }
        var framed = bytes
        if isChunked {
            framed = Array(String(bytes.count, radix: 16).utf8) + [0x0D, 0x0A]
            framed.reserveCapacity(framed.count + bytes.count + 2)
            framed += bytes
            framed += [0x0D, 0x0A]
        }
        try await connection.write(framed)
    }

    public func write(_ text: String) async throws {
        try await write(Array(text.utf8))
    }
}
