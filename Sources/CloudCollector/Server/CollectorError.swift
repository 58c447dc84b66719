import EdgeSyncProtocol
import Foundation
import HTTPCore

/// An error the collector answers with a status and an `ErrorBody` JSON document.
package struct CollectorError: Error, Sendable, CustomStringConvertible {
    package var status: HTTPStatus
    /// Stable, machine-readable (`checksum_mismatch`, `queue_full`, …).
    package var code: String
    package var message: String
    package var retryAfterSeconds: Int?
    /// More response headers (`WWW-Authenticate` on a 401 of the query API).
    package var headers: [(String, String)] = []

    package init(_ status: HTTPStatus, _ code: String, _ message: String, retryAfterSeconds: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    package var description: String { "\(status.code) \(code): \(message)" }

    package var response: HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json")
        if let retryAfterSeconds { headers.add("Retry-After", String(retryAfterSeconds)) }
        for (name, value) in self.headers { headers.add(name, value) }
        let body = (try? JSONEncoder().encode(ErrorBody(error: code, message: message))).map { Array($0) } ?? []
        return HTTPResponse(status: status, headers: headers, bytes: body)
    }
}
