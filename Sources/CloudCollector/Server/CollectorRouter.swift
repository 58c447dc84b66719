import EdgeSyncLogging
import HTTPCore

/// Routes requests by exact path and method to handlers; what issue 8's query endpoints and the
/// metrics endpoint plug into.
///
/// A handler's `CollectorError` becomes its JSON error response; a `StorageError` (as the backend
/// classifies its own error) a 503 with a Retry-After that suits it; any other error is logged and
/// answered with a bare `internal` error (details never reach the client).
package struct CollectorRouter: HTTPResponder {
    package typealias Handler = @Sendable (HTTPRequest, HTTPRequestContext) async throws -> HTTPResponse

    private var routes: [String: [String: Handler]] = [:]
    /// Routes for every path under a prefix (`/api/v1/label/` for `/api/v1/label/NAME/values`),
    /// tried in order when no exact path matches.
    private var prefixRoutes: [(prefix: String, methods: [String: Handler])] = []
    private let logger: Logger
    private let metrics: CollectorMetrics?

    package init(logger: Logger, metrics: CollectorMetrics? = nil) {
        self.logger = logger
        self.metrics = metrics
    }

    /// The paths with routes, for metric labels.
    package var paths: Set<String> { Set(routes.keys) }

    /// Adds (or replaces) the handler for `method` on `path`.
    package mutating func add(_ method: String, _ path: String, _ handler: @escaping Handler) {
        routes[path, default: [:]][method] = handler
    }

    package func respond(to request: HTTPRequest, context: HTTPRequestContext) async throws -> HTTPResponse {
        let (response, code) = try await route(request, context: context)
        if let code { metrics?.countError(status: response.status.code, code: code) }
        return response
    }

    /// How long a gateway waits after `disk_full` before it sends again: long enough not to hammer
    /// a full disk, short enough that delivery resumes soon after an operator frees space.
    package static let diskFullRetryAfterSeconds = 10

    /// 503 for a full disk (`StorageError.Kind.diskFull`): the transaction rolled back,
    /// the edge keeps its readings and retries after Retry-After, not as after an unknown failure.
    private func diskFull(_ request: HTTPRequest, _ error: any Error) -> CollectorError {
        logger.error("disk_full", ["method": "\(request.method)", "path": "\(request.path)", "error": .quoted(error)])
        return CollectorError(
            .serviceUnavailable, "disk_full", "the collector's disk is full; nothing was stored; retry later",
            retryAfterSeconds: Self.diskFullRetryAfterSeconds)
    }

    /// Adds (or replaces) the handler for `method` on every path that starts with `prefix`.
    package mutating func addPrefix(_ method: String, _ prefix: String, _ handler: @escaping Handler) {
        if let index = prefixRoutes.firstIndex(where: { $0.prefix == prefix }) {
            prefixRoutes[index].methods[method] = handler
        } else {
            prefixRoutes.append((prefix, [method: handler]))
        }
    }

    private func methods(for path: String) -> [String: Handler]? {
        if let exact = routes[path] { return exact }
        return prefixRoutes.first { path.utf8.starts(with: $0.prefix.utf8) }?.methods
    }

    /// The response, and the error code when it is an error answer.
    private func route(_ request: HTTPRequest, context: HTTPRequestContext) async throws -> (HTTPResponse, String?) {
        func failure(_ error: CollectorError) -> (HTTPResponse, String?) { (error.response, error.code) }
        guard let methods = methods(for: request.path) else {
            return failure(CollectorError(.notFound, "not_found", "no endpoint \(request.path)"))
        }
        guard let handler = methods[request.method] ?? (request.method == "HEAD" ? methods["GET"] : nil) else {
            var response = CollectorError(
                .methodNotAllowed, "method_not_allowed", "\(request.method) is not allowed here"
            )
            .response
            response.headers.add("Allow", methods.keys.sorted().joined(separator: ", "))
            return (response, "method_not_allowed")
        }
        do {
            return (try await handler(request, context), nil)
        } catch let error as CollectorError {
            return failure(error)
        } catch let error as IngestWriter.IngestRejection {
            switch error {
            case .queueFull:
                return failure(CollectorError(
                    .serviceUnavailable, "queue_full", "the write queue is full; retry later", retryAfterSeconds: 1
                ))
            case .closed:
                return failure(CollectorError(
                    .serviceUnavailable, "shutting_down", "the collector is shutting down", retryAfterSeconds: 5
                ))
            }
        } catch let error as HTTPResponseError {
            // The HTTP core's own errors (body too large, timeouts) keep their status.
            return failure(CollectorError(error.status, "http_error", error.responseMessage ?? "\(error.status)"))
        } catch {
            // A full disk, a database away or busy, as the backend classifies its own error.
            if let storage = StorageError(classifying: error) { return failure(storageFailure(request, storage)) }
            return failure(internalError(request, context, error))
        }
    }

    /// What a storage failure means for the client: retry later, after a delay that suits it.
    private func storageFailure(_ request: HTTPRequest, _ error: StorageError) -> CollectorError {
        switch error.kind {
        case .diskFull:
            return diskFull(request, error)
        case .unavailable:
            // The database restarts or the network to it broke: the edge keeps its readings and
            // retries; the writer's session reconnects by itself.
            logger.warning(
                "database_unavailable",
                ["method": "\(request.method)", "path": "\(request.path)", "error": .quoted(error)])
            return CollectorError(
                .serviceUnavailable, "database_unavailable", "the database is unavailable; retry later",
                retryAfterSeconds: 5)
        case .busy:
            return CollectorError(.serviceUnavailable, "busy", "the database is busy; retry later", retryAfterSeconds: 1)
        }
    }

    /// Any other failure: logged with its details, answered with a bare `internal` error.
    private func internalError(_ request: HTTPRequest, _ context: HTTPRequestContext, _ error: any Error) -> CollectorError {
        logger.error(
            "request_failed",
            [
                "method": "\(request.method)", "path": "\(request.path)", "remote": "\(context.remoteAddress)",
                "error": .quoted(error),
            ])
        return CollectorError(.internalServerError, "internal", "internal error; retry later", retryAfterSeconds: 1)
    }
}
