// libFuzzer entry point for the batch decoder; built by Tests/Fuzz/run-fuzz.sh together with the
// codec's sources so that it can reach the payload decoder behind the checksum.

/// The first input byte picks the target (its value modulo 3): 0 decodes the whole frame (header,
/// checksum, inflate); 1 decodes the rest as a payload, skipping the checksum so that mutations
/// reach the structure; 2 decodes one integer column of a count given by the next two bytes, so
/// that mutations hit the Huffman code tables and bit streams directly.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 3 {
    case 2:
        fuzzIntegerColumn(input)
    default:
        fuzzBatch(input, wholeFrame: data[0] % 3 == 0)
    }
    return 0
}

private func fuzzBatch(_ input: UnsafeRawBufferPointer, wholeFrame: Bool) {
    var limits = DecodingLimits()
    limits.maximumReadings = 100_000
    let decoder = BatchDecoder(limits: limits)
    do {
        let batch: Batch
        if wholeFrame {
            batch = try decoder.decode(input)
        } else {
            batch = try decoder.decodePayload(ByteReader(input), version: input.first.map { $0 % 2 == 0 ? .v2 : .v3 } ?? .v3)
        }
        // Whatever decodes must encode again and decode to the same readings.
        if let frame = try? BatchEncoder().encode(batch) {
            let again = try decoder.decode(frame)
            precondition(again == batch, "re-encoding changed a decoded batch")
        }
    } catch {
        _ = error.description
    }
}

private func fuzzIntegerColumn(_ input: UnsafeRawBufferPointer) {
    guard input.count >= 2 else { return }
    let count = (Int(input[0]) | Int(input[1]) << 8) % 4096 + 1
    var values = [Int64](repeating: 0, count: count)
    let decoded: Bool = values.withUnsafeMutableBufferPointer { output in
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: input[2...]))
        do throws(CodecError) {
            try IntegerColumn.decode(from: &reader, into: output, what: "fuzzed column")
            return true
        } catch {
            _ = error.description
            return false
        }
    }
    guard decoded else { return }
    // A decoded column must survive the encoder's own choice of order and mode.
    var writer = ByteWriter()
    values.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }
    var again = [Int64](repeating: 0, count: count)
    let bytes = writer.bytes
    bytes.withUnsafeBytes { raw in
        again.withUnsafeMutableBufferPointer { output in
            var reader = ByteReader(raw)
            do throws(CodecError) {
                try IntegerColumn.decode(from: &reader, into: output, what: "re-encoded column")
            } catch {
                preconditionFailure("a re-encoded column does not decode: \(error)")
            }
            precondition(reader.isAtEnd, "a re-encoded column leaves bytes over")
        }
    }
    precondition(again == values, "re-encoding changed a decoded column")
}
