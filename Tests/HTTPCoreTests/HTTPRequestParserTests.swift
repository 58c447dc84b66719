import Testing

@testable import HTTPCore

/// A well-formed input and what the parser must make of it.
struct ValidMessage: Sendable, CustomStringConvertible {
    var name: String
    var text: String
    /// method, target, body for each request, in order.
    var expected: [(method: String, target: String, body: String)]

    var description: String { name }
}

private let validMessages: [ValidMessage] = [
    ValidMessage(
        name: "GET with headers",
        text: "GET /v1/readings?from=3&to=9 HTTP/1.1\r\nHost: collector\r\nAccept: */*\r\nX-Empty:\r\n\r\n",
        expected: [("GET", "/v1/readings?from=3&to=9", "")]),
    ValidMessage(
        name: "POST with Content-Length",
        text: "POST /v1/batches HTTP/1.1\r\nHost: c\r\nContent-Length: 11\r\n\r\nhello world",
        expected: [("POST", "/v1/batches", "hello world")]),
    ValidMessage(
        name: "chunked with extension and trailers",
        text: "POST /up HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\nA\r\n, chunked!\r\n0\r\nChecksum: abc\r\nX-Count: 2\r\n\r\n",
        expected: [("POST", "/up", "hello, chunked!")]),
    ValidMessage(
        name: "three pipelined requests",
        text: "GET /a HTTP/1.1\r\nHost: c\r\n\r\n"
            + "POST /b HTTP/1.1\r\nHost: c\r\nContent-Length: 3\r\n\r\nabc"
            + "PUT /c HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
        expected: [("GET", "/a", ""), ("POST", "/b", "abc"), ("PUT", "/c", "xyz")]),
    ValidMessage(
        name: "HTTP/1.0 without Host",
        text: "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        expected: [("GET", "/old", "")]),
    ValidMessage(
        name: "leading empty lines",
        text: "\r\n\r\nGET / HTTP/1.1\r\nHost: c\r\n\r\n",
        expected: [("GET", "/", "")]),
    ValidMessage(
        name: "Host forms: name and port, IPv6 literal, empty",
        text: "GET /a HTTP/1.1\r\nHost: gw-1.example:8086\r\n\r\nGET /b HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"
            + "GET /c HTTP/1.1\r\nHost:\r\n\r\n",
        expected: [("GET", "/a", ""), ("GET", "/b", ""), ("GET", "/c", "")]),
    ValidMessage(
        name: "absolute-form and asterisk targets",
        text: "GET http://c/x HTTP/1.1\r\nHost: c\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: c\r\n\r\n",
        expected: [("GET", "http://c/x", ""), ("OPTIONS", "*", "")]),
    ValidMessage(
        name: "Expect 100-continue",
        text: "POST /big HTTP/1.1\r\nHost: c\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\nbody",
        expected: [("POST", "/big", "body")]),
    ValidMessage(
        name: "uppercase hex chunk size and zero Content-Length",
        text: "POST /h HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"
            + "POST /z HTTP/1.1\r\nHost: c\r\nContent-Length: 0\r\n\r\n",
        expected: [("POST", "/h", "0123456789"), ("POST", "/z", "")]),
    ValidMessage(
        name: "optional whitespace and obs-text in values",
        text: "GET / HTTP/1.1\r\nHost: \t c \t\r\nX-Latin: caf\u{E9}\r\n\r\n",
        expected: [("GET", "/", "")]),
]

@Suite("HTTPRequestParser")
struct HTTPRequestParserTests {
    @Test("valid messages parse to the expected requests", arguments: validMessages)
    func validMessageParses(_ message: ValidMessage) throws {
        let outcome = parse(message.text)
        #expect(outcome.error == nil)
        try #require(outcome.requests.count == message.expected.count)
        for (request, expected) in zip(outcome.requests, message.expected) {
            #expect(request.head.method == expected.method)
            #expect(request.head.target == expected.target)
            #expect(request.bodyText == expected.body)
            #expect(request.isComplete)
        }
    }

    @Test("valid messages give the same result in every chunking", arguments: validMessages)
    func validMessageIsChunkInvariant(_ message: ValidMessage) {
        let whole = parse(message.text)
        for chunking in Chunking.all {
            #expect(parse(message.text, chunking: chunking) == whole, "\(chunking)")
        }
    }

    @Test func headFieldsKeepOrderAndLookUpCaseInsensitively() throws {
        let outcome = parse("GET /p?q=1 HTTP/1.1\r\nHost: c\r\nX-A: 1\r\nx-a: 2\r\nAccept:  text/plain \r\n\r\n")
        let head = try #require(outcome.requests.first?.head)
        #expect(head.headers.map(\.name) == ["Host", "X-A", "x-a", "Accept"])
        #expect(head.headers["x-A"] == "1")
        #expect(head.headers.values(for: "X-A") == ["1", "2"])
        #expect(head.headers["accept"] == "text/plain")
        #expect(head.path == "/p")
        #expect(head.query == "q=1")
        #expect(head.version == .http11)
        #expect(head.framing == .none)
    }

    @Test(
        "path and query from each target form",
        arguments: [
            ("/a/b?x=1&y", "/a/b", "x=1&y"),
            ("/plain", "/plain", nil),
            ("/q?", "/q", ""),
            ("http://host:8080/v1/batches?since=3", "/v1/batches", "since=3"),
            ("http://host", "/", nil),
            ("*", "*", nil),
        ] as [(String, String, String?)])
    func pathAndQuery(target: String, path: String, query: String?) {
        let head = HTTPRequestHead(method: "GET", target: target)
        #expect(head.path == path)
        #expect(head.query == query)
    }

    @Test func chunkedTrailersAreReported() throws {
        let outcome = parse(
            "POST / HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nDigest: sha-256=abc\r\n\r\n"
        )
        let request = try #require(outcome.requests.first)
        #expect(request.head.framing == .chunked)
        #expect(request.trailers["digest"] == "sha-256=abc")
    }

    @Test(
        "keep-alive follows version and Connection",
        arguments: [
            ("GET / HTTP/1.1\r\nHost: c\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: c\r\nConnection: Upgrade, CLOSE\r\n\r\n", false),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false),
        ])
    func keepAlive(text: String, isKeepAlive: Bool) throws {
        let head = try #require(parse(text).requests.first?.head)
        #expect(head.isKeepAlive == isKeepAlive)
    }

    @Test func expectContinueIsOnlyHonouredForHTTP11WithBody() throws {
        let withBody = parse("PUT / HTTP/1.1\r\nHost: c\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
        #expect(try #require(withBody.requests.first).head.expectsContinue)
        let old = parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
        #expect(try #require(old.requests.first).head.expectsContinue == false)
    }

    @Test func bodyPiecesArriveBeforeTheWholeBody() throws {
        var parser = HTTPRequestParser()
        parser.append(Array("POST / HTTP/1.1\r\nHost: c\r\nContent-Length: 6\r\n\r\nabc".utf8))
        guard case .head = try #require(try parser.next()) else { Issue.record("expected head"); return }
        #expect(try parser.next() == .body(Array("abc".utf8)))
        #expect(try parser.next() == nil)
        #expect(parser.isInBody)
        parser.append(Array("def".utf8))
        #expect(try parser.next() == .body(Array("def".utf8)))
        #expect(try parser.next() == .end(trailers: HTTPHeaders()))
        #expect(parser.isIdle)
    }

    /// The smuggling request from issue 17, byte for byte: `Transfer-Encoding: chun\u{212A}ed` (KELVIN
    /// SIGN, which Unicode lowercases to `k`). A proxy that does not fold Unicode forwards the chunk
    /// as a second request; the parser must refuse the first head and surface nothing after it.
    @Test(
        "Transfer-Encoding with a KELVIN SIGN is refused in every chunking",
        arguments: ["chun\u{212A}ed", "CHUN\u{212A}ED", "chunked\u{212A}", "\u{212A}chunked"])
    func kelvinSignTransferCodingIsRefused(coding: String) {
        var bytes = Array("POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ".utf8) + Array(coding.utf8)
        bytes += Array("\r\n\r\n2b\r\nGET /metrics?SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n".utf8)
        bytes += Array("GET /nope2 HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        if coding == "chun\u{212A}ed" {
            #expect(Array(bytes[52..<59]) == [0x6E, 0xE2, 0x84, 0xAA, 0x65, 0x64, 0x0D], "the raw bytes of the issue")
        }
        for chunking in Chunking.all {
            let outcome = parse(bytes, chunking: chunking)
            #expect(outcome.requests.isEmpty, "\(chunking)")
            #expect(outcome.error?.status == .badRequest, "\(chunking)")
        }
    }

    @Test("an HTTP/1.0 Connection option with a KELVIN SIGN is refused, not read as keep-alive")
    func kelvinSignConnectionOptionIsRefused() {
        let bytes = Array("GET / HTTP/1.0\r\nConnection: \u{212A}eep-alive\r\n\r\nGET /second HTTP/1.0\r\n\r\n".utf8)
        for chunking in Chunking.all {
            let outcome = parse(bytes, chunking: chunking)
            #expect(outcome.requests.isEmpty, "\(chunking)")
            #expect(outcome.error?.status == .badRequest, "\(chunking)")
        }
    }

    @Test func tokensCompareByteWiseAndIgnoreOnlyASCIICase() {
        #expect(ASCIICase.equal("Chunked", "chunked"))
        #expect(!ASCIICase.equal("chun\u{212A}ed", "chunked"))
        #expect(!ASCIICase.equal("\u{212A}", "k"))
        #expect(!ASCIICase.equal("\u{212A}", "K"), "not Unicode canonical equivalence either")
        #expect(ASCIICase.lowercased("GZIP-\u{212A}\u{130}") == "gzip-\u{212A}\u{130}")
        #expect(ASCIICase.uppercased("fu\u{FB02}l") == "FU\u{FB02}L")
        #expect(ASCIICase.hasPrefix("Bearer abc", "bearer "))
        #expect(!ASCIICase.hasPrefix("Bea", "bearer"))
        #expect(ASCIICase.isToken("keep-alive"))
        #expect(!ASCIICase.isToken("keep alive"))
        #expect(!ASCIICase.isToken(""))
        #expect(!ASCIICase.isToken("\u{212A}eep-alive"))
    }

    @Test func errorIsStickyAfterFailure() {
        var parser = HTTPRequestParser()
        parser.append(Array("GET / HTTP/1.1\r\nHost: c\r\nBad Name: x\r\n\r\nGET / HTTP/1.1\r\nHost: c\r\n\r\n".utf8))
        #expect(throws: HTTPError.malformedRequest) { try parser.next() }
        #expect(throws: HTTPError.malformedRequest) { try parser.next() }
    }

    @Test func hostileRequestAfterAGoodOneStopsOnlyTheSecond() throws {
        let outcome = parse("GET /ok HTTP/1.1\r\nHost: c\r\n\r\nGET /bad HTTP/1.1\r\nHost: c\r\nHost: d\r\n\r\n")
        #expect(outcome.requests.count == 1)
        #expect(outcome.requests.first?.isComplete == true)
        #expect(outcome.error?.status == .badRequest)
    }
}
