// libFuzzer entry point for the MQTT packet decoder (the packets a broker sends a client, 3.1.1
// and 5.0); built by Tests/Fuzz/run-fuzz.sh with the decoder's two source files.

/// The first input byte picks the protocol version (its low bit), the chunk size (bits 1-6, plus 1)
/// and, with its top bit, small limits; the rest is the bytes a broker sends. The decoder runs over
/// the whole input at once and again fed in chunks: both runs must give the same packets and the
/// same error (chunk invariance), a failed decoder must keep failing with that error, and no
/// payload may hold more bytes than arrived. No input may crash, hang or allocate without bound.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMQTTPacket(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let version: MQTTVersion = data[0] & 1 == 0 ? .v311 : .v5
    let chunkSize = Int((data[0] >> 1) & 0x3F) + 1
    let limits =
        data[0] & 0x80 != 0
        ? MQTTPacketDecoder.Limits(maximumPacketBytes: 64, maximumTopicBytes: 8) : MQTTPacketDecoder.Limits()
    let whole = decode([input[...]], version: version, limits: limits)
    var chunks: [ArraySlice<UInt8>] = []
    var start = 0
    while start < input.count {
        chunks.append(input[start..<min(input.count, start + chunkSize)])
        start += chunkSize
    }
    let pieces = decode(chunks, version: version, limits: limits)
    guard whole.packets == pieces.packets, whole.error == pieces.error else {
        fatalError("chunk size \(chunkSize) changed the outcome")
    }
    var payloadBytes = 0
    for packet in whole.packets {
        if case .publish(let message) = packet {
            payloadBytes += message.payload.count + message.topic.count
            guard message.topic.count <= limits.maximumTopicBytes else { fatalError("topic over the limit") }
        }
    }
    guard payloadBytes <= input.count else { fatalError("\(payloadBytes) bytes out of \(input.count)") }
    return 0
}

private func decode(_ chunks: [ArraySlice<UInt8>], version: MQTTVersion, limits: MQTTPacketDecoder.Limits)
    -> (packets: [MQTTPacket], error: MQTTProtocolError?)
{
    var decoder = MQTTPacketDecoder(version: version, limits: limits)
    var packets: [MQTTPacket] = []
    for chunk in chunks {
        decoder.append(chunk)
        do {
            while let packet = try decoder.next() { packets.append(packet) }
        } catch {
            do {
                _ = try decoder.next()
                fatalError("the decoder recovered after \(error)")
            } catch let again {
                guard again == error else { fatalError("a second error \(again) after \(error)") }
            }
            return (packets, error)
        }
    }
    return (packets, nil)
}
