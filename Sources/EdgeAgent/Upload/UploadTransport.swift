import EdgeSyncProtocol
import HTTPCore

/// One HTTP POST the uploader wants delivered.
package struct UploadRequest: Sendable {
    /// Path below the collector's base URL (`/v1/batches`).
    package var path: String
    package var contentType: String
    package var body: [UInt8]
    /// Further request headers (`Edge-Sync-Sent-At`).
    package var headers: [(name: String, value: String)]

    package init(path: String, contentType: String, body: [UInt8], headers: [(name: String, value: String)] = []) {
        self.path = path
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    /// The value of header `name` (ASCII case-insensitive), if set.
    package func header(_ name: String) -> String? {
        headers.first { ASCIICase.equal($0.name, name) }?.value
    }
}

/// A raw HTTP answer, before the uploader interprets it.
package struct UploadResponse: Sendable, Equatable {
    package var status: Int
    /// The `Retry-After` header in seconds (delta-seconds form), if present and valid.
    package var retryAfter: Duration?
    /// The body, truncated to a small limit: acknowledgements and error messages are short.
    package var body: [UInt8]

    package init(status: Int, retryAfter: Duration? = nil, body: [UInt8] = []) {
        self.status = status
        self.retryAfter = retryAfter
        self.body = body
    }
}

/// Sends requests to the collector. Implementations never throw: every failure to get an HTTP
/// answer becomes `UploadTransportError`, which the retry policy treats like a 5xx.
package protocol UploadTransport: Sendable {
    func send(_ request: UploadRequest) async -> Result<UploadResponse, UploadTransportError>
}

/// Why no HTTP answer arrived (connection refused, reset, timeout, TLS verification failure).
package struct UploadTransportError: Error, Sendable, Equatable, CustomStringConvertible {
    package var message: String
    /// The TLS handshake failed because the collector's certificate is not trusted (or the CA file
    /// cannot be used): retrying cannot help until the configuration changes.
    package var isUntrustedCollector: Bool
    /// The request ran out of time (the request timeout), as opposed to finding nobody there: a
    /// smaller body may get through where this one did not.
    package var isTimeout: Bool

    package init(_ message: String, isUntrustedCollector: Bool = false, isTimeout: Bool = false) {
        self.message = message
        self.isUntrustedCollector = isUntrustedCollector
        self.isTimeout = isTimeout
    }

    package var description: String { message }
}
