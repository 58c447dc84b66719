import EdgeSyncSQLite
import HTTPCore

/// Routes requests by exact path and method to handlers; what issue 8's query endpoints and the
/// metrics endpoint plug into.
///
/// A handler's `CollectorError` becomes its JSON error response; any other error is logged to
/// stderr and answered with a bare `internal` error (details never reach the client).
package struct CollectorRouter: HTTPResponder {
    package typealias Handler = @Sendable (HTTPRequest, HTTPRequestContext) async throws -> HTTPResponse

    private var routes: [String: [String: Handler]] = [:]
    private let log: @Sendable (String) -> Void

    package init(log: @escaping @Sendable (String) -> Void) {
        self.log = log
    }

    /// Adds (or replaces) the handler for `method` on `path`.
    package mutating func add(_ method: String, _ path: String, _ handler: @escaping Handler) {
        routes[path, default: [:]][method] = handler
    }

    package func respond(to request: HTTPRequest, context: HTTPRequestContext) async throws -> HTTPResponse {
        guard let methods = routes[request.path] else {
            return CollectorError(.notFound, "not_found", "no endpoint \(request.path)").response
        }
        guard let handler = methods[request.method] ?? (request.method == "HEAD" ? methods["GET"] : nil) else {
            var response = CollectorError(
                .methodNotAllowed, "method_not_allowed", "\(request.method) is not allowed here"
            )
            .response
            response.headers.add("Allow", methods.keys.sorted().joined(separator: ", "))
            return response
        }
        do {
            return try await handler(request, context)
        } catch let error as CollectorError {
            return error.response
        } catch let error as IngestWriter.IngestRejection {
            switch error {
            case .queueFull:
                return CollectorError(
                    .serviceUnavailable, "queue_full", "the write queue is full; retry later", retryAfterSeconds: 1
                ).response
            case .closed:
                return CollectorError(
                    .serviceUnavailable, "shutting_down", "the collector is shutting down", retryAfterSeconds: 5
                ).response
            }
        } catch let error as HTTPResponseError {
            // The HTTP core's own errors (body too large, timeouts) keep their status.
            return CollectorError(error.status, "http_error", error.responseMessage ?? "\(error.status)").response
        } catch let error as SQLiteError where error.isBusy {
            return CollectorError(
                .serviceUnavailable, "busy", "the database is busy; retry later", retryAfterSeconds: 1
            )
            .response
        } catch {
            log(
                "level=error event=request_failed method=\(request.method) path=\(request.path)"
                    + " remote=\(context.remoteAddress) error=\"\(error)\"")
            return CollectorError(.internalServerError, "internal", "internal error; retry later", retryAfterSeconds: 1)
                .response
        }
    }
}
