import EdgeSyncProtocol
import Foundation
import HTTPCore

/// An error the collector answers with a status and an `ErrorBody` JSON document: the shared
/// `APIError`, named for where it is thrown.
package typealias CollectorError = APIError

extension APIError {
    /// The collector's rendering: `{"error": code, "message": …}`, `Retry-After` when set.
    package var response: HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json")
        if let retryAfterSeconds { headers.add("Retry-After", String(retryAfterSeconds)) }
        for (name, value) in self.headers { headers.add(name, value) }
        let body = (try? JSONEncoder().encode(ErrorBody(error: code, message: message))).map { Array($0) } ?? []
        return HTTPResponse(status: status, headers: headers, bytes: body)
    }
}
