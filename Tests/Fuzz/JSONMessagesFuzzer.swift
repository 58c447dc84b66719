// libFuzzer entry point for the JSON the pair reads from the network: the agent's `POST /v1/readings`
// body, the dropped-range report the collector takes, and the acknowledgement the agent takes; built
// by Tests/Fuzz/run-fuzz.sh with those sources (and the input, HTTP and spool error types they use).

import Foundation

/// The first input byte picks the target (its value modulo 3); the rest is the JSON. Readings the
/// agent accepts must have finite values and a series key; a report or acknowledgement that decodes
/// must encode and decode back to itself. No input may crash, hang or allocate without bound.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONMessages(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let body = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch data[0] % 3 {
    case 0:
        var block = ReadingBlock()
        guard (try? JSONReadings.decode(body, now: 1_700_000_000_000_000_000, into: &block)) != nil else { return 0 }
        for reading in block.readings where !reading.value.isFinite || block.seriesKeys[reading.series].isEmpty {
            fatalError("accepted \(reading) with series \(block.seriesKeys[reading.series].debugDescription)")
        }
    case 1: roundTrip(DroppedRangesReport.self, body)
    default: roundTrip(BatchAcknowledgement.self, body)
    }
    return 0
}

private func roundTrip<Message: Codable & Equatable>(_ type: Message.Type, _ body: [UInt8]) {
    guard let message = try? JSONDecoder().decode(type, from: Data(body)) else { return }
    guard let encoded = try? JSONEncoder().encode(message),
        let again = try? JSONDecoder().decode(type, from: encoded), again == message
    else { fatalError("\(message) does not survive encoding and decoding") }
}
