/// An error an API endpoint answers with: its HTTP status, a stable machine-readable code
/// (`queue_full`, `invalid_line`, …), a message for people and, for a 503, when to retry.
///
/// One type for both programs' endpoints (the collector's ingest and query API, the agent's
/// inputs); each renders it in the error shape its clients expect (the collector's `ErrorBody`, the
/// agent's InfluxDB and OTLP dialects), in extensions of its own.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: HTTPStatus
    public var code: String
    public var message: String
    public var retryAfterSeconds: Int?
    /// More response headers (`WWW-Authenticate` on a 401 of the query API).
    public var headers: [(String, String)] = []

    public init(_ status: HTTPStatus, _ code: String, _ message: String, retryAfterSeconds: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { "\(status.code) \(code): \(message)" }
}
