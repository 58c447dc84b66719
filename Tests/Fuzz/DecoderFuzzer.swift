// libFuzzer entry point for the batch decoder; built by Tests/Fuzz/run-fuzz.sh together with the
// codec's sources so that it can reach the payload decoder behind the checksum.

/// The first input byte picks the target: even decodes the whole frame (header, checksum, inflate),
/// odd decodes the rest as a payload, skipping the checksum so that mutations reach the structure.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    var limits = DecodingLimits()
    limits.maximumReadings = 100_000
    let decoder = BatchDecoder(limits: limits)
    do {
        let batch: Batch
        if data[0] & 1 == 0 {
            batch = try decoder.decode(input)
        } else {
            batch = try decoder.decodePayload(ByteReader(input))
        }
        // Whatever decodes must encode again and decode to the same readings.
        if let frame = try? BatchEncoder().encode(batch) {
            let again = try decoder.decode(frame)
            precondition(again == batch, "re-encoding changed a decoded batch")
        }
    } catch {
        _ = error.description
    }
    return 0
}
