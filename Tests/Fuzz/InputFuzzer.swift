// libFuzzer entry point for the edge agent's text inputs; built by Tests/Fuzz/run-fuzz.sh together
// with the parsers' sources.

import Foundation

/// The first input byte picks the target (its value modulo 3): 0 parses the rest as a line protocol
/// body, whole or skipping bad lines (and checks every series key it produced maps back to its
/// parts), 1 as CSV lines, 2 as a
/// gzip body with a 1 MiB inflation limit. No input may crash, hang or allocate without bound.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInputs(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 3 {
    case 0: fuzzLineProtocol(input)
    case 1: fuzzCSV(input)
    default: _ = try? Gzip.decompress(Array(input), maximumBytes: 1 << 20)
    }
    return 0
}

private func fuzzLineProtocol(_ input: UnsafeBufferPointer<UInt8>) {
    var parser = LineProtocolParser(precision: input.count % 2 == 0 ? .nanoseconds : .seconds)
    var block = ReadingBlock()
    if input.count % 4 >= 2 {
        // Partial-write mode: bad lines are skipped and counted, never more than there are lines.
        var bad = BadLines()
        guard let lines = try? parser.parseLines(input, defaultTimestamp: 0, into: &block, skippingBadLines: &bad)
        else { return }
        if bad.count > lines || (bad.count > 0) != (bad.first != nil) { fatalError("bad lines miscounted") }
    } else {
        guard (try? parser.parseLines(input, defaultTimestamp: 0, into: &block)) != nil else { return }
    }
    for key in block.seriesKeys {
        guard let parts = LineProtocolSeriesKey.parse(key),
            LineProtocolSeriesKey.make(measurement: parts.measurement, tags: parts.tags, field: parts.field) == key
        else { fatalError("series key \(key.debugDescription) does not map back to its parts") }
    }
    for reading in block.readings where !reading.value.isFinite {
        fatalError("a non-finite value was accepted")
    }
}

private func fuzzCSV(_ input: UnsafeBufferPointer<UInt8>) {
    var parser = CSVParser()
    var block = ReadingBlock()
    let bytes = Array(input)
    var lineNumber = 1
    for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
        try? parser.parse(line, lineNumber: lineNumber, into: &block)
        lineNumber += 1
    }
}
