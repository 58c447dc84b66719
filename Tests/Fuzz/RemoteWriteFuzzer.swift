// libFuzzer entry point for Prometheus remote write decoding; built by Tests/Fuzz/run-fuzz.sh together
// with the PrometheusRemoteWrite sources, as that module, so that it reaches `package` declarations.

/// The limits under fuzzing: small enough that libFuzzer's `-malloc_limit_mb` catches any allocation
/// the decoder makes beyond them.
private let fuzzLimits: RemoteWriteLimits = {
    var limits = RemoteWriteLimits()
    limits.maximumDecodedBytes = 1 << 20
    limits.maximumSeries = 1_000
    limits.maximumSamples = 10_000
    return limits
}()

/// The first input byte picks the target (its value modulo 3): 0 decodes the rest as a request body
/// (Snappy, then WriteRequest); 1 decodes it as an uncompressed WriteRequest, so mutations reach the
/// protobuf without having to keep the Snappy stream valid; 2 walks it as an arbitrary protobuf
/// message, descending into every length-delimited field, so the reader's own checks (varints,
/// groups, lengths, depth) are hit directly.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRemoteWrite(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 3 {
    case 0: fuzzBody(input)
    case 1: fuzzRequest(input)
    default: fuzzWalk(input)
    }
    return 0
}

private func fuzzBody(_ input: UnsafeRawBufferPointer) {
    let message: [UInt8]
    do {
        message = try Snappy.decompress(input, maximumDecodedBytes: fuzzLimits.maximumDecodedBytes)
    } catch {
        _ = error.description
        return
    }
    precondition(message.count <= fuzzLimits.maximumDecodedBytes, "decoded beyond the limit")
    // Whatever decompresses must survive our own compressor.
    let again = try? Snappy.decompress(Snappy.compress(message), maximumDecodedBytes: message.count)
    precondition(again == message, "re-compressing changed a decompressed block")
    message.withUnsafeBytes { fuzzRequest($0) }
}

private func fuzzRequest(_ input: UnsafeRawBufferPointer) {
    do {
        let request = try WriteRequest.decode(protobuf: input, limits: fuzzLimits)
        precondition(request.timeseries.count <= fuzzLimits.maximumSeries, "more series than the limit")
        precondition(
            request.timeseries.reduce(0) { $0 + $1.samples.count } <= fuzzLimits.maximumSamples,
            "more samples than the limit")
        // A decoded request encodes again and decodes to the same request.
        let again = try WriteRequest.decode(protobuf: request.protobufEncoded(), limits: .default)
        precondition(again == request, "re-encoding changed a decoded request")
    } catch {
        _ = error.description
    }
}

private func fuzzWalk(_ input: UnsafeRawBufferPointer) {
    func walk(_ reader: inout ProtobufReader) throws(RemoteWriteError) {
        while !reader.isAtEnd {
            let (_, wireType) = try reader.readTag()
            guard wireType == .lengthDelimited else {
                try reader.skip(wireType)
                continue
            }
            let range = try reader.readLengthDelimited()
            precondition(range.upperBound <= reader.end, "a length-delimited field escapes its message")
            var nested = try reader.nested(range)
            precondition(nested.depth <= ProtobufReader.maximumDepth, "nested beyond the maximum depth")
            // Most bytes fields are not messages: an error inside is expected and ends this field only.
            do throws(RemoteWriteError) { try walk(&nested) } catch { _ = error.description }
        }
    }
    var reader = ProtobufReader(input)
    do throws(RemoteWriteError) { try walk(&reader) } catch { _ = error.description }
}
