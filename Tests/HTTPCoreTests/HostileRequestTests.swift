import Testing

@testable import HTTPCore

/// A malformed or hostile request and the status it must be answered with.
struct HostileMessage: Sendable, CustomStringConvertible {
    var name: String
    var text: String
    var status: Int
    var description: String { name }
}

/// Small limits, so that the limit cases stay readable.
let hostileLimits = HTTPRequestParser.Limits(
    maxRequestLineLength: 64, maxHeaderBytes: 256, maxHeaderCount: 8, maxBodyBytes: 1024)

private let get = "GET / HTTP/1.1\r\nHost: c\r\n"
let chunkedPost = "POST / HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"

let hostileMessages: [HostileMessage] = [
    // Request smuggling: ambiguous framing.
    .init(
        name: "Content-Length and Transfer-Encoding",
        text: "POST / HTTP/1.1\r\nHost: c\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400),
    .init(
        name: "Transfer-Encoding and Content-Length",
        text: "POST / HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", status: 400),
    .init(name: "conflicting Content-Length list", text: get + "Content-Length: 5, 6\r\n\r\n", status: 400),
    .init(
        name: "conflicting Content-Length fields",
        text: get + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", status: 400),
    .init(name: "Content-Length not a number", text: get + "Content-Length: abc\r\n\r\n", status: 400),
    .init(name: "negative Content-Length", text: get + "Content-Length: -1\r\n\r\n", status: 400),
    .init(name: "Content-Length with plus sign", text: get + "Content-Length: +5\r\n\r\n", status: 400),
    .init(name: "empty Content-Length", text: get + "Content-Length:\r\n\r\n", status: 400),
    .init(name: "Content-Length with inner space", text: get + "Content-Length: 1 2\r\n\r\n", status: 400),
    .init(name: "hexadecimal Content-Length", text: get + "Content-Length: 0x10\r\n\r\n", status: 400),
    .init(
        name: "overflowing Content-Length",
        text: get + "Content-Length: 99999999999999999999999\r\n\r\n", status: 400),
    .init(name: "Content-Length over the limit", text: get + "Content-Length: 1025\r\n\r\n", status: 413),
    .init(name: "Transfer-Encoding gzip alone", text: get + "Transfer-Encoding: gzip\r\n\r\n", status: 400),
    .init(name: "unknown coding before chunked", text: get + "Transfer-Encoding: gzip, chunked\r\n\r\n", status: 501),
    .init(name: "chunked twice", text: get + "Transfer-Encoding: chunked, chunked\r\n\r\n", status: 400),
    .init(name: "chunked not last", text: get + "Transfer-Encoding: chunked, identity\r\n\r\n", status: 400),
    .init(name: "misspelled chunked", text: get + "Transfer-Encoding: xchunked\r\n\r\n", status: 400),
    .init(name: "empty Transfer-Encoding", text: get + "Transfer-Encoding:\r\n\r\n", status: 400),
    .init(
        name: "identical Content-Length fields",
        text: "POST / HTTP/1.1\r\nHost: c\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", status: 400),
    .init(name: "identical Content-Length list", text: get + "Content-Length: 2, 2\r\n\r\nok", status: 400),
    .init(
        name: "KELVIN SIGN in chunked", text: get + "Transfer-Encoding: chun\u{212A}ed\r\n\r\n0\r\n\r\n", status: 400),
    .init(
        name: "KELVIN SIGN in upper-case CHUNKED", text: get + "Transfer-Encoding: CHUN\u{212A}ED\r\n\r\n0\r\n\r\n",
        status: 400),
    .init(name: "space inside a transfer coding", text: get + "Transfer-Encoding: chun ked\r\n\r\n", status: 400),
    .init(
        name: "KELVIN SIGN in a Connection option",
        text: "GET / HTTP/1.0\r\nConnection: \u{212A}eep-alive\r\n\r\n", status: 400),
    .init(name: "space inside Host", text: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400),
    .init(name: "non-ASCII Host", text: "GET / HTTP/1.1\r\nHost: caf\u{E9}\r\n\r\n", status: 400),
    .init(name: "slash in Host", text: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", status: 400),
    .init(
        name: "Transfer-Encoding in HTTP/1.0",
        text: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
    // Line structure.
    .init(name: "obsolete line folding", text: get + "X-A: 1\r\n  continued\r\n\r\n", status: 400),
    .init(name: "folding on the first field", text: "GET / HTTP/1.1\r\n Host: c\r\n\r\n", status: 400),
    .init(name: "bare LF after request line", text: "GET / HTTP/1.1\nHost: c\r\n\r\n", status: 400),
    .init(name: "bare LF after a field", text: "GET / HTTP/1.1\r\nHost: c\n\r\n", status: 400),
    .init(name: "bare LF ending the head", text: get + "\n", status: 400),
    .init(name: "bare CR inside a value", text: get + "X-A: a\rb\r\n\r\n", status: 400),
    .init(name: "bare CR in the request line", text: "GET /\r HTTP/1.1\r\nHost: c\r\n\r\n", status: 400),
    // Field names and values.
    .init(name: "space inside a field name", text: get + "X Foo: 1\r\n\r\n", status: 400),
    .init(name: "space before the colon", text: "GET / HTTP/1.1\r\nHost : c\r\n\r\n", status: 400),
    .init(name: "tab before the colon", text: get + "X-A\t: 1\r\n\r\n", status: 400),
    .init(name: "control character in a field name", text: get + "X\u{01}A: 1\r\n\r\n", status: 400),
    .init(name: "NUL in a field value", text: get + "X-A: a\u{00}b\r\n\r\n", status: 400),
    .init(name: "DEL in a field value", text: get + "X-A: a\u{7F}b\r\n\r\n", status: 400),
    .init(name: "empty field name", text: get + ": value\r\n\r\n", status: 400),
    .init(name: "field without colon", text: get + "NoColonHere\r\n\r\n", status: 400),
    .init(name: "missing Host in HTTP/1.1", text: "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", status: 400),
    .init(name: "two Host fields", text: get + "Host: d\r\n\r\n", status: 400),
    .init(name: "unknown expectation", text: get + "Expect: 200-ok\r\n\r\n", status: 417),
    // Request line.
    .init(name: "invalid character in method", text: "G(ET / HTTP/1.1\r\nHost: c\r\n\r\n", status: 400),
    .init(name: "double space in request line", text: "GET  / HTTP/1.1\r\nHost: c\r\n\r\n", status: 400),
    .init(name: "trailing space after version", text: "GET / HTTP/1.1 \r\nHost: c\r\n\r\n", status: 400),
    .init(name: "lowercase protocol name", text: "GET / http/1.1\r\nHost: c\r\n\r\n", status: 400),
    .init(name: "two-digit minor version", text: "GET / HTTP/1.10\r\nHost: c\r\n\r\n", status: 400),
    .init(name: "HTTP/2.0 request line", text: "GET / HTTP/2.0\r\nHost: c\r\n\r\n", status: 505),
    .init(name: "HTTP/0.9 request line", text: "GET / HTTP/0.9\r\n\r\n", status: 505),
    .init(name: "missing version", text: "GET /\r\nHost: c\r\n\r\n", status: 400),
    .init(name: "relative target", text: "GET index.html HTTP/1.1\r\nHost: c\r\n\r\n", status: 400),
    .init(name: "asterisk target on GET", text: "GET * HTTP/1.1\r\nHost: c\r\n\r\n", status: 400),
    .init(name: "DEL in target", text: "GET /a\u{7F} HTTP/1.1\r\nHost: c\r\n\r\n", status: 400),
    // Chunked framing.
    .init(name: "non-hex chunk size", text: chunkedPost + "zz\r\n", status: 400),
    .init(name: "negative chunk size", text: chunkedPost + "-1\r\n", status: 400),
    .init(name: "empty chunk size", text: chunkedPost + "\r\n", status: 400),
    .init(name: "overlong chunk size", text: chunkedPost + "1000000000000000000\r\n", status: 400),
    .init(name: "chunk size followed by junk", text: chunkedPost + "5 x\r\nhello\r\n0\r\n\r\n", status: 400),
    .init(name: "chunk size with 0x prefix", text: chunkedPost + "0x5\r\nhello\r\n0\r\n\r\n", status: 400),
    .init(name: "chunk data longer than declared", text: chunkedPost + "5\r\nhelloXX\r\n0\r\n\r\n", status: 400),
    .init(name: "bare LF after chunk size", text: chunkedPost + "5\nhello\r\n0\r\n\r\n", status: 400),
    .init(name: "control character in chunk extension", text: chunkedPost + "5;a=\u{01}\r\nhello\r\n", status: 400),
    .init(name: "folded trailer", text: chunkedPost + "0\r\nX-T: 1\r\n more\r\n\r\n", status: 400),
    .init(
        name: "chunked body over the limit",
        text: chunkedPost + "400\r\n" + String(repeating: "a", count: 1024)
            + "\r\n1\r\n", status: 413),
    // Limits.
    .init(
        name: "request line too long", text: "GET /" + String(repeating: "a", count: 80) + " HTTP/1.1\r\n\r\n",
        status: 414),
    .init(
        name: "header section too large",
        text: get + "X-Big: " + String(repeating: "b", count: 300) + "\r\n\r\n", status: 431),
    .init(
        name: "too many header fields",
        text: get + (1...9).map { "X-\($0): v\r\n" }.joined() + "\r\n", status: 431),
    .init(
        name: "trailer section too large",
        text: chunkedPost + "0\r\nX-T: " + String(repeating: "t", count: 300) + "\r\n\r\n", status: 431),
]

@Suite("Hostile requests")
struct HostileRequestTests {
    @Test("the table covers at least forty shapes")
    func tableIsLargeEnough() {
        #expect(hostileMessages.count >= 40)
        #expect(Set(hostileMessages.map(\.name)).count == hostileMessages.count, "names are unique")
    }

    @Test("each hostile message fails with its status in every chunking", arguments: hostileMessages)
    func rejected(_ message: HostileMessage) {
        for chunking in Chunking.all {
            let outcome = parse(Array(message.text.utf8), limits: hostileLimits, chunking: chunking)
            #expect(outcome.error?.status.code == message.status, "\(chunking)")
            // A request whose head fails never surfaces as a head.
            if outcome.requests.isEmpty == false {
                #expect(outcome.requests.allSatisfy { $0.head.framing != .none }, "only bodies fail after a head")
            }
        }
    }
}
