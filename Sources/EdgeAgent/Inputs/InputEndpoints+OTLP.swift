import HTTPCore
import OpenTelemetryMetrics

extension InputEndpoints {
    /// OTLP/HTTP metrics (`POST /v1/metrics`): `application/x-protobuf` or `application/json`, gzip or
    /// not; readings as `OTLPReadings` maps them. 200 with an `ExportMetricsServiceResponse` in the
    /// request's encoding, naming the points rejected one by one (partial success); errors as
    /// `google.rpc.Status`. One atomic spool append, as every HTTP input.
    func writeOTLP(_ request: HTTPRequest) async throws(InputFailure) -> HTTPResponse {
        let json = Self.isJSON(request)
        if !json, let type = request.headers["content-type"], !Self.mediaType(type, is: "application/x-protobuf") {
            throw InputFailure(
                .unsupportedMediaType, "unsupported_media_type",
                "Content-Type must be application/x-protobuf or application/json, not \(type)")
        }
        let limit = json ? configuration.maximumJSONBytes : configuration.maximumInflatedBytes
        let body = try await readBody(request, maximumInflatedBytes: limit)
        var limits = OTLPLimits.default
        limits.maximumMessageBytes = limit
        limits.maximumPoints = configuration.maximumReadingsPerRequest
        let readings: OTLPReadings
        do {
            let decoded =
                json
                ? try MetricsRequest.decode(json: body, limits: limits)
                : try MetricsRequest.decode(protobuf: body, limits: limits)
            readings = try OTLPReadings.make(from: decoded, now: now())
        } catch {
            let status: HTTPStatus = error.kind == .limitExceeded ? .contentTooLarge : .badRequest
            throw InputFailure(status, "invalid_otlp", "\(error); nothing from this request was stored")
        }
        try await store(readings.block)
        statistics.skippedSamples.add(readings.skippedPoints, ordering: .relaxed)
        statistics.roundedIntegers.add(readings.roundedIntegers, ordering: .relaxed)
        statistics.rejectedPoints.add(readings.rejectedPoints, ordering: .relaxed)
        var headers = HTTPHeaders()
        headers.add("Content-Type", json ? "application/json" : "application/x-protobuf")
        let answer = OTLPResponse.export(
            rejectedPoints: readings.rejectedPoints, message: readings.rejection, json: json)
        return HTTPResponse(status: .ok, headers: headers, bytes: answer)
    }

    static func isJSON(_ request: HTTPRequest) -> Bool {
        request.headers["content-type"].map { mediaType($0, is: "application/json") } ?? false
    }

    /// Whether a Content-Type value names `expected` (lowercase), ASCII-case-insensitively and byte
    /// by byte, parameters (`; charset=utf-8`) aside.
    static func mediaType(_ value: String, is expected: String) -> Bool {
        var bytes = value.utf8[...]
        if let semicolon = bytes.firstIndex(of: UInt8(ascii: ";")) { bytes = bytes[..<semicolon] }
        let trimmed = bytes.drop { $0 == .space || $0 == .tab }.reversed().drop { $0 == .space || $0 == .tab }
        guard trimmed.count == expected.utf8.count else { return false }
        return zip(trimmed.reversed(), expected.utf8).allSatisfy { byte, want in
            (byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) == want
        }
    }
}
