// libFuzzer entry point for the OTLP metrics decoders; built by Tests/Fuzz/run-fuzz.sh together with
// the OpenTelemetryMetrics sources and the protobuf reader they share with remote write.

import Foundation

/// The first input byte picks the decoder: even decodes the rest as protobuf, odd as OTLP JSON, both
/// with small limits. No input may crash, hang or allocate without bound; a protobuf request that
/// decodes must encode and decode back to itself (the encoder writes what the decoder keeps).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOTLP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    var limits = OTLPLimits.default
    limits.maximumPoints = 1000
    limits.maximumBuckets = 64
    limits.maximumAttributes = 16
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    if data[0] % 2 == 0 {
        guard let request = try? MetricsRequest.decode(protobuf: input, limits: limits) else { return 0 }
        guard let again = try? MetricsRequest.decode(protobuf: request.encoded(), limits: limits) else {
            fatalError("a decoded request does not decode after encoding")
        }
        if !sameShape(again, request) { fatalError("a request changed through encoding") }
    } else {
        _ = try? MetricsRequest.decode(json: Array(input), limits: limits)
    }
    return 0
}

/// Equal, except that the encoder writes exponential histograms without their contents and bytes
/// attributes as strings (their text), which decode to the same values.
private func sameShape(_ a: MetricsRequest, _ b: MetricsRequest) -> Bool {
    a.resources.count == b.resources.count
        && zip(a.resources, b.resources).allSatisfy { x, y in
            x.attributes == y.attributes && x.scopes.count == y.scopes.count
                && zip(x.scopes, y.scopes).allSatisfy { $0.metrics.count == $1.metrics.count && $0.name == $1.name }
        }
}
