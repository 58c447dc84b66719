// libFuzzer entry point for the HTTP/1.1 request parser (request line, header fields, Content-Length
// and chunked bodies, trailers, pipelining); built by Tests/Fuzz/run-fuzz.sh with HTTPCore's
// parsing sources.

/// The first input byte picks the chunk size (its value modulo 64, plus 1) and, with its top bit,
/// small limits; the rest is the bytes a client sends. The parser runs over the whole input at once
/// and again fed in chunks: both runs must give the same requests, bodies and error status (chunk
/// invariance), a body may never hold more bytes than arrived, and every request target's query must
/// decode or fail cleanly. No input may crash, hang or allocate without bound.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let chunkSize = Int(data[0] % 64) + 1
    let limits =
        data[0] & 0x80 != 0
        ? HTTPRequestParser.Limits(maxRequestLineLength: 64, maxHeaderBytes: 256, maxHeaderCount: 4, maxBodyBytes: 512)
        : HTTPRequestParser.Limits()

    let whole = parse([input[...]], limits: limits)
    var chunks: [ArraySlice<UInt8>] = []
    var start = 0
    while start < input.count {
        chunks.append(input[start..<min(input.count, start + chunkSize)])
        start += chunkSize
    }
    let pieces = parse(chunks, limits: limits)
    guard whole == pieces else {
        fatalError("chunk size \(chunkSize) changed the outcome:\n\(whole)\nversus\n\(pieces)")
    }
    let bodyBytes = whole.requests.reduce(0) { $0 + $1.body.count }
    guard bodyBytes <= input.count else { fatalError("\(bodyBytes) body bytes out of \(input.count) input bytes") }
    for request in whole.requests {
        guard let head = request.head else { continue }
        if let question = head.target.firstIndex(of: "?") {
            let query = String(head.target[head.target.index(after: question)...])
            if let parameters = HTTPQueryParameters(query) {
                for item in parameters.items { _ = parameters.values(for: item.name) }
            }
            for component in query.split(separator: "&") {
                _ = try? HTTPQueryParameters.decodeComponent(component.utf8)
            }
        }
    }
    return 0
}

/// What a parse produced: each request's head, body bytes (however the parser split them) and
/// trailers, and the status of the error that stopped it, if any.
private struct Outcome: Equatable {
    struct Request: Equatable {
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        var trailers: HTTPHeaders?
    }

    var requests: [Request] = []
    var errorStatus: Int?
}

private func parse(_ chunks: [ArraySlice<UInt8>], limits: HTTPRequestParser.Limits) -> Outcome {
    var parser = HTTPRequestParser(limits: limits)
    var outcome = Outcome()
    for chunk in chunks {
        parser.append(chunk)
        do {
            while let event = try parser.next() {
                switch event {
                case .head(let head):
                    outcome.requests.append(Outcome.Request(head: head))
                case .body(let bytes):
                    guard !outcome.requests.isEmpty else { fatalError("a body before any head") }
                    outcome.requests[outcome.requests.count - 1].body += bytes
                case .end(let trailers):
                    guard !outcome.requests.isEmpty else { fatalError("an end before any head") }
                    outcome.requests[outcome.requests.count - 1].trailers = trailers
                }
            }
        } catch {
            outcome.errorStatus = Int(error.status.code)
            // A failed parser keeps failing with the same error.
            do {
                _ = try parser.next()
                fatalError("the parser recovered after \(error)")
            } catch let again {
                guard again == error else { fatalError("a second error \(again) after \(error)") }
            }
            return outcome
        }
    }
    return outcome
}
