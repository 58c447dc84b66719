/// An HTTP protocol version such as 1.1.
public struct HTTPVersion: Sendable, Hashable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    public static let http10 = HTTPVersion(major: 1, minor: 0)
    public static let http11 = HTTPVersion(major: 1, minor: 1)

    public var description: String { "HTTP/\(major).\(minor)" }
}

/// The start line and header section of a request, plus what the parser concluded from them.
public struct HTTPRequestHead: Sendable, Equatable {
    /// How the length of a request body is determined (RFC 9112 §6.3).
    public enum BodyFraming: Sendable, Equatable {
        /// No body: neither `Content-Length` nor `Transfer-Encoding` was sent.
        case none
        /// Exactly this many bytes follow the head.
        case length(Int)
        /// The body is in chunked transfer coding and ends with a zero-size chunk.
        case chunked
    }

    /// The method token exactly as sent (methods are case-sensitive).
    public var method: String
    /// The request target as sent: usually `/path?query`, or an absolute URI, `*` or `host:port`.
    public var target: String
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    public var framing: BodyFraming
    /// Whether the connection may carry another request after this one, by the version's default and
    /// the `Connection` header.
    public var isKeepAlive: Bool
    /// Whether the client sent `Expect: 100-continue` and waits for a 100 before sending the body.
    public var expectsContinue: Bool

    public init(
        method: String, target: String, version: HTTPVersion = .http11, headers: HTTPHeaders = HTTPHeaders(),
        framing: BodyFraming = .none, isKeepAlive: Bool = true, expectsContinue: Bool = false
    ) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.framing = framing
        self.isKeepAlive = isKeepAlive
        self.expectsContinue = expectsContinue
    }

    /// The target's path, up to `?`, still percent-encoded; for an absolute-form target
    /// (`http://host/p?q`, which servers must accept) the part after the authority, at least `/`.
    public var path: String {
        var rest = Substring(target)
        if !rest.hasPrefix("/"), let scheme = rest.firstRange(of: "://") {
            let afterAuthority = rest[scheme.upperBound...]
            rest = afterAuthority.firstIndex(of: "/").map { afterAuthority[$0...] } ?? "/"
        }
        if let mark = rest.firstIndex(of: "?") { rest = rest[..<mark] }
        return rest.isEmpty ? "/" : String(rest)
    }

    /// The part of the target after `?`, still percent-encoded, or `nil` when there is no `?`.
    public var query: String? {
        guard let mark = target.firstIndex(of: "?") else { return nil }
        return String(target[target.index(after: mark)...])
    }
}
