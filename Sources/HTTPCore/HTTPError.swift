import Glibc

/// An error that knows which HTTP response it should become.
///
/// Handlers throw these (or their own types conforming to this protocol) to answer with a status
/// other than 500. Errors that do not conform become a bare 500 and their details go only to the log,
/// so internal messages never leak to clients.
public protocol HTTPResponseError: Error {
    /// The status of the response sent in place of the handler's.
    var status: HTTPStatus { get }
    /// Extra headers for the response, such as `Retry-After` on a 503.
    var responseHeaders: HTTPHeaders { get }
    /// A short, client-safe plain-text explanation, or `nil` for an empty body.
    var responseMessage: String? { get }
}

extension HTTPResponseError {
    public var responseHeaders: HTTPHeaders { HTTPHeaders() }
    public var responseMessage: String? { nil }
}

/// The HTTP core's own error: what went wrong with a request, and the status it is answered with.
///
/// A struct over a private enum so that new kinds can be added without breaking callers; compare with
/// the static values (`error == .bodyTooLarge`) or look at `status`.
public struct HTTPError: HTTPResponseError, Hashable, CustomStringConvertible {
    private enum Kind: Hashable {
        case malformedRequest
        case requestLineTooLong
        case headersTooLarge
        case bodyTooLarge
        case unsupportedVersion
        case unsupportedTransferCoding
        case expectationFailed
        case timeout
        case connectionClosed
        case status
    }

    private let kind: Kind
    /// The status the client is answered with.
    public let status: HTTPStatus
    /// What exactly was wrong, for logs and for the plain-text body of the error response.
    public let detail: String

    private init(_ kind: Kind, _ status: HTTPStatus, _ detail: String) {
        self.kind = kind
        self.status = status
        self.detail = detail
    }

    /// An error that answers the request with `status`; `detail` is sent to the client as the body.
    public init(_ status: HTTPStatus, _ detail: String = "") {
        self.init(.status, status, detail)
    }

    public var responseMessage: String? { detail.isEmpty ? nil : detail }
    public var description: String { detail.isEmpty ? "\(status)" : "\(status): \(detail)" }

    /// Errors match by kind and status; the detail text is for people, not for matching.
    public static func == (lhs: HTTPError, rhs: HTTPError) -> Bool {
        lhs.kind == rhs.kind && lhs.status == rhs.status
    }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(status)
    }

    static func malformed(_ detail: String) -> HTTPError { HTTPError(.malformedRequest, .badRequest, detail) }
    static func requestLineTooLong(limit: Int) -> HTTPError {
        HTTPError(.requestLineTooLong, .uriTooLong, "request line longer than \(limit) bytes")
    }
    static func headersTooLarge(_ detail: String) -> HTTPError {
        HTTPError(.headersTooLarge, .requestHeaderFieldsTooLarge, detail)
    }
    static func bodyTooLarge(limit: Int) -> HTTPError {
        HTTPError(.bodyTooLarge, .contentTooLarge, "body larger than \(limit) bytes")
    }
    static func unsupportedVersion(_ version: String) -> HTTPError {
        HTTPError(.unsupportedVersion, .httpVersionNotSupported, "HTTP version \(version) not supported")
    }
    static func unsupportedTransferCoding(_ coding: String) -> HTTPError {
        HTTPError(.unsupportedTransferCoding, .notImplemented, "transfer coding \"\(coding)\" not supported")
    }
    static func unsupportedExpectation(_ value: String) -> HTTPError {
        HTTPError(.expectationFailed, .expectationFailed, "expectation \"\(value)\" not supported")
    }
    static func timeout(_ detail: String) -> HTTPError { HTTPError(.timeout, .requestTimeout, detail) }
    static let connectionClosed = HTTPError(.connectionClosed, .badRequest, "connection closed")

    /// Matchers for the kinds of failure the parser and server report (the detail is ignored).
    public static let malformedRequest = HTTPError.malformed("")
    public static let requestLineTooLong = HTTPError.requestLineTooLong(limit: 0)
    public static let headersTooLarge = HTTPError.headersTooLarge("")
    public static let bodyTooLarge = HTTPError.bodyTooLarge(limit: 0)
    public static let unsupportedVersion = HTTPError.unsupportedVersion("")
    public static let unsupportedTransferCoding = HTTPError.unsupportedTransferCoding("")
    public static let expectationFailed = HTTPError.unsupportedExpectation("")
    public static let requestTimeout = HTTPError.timeout("")
}

/// A failure of the operating system's socket layer, with the `errno` it reported.
public struct SocketError: Error, CustomStringConvertible {
    /// The call that failed, with its argument where that helps (`bind 127.0.0.1:80`).
    public let operation: String
    public let errno: Int32

    public var description: String { "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}
