import Foundation
import PrometheusRemoteWrite

/// The bodies OTLP/HTTP answers with, in the request's encoding (protobuf or JSON).
package enum OTLPResponse {
    /// `ExportMetricsServiceResponse`: empty when every point was accepted, else `partial_success`
    /// with the number of points rejected and why (OTLP's answer for points a receiver refuses).
    package static func export(rejectedPoints: Int, message: String, json: Bool) -> [UInt8] {
        if json {
            guard rejectedPoints > 0 else { return Array("{}".utf8) }
            // int64 is a string in proto3 JSON.
            let object: [String: Any] = [
                "partialSuccess": ["rejectedDataPoints": String(rejectedPoints), "errorMessage": message]
            ]
            return encode(object)
        }
        guard rejectedPoints > 0 else { return [] }
        var writer = ProtobufWriter()
        writer.appendMessageField(1) { partial in
            partial.appendVarintField(1, UInt64(rejectedPoints))
            partial.appendBytesField(2, Array(message.utf8))
        }
        return writer.bytes
    }

    /// `google.rpc.Status` for a refused request: `code` is the gRPC code OTLP names for the HTTP
    /// status (3 INVALID_ARGUMENT for 400, 8 RESOURCE_EXHAUSTED for 413, 14 UNAVAILABLE for 503, …).
    package static func status(httpStatus: Int, message: String, json: Bool) -> [UInt8] {
        let code: Int =
            switch httpStatus {
            case 400, 404, 405, 413, 415: httpStatus == 413 ? 8 : 3
            case 401: 16
            case 403: 7
            case 429, 503: 14
            default: 13
            }
        if json { return encode(["code": code, "message": message]) }
        var writer = ProtobufWriter()
        writer.appendVarintField(1, UInt64(code))
        writer.appendBytesField(2, Array(message.utf8))
        return writer.bytes
    }

    private static func encode(_ object: [String: Any]) -> [UInt8] {
        let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return data.map { [UInt8]($0) } ?? Array("{}".utf8)
    }
}
