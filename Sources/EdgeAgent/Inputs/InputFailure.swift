import EdgeSyncProtocol
import Foundation
import HTTPCore
import OpenTelemetryMetrics

/// Why an input request was refused: the shared `APIError`, rendered in the error shape its client
/// expects (`response(_:)`).
package typealias InputFailure = APIError

extension APIError {
    /// The error shapes of the protocols the agent speaks.
    package enum Dialect: Sendable, Equatable {
        /// InfluxDB 1.x: `{"error": "…"}` and an `X-Influxdb-Error` header.
        case influxV1
        /// InfluxDB 2.x: `{"code": "invalid", "message": "…"}`.
        case influxV2
        /// edge-sync's own `ErrorBody`: `{"error": code, "message": "…"}` (JSON and remote write).
        case edgeSync
        /// OTLP/HTTP: a `google.rpc.Status`, as protobuf or (for JSON requests) JSON.
        case otlp(json: Bool)
    }

    package func response(_ dialect: Dialect) -> HTTPResponse {
        if case .otlp(let json) = dialect {
            var headers = HTTPHeaders()
            headers.add("Content-Type", json ? "application/json" : "application/x-protobuf")
            if let retryAfterSeconds { headers.add("Retry-After", String(retryAfterSeconds)) }
            let body = OTLPResponse.status(httpStatus: status.code, message: message, json: json)
            return HTTPResponse(status: status, headers: headers, bytes: body)
        }
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json; charset=utf-8")
        if let retryAfterSeconds { headers.add("Retry-After", String(retryAfterSeconds)) }
        let document: [String: String]
        switch dialect {
        case .influxV1:
            // The message quotes the client's bytes; a header may only carry visible ASCII and spaces.
            let visible = message.unicodeScalars.map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" }
            headers.add("X-Influxdb-Error", String(visible))
            document = ["error": message]
        case .influxV2:
            document = ["code": influxV2Code, "message": message]
        case .edgeSync, .otlp:
            document = ["error": code, "message": message]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body: [UInt8] = (try? encoder.encode(document)).map { [UInt8]($0) + [0x0A] } ?? []
        return HTTPResponse(status: status, headers: headers, bytes: body)
    }

    /// InfluxDB 2.x error codes, which its client libraries look at.
    private var influxV2Code: String {
        switch status.code {
        case 400: "invalid"
        case 401: "unauthorized"
        case 404: "not found"
        case 405: "method not allowed"
        case 413: "request too large"
        case 415: "unsupported media type"
        case 429: "too many requests"
        case 503: "unavailable"
        default: "internal error"
        }
    }

    /// What a spool error means for a producer: retry later (503) or fix the request (400).
    package static func spool(_ error: SpoolError, retryAfterSeconds: Int) -> InputFailure {
        switch error.kind {
        case .full:
            InputFailure(
                .serviceUnavailable, "spool_full",
                "the spool is full (policy reject) and nothing was stored; retry later", retryAfterSeconds: retryAfterSeconds)
        case .diskFull:
            InputFailure(
                .serviceUnavailable, "disk_full", "the disk is full and nothing was stored; retry later",
                retryAfterSeconds: retryAfterSeconds)
        case .ioError:
            InputFailure(
                .serviceUnavailable, "io_error", "the spool had an I/O error and nothing was stored; retry later",
                retryAfterSeconds: retryAfterSeconds)
        case .invalidInput:
            InputFailure(.badRequest, "invalid_readings", error.message)
        default:
            InputFailure(.internalServerError, "spool_error", "the spool failed and nothing was stored: \(error.message)")
        }
    }
}
