// libFuzzer entry point for the batch decoder; built by Tests/Fuzz/run-fuzz.sh together with the
// codec's sources so that it can reach the payload decoder behind the checksum.

/// The first input byte picks the target (its value modulo 5): 0 decodes the whole frame (header,
/// checksum, inflate; versions 2 and 3); 1 decodes the rest as a version 2 payload and 3 as a
/// version 3 payload, skipping the checksum so that mutations reach the structure (keys, series
/// order, shared values); 2 decodes one integer column of a count given by the next two bytes, so
/// that mutations hit the Huffman code tables and bit streams directly; 4 decodes a frame run.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 5 {
    case 0:
        fuzzBatch(input, version: nil)
    case 1:
        fuzzBatch(input, version: .v2)
    case 2:
        fuzzIntegerColumn(input)
    case 3:
        fuzzBatch(input, version: .v3)
    default:
        fuzzFrameRun(input)
    }
    return 0
}

/// `version` nil: a whole frame; otherwise a payload of that version.
private func fuzzBatch(_ input: UnsafeRawBufferPointer, version: FormatVersion?) {
    var limits = DecodingLimits()
    limits.maximumReadings = 100_000
    let decoder = BatchDecoder(limits: limits)
    do {
        let batch: Batch
        if let version {
            batch = try decoder.decodePayload(ByteReader(input), version: version)
        } else {
            batch = try decoder.decode(input)
        }
        // Whatever decodes must encode again, in both versions, and decode to the same readings.
        if let frame = try? BatchEncoder(options: EncodingOptions(version: .v2)).encode(batch) {
            let again = try decoder.decode(frame)
            precondition(again == batch, "re-encoding as version 2 changed a decoded batch")
        }
        if let frame = try? BatchEncoder(options: EncodingOptions(version: .v3)).encode(batch) {
            var again = try decoder.decode(frame)
            precondition(again.sentAt == 0, "a version 3 frame carried a sender's clock")
            again.sentAt = batch.sentAt
            precondition(again == batch, "re-encoding as version 3 changed a decoded batch")
        }
    } catch {
        _ = error.description
    }
}

/// A run that decodes must be the frames its ranges name, each decoding alone, joined in order;
/// the summary of each frame must agree with its decoded batch.
private func fuzzFrameRun(_ input: UnsafeRawBufferPointer) {
    var limits = DecodingLimits()
    limits.maximumReadings = 100_000
    let decoder = BatchDecoder(limits: limits)
    guard let run = try? decoder.decodeRun(input) else { return }
    do {
        let ranges = try FrameRun.frameRanges(in: input, limits: limits)
        precondition(ranges.last?.upperBound == input.count, "a decoded run left bytes over")
        var parts: [Batch] = []
        for range in ranges {
            let frame = UnsafeRawBufferPointer(rebasing: input[range])
            let part = try decoder.decode(frame)
            let summary = try decoder.summary(of: frame)
            precondition(
                summary.readingCount == part.readings.count && summary.firstSequence == part.firstSequence
                    && summary.stream == part.stream && summary.device == part.device
                    && summary.frameBytes == range.count,
                "a frame's summary disagrees with its decoded batch")
            parts.append(part)
        }
        precondition(Batch(joining: parts) == run, "a run decoded differently from its frames joined")
    } catch {
        preconditionFailure("a run decoded but one of its frames alone did not: \(error)")
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
