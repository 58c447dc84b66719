// libFuzzer entry point for the NATS server-protocol parser (what a NATS server sends the
// collector's JetStream client); built by Tests/Fuzz/run-fuzz.sh with the parser's source files.

/// The first input byte picks the chunk size (bits 0-5, plus 1) and, with its top bit, small
/// limits; the rest is the bytes a server sends. The parser runs over the whole input at once and
/// again fed in chunks: both runs must give the same operations and the same violation (chunk
/// invariance), and no payload may hold more bytes than arrived or than the limit allows.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNATSParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let chunkSize = Int(data[0] & 0x3F) + 1
    let small = data[0] & 0x80 != 0
    let make = { small ? NATSParser(maximumControlLine: 48, maximumPayload: 64) : NATSParser() }
    let whole = run([input[...]], make())
    var chunks: [ArraySlice<UInt8>] = []
    var start = 0
    while start < input.count {
        chunks.append(input[start..<min(input.count, start + chunkSize)])
        start += chunkSize
    }
    let pieces = run(chunks, make())
    guard whole.operations == pieces.operations, whole.violation == pieces.violation else {
        fatalError("chunk size \(chunkSize) changed the outcome")
    }
    var payloadBytes = 0
    for case .message(let message) in whole.operations {
        payloadBytes += message.payload.count
        guard message.payload.count <= make().maximumPayload else { fatalError("payload over the limit") }
    }
    guard payloadBytes <= input.count else { fatalError("\(payloadBytes) bytes out of \(input.count)") }
    return 0
}

private func run(_ chunks: [ArraySlice<UInt8>], _ start: NATSParser) -> (operations: [NATSServerOperation], violation: NATSProtocolViolation?) {
    var parser = start
    var operations: [NATSServerOperation] = []
    for chunk in chunks {
        parser.append(chunk)
        do {
            while let operation = try parser.next() { operations.append(operation) }
        } catch {
            return (operations, error)
        }
    }
    return (operations, nil)
}
