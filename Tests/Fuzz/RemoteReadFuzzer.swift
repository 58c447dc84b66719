// libFuzzer entry point for Prometheus remote read: the ReadRequest decoder and the label matcher
// regex; built by Tests/Fuzz/run-fuzz.sh together with the PrometheusRemoteWrite sources, as that
// module, so that it reaches `package` declarations.

/// Small limits, so libFuzzer's `-malloc_limit_mb` catches any allocation beyond them.
private let fuzzLimits: RemoteReadRequestLimits = {
    var limits = RemoteReadRequestLimits()
    limits.maximumDecodedBytes = 1 << 16
    return limits
}()

/// The first input byte picks the target (its value modulo 3): 0 decodes the rest as a request body
/// (Snappy, then ReadRequest); 1 as an uncompressed ReadRequest; 2 splits it at its first 0 byte
/// into a regex pattern and a value and matches them, checking the work bound.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRemoteRead(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 3 {
    case 0:
        do {
            let message = try Snappy.decompress(input, maximumDecodedBytes: fuzzLimits.maximumDecodedBytes)
            precondition(message.count <= fuzzLimits.maximumDecodedBytes, "decoded beyond the limit")
            fuzzRequest(message)
        } catch {
            _ = error.description
        }
    case 1: fuzzRequest(Array(input))
    default: fuzzRegex(Array(input))
    }
    return 0
}

private func fuzzRequest(_ bytes: [UInt8]) {
    do {
        let request = try ReadRequest.decode(protobuf: bytes, limits: fuzzLimits)
        precondition(request.queries.count <= fuzzLimits.maximumQueries, "more queries than the limit")
        // A decoded request encodes again and decodes to the same request (unknown types included).
        let again = try ReadRequest.decode(protobuf: request.protobufEncoded(), limits: RemoteReadRequestLimits())
        precondition(again == request, "re-encoding changed a decoded request")
    } catch {
        _ = error.description
    }
}

private func fuzzRegex(_ bytes: [UInt8]) {
    let split = bytes.firstIndex(of: 0) ?? bytes.count
    let pattern = String(decoding: bytes[..<split], as: UTF8.self)
    let value = String(decoding: bytes[min(split + 1, bytes.count)...], as: UTF8.self)
    guard let regex = try? LabelRegex(pattern) else { return }
    var steps = 0
    _ = regex.matches(value, steps: &steps)
    precondition(
        steps <= (value.unicodeScalars.count + 1) * 3 * LabelRegex.maximumProgramSize, "regex work beyond its bound")
}
