// libFuzzer entry point for what the collector reads from a query string: the strict parameter set
// of the query API, its timestamps and its paging cursor; built by Tests/Fuzz/run-fuzz.sh together
// with those sources (and the HTTP core and protocol types they use).

/// The first input byte picks the target (its value modulo 3); the rest is the text. 0: the query
/// string of `/v1/readings`, every parameter read as the endpoint reads it, and a cursor that decodes
/// must encode back to itself; 1: a timestamp, which as a plain integer must parse to that integer;
/// 2: the HTTP core's lenient query parameters. No input may crash, hang or allocate without bound.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQuery(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    switch data[0] % 3 {
    case 0: fuzzReadingsQuery(text)
    case 1:
        let parsed = Timestamp.parse(text)
        if let integer = Int64(text), parsed != integer {
            fatalError("\(text.debugDescription) parsed to \(String(describing: parsed)), not \(integer)")
        }
    default:
        if let parameters = HTTPQueryParameters(text) {
            for item in parameters.items { _ = parameters[item.name] }
        }
    }
    return 0
}

private func fuzzReadingsQuery(_ query: String) {
    let allowed: Set<String> = ["device", "series", "from", "to", "format", "limit", "cursor"]
    guard let parameters = try? QueryParameters(query, allowed: allowed) else { return }
    _ = try? parameters.required("device")
    _ = try? parameters.integer("limit", default: 100_000, in: 1...10_000_000)
    _ = try? parameters.timestamp("from")
    _ = try? parameters.timestamp("to")
    guard let cursor = parameters["cursor"] else { return }
    let series = SeriesReference(device: parameters["device"] ?? "", key: parameters["series"] ?? "", id: 7)
    guard let position = try? ReadingCursor.decode(cursor, series: series) else { return }
    let again = ReadingCursor.encode(series: series, after: position)
    guard (try? ReadingCursor.decode(again, series: series)) == position else {
        fatalError("cursor \(cursor.debugDescription) decoded to \(position), which does not round-trip")
    }
}
