import Testing

@testable import NATSJetStream

/// The server side of the NATS protocol, framed from bytes however they arrive; hostile or broken
/// input is a violation (the connection is dropped), never a crash or an unbounded buffer.
@Suite struct NATSParserTests {
    private func operations(_ text: String, chunk: Int = .max, parser: NATSParser = NATSParser()) throws -> [NATSServerOperation] {
        var parser = parser
        var result: [NATSServerOperation] = []
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            parser.append(bytes[offset..<end])
            offset = end
            while let operation = try parser.next() { result.append(operation) }
        }
        return result
    }

    static let sample =
        "INFO {\"server_id\":\"N1\",\"version\":\"2.9.10\",\"headers\":true,\"max_payload\":1048576,\"jetstream\":true}\r\n"
        + "PING\r\npong\r\n+OK\r\n-ERR 'Authorization Violation'\r\n"
        + "MSG a.b 7 5\r\nhello\r\n"
        + "MSG a.b 7 _INBOX.x.1 0\r\n\r\n"
        + "HMSG _INBOX.x.2 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
        + "HMSG s 1 reply 30 33\r\nNATS/1.0\r\nNats-Msg-Id: abc\r\n\r\nxyz\r\n"

    static let expected: [NATSServerOperation] = [
        .info(NATSServerInfo(serverID: "N1", version: "2.9.10", maximumPayload: 1_048_576, supportsHeaders: true, supportsJetStream: true)),
        .ping, .pong, .ok, .error("Authorization Violation"),
        .message(NATSMessage(subject: "a.b", subscription: "7", payload: Array("hello".utf8))),
        .message(NATSMessage(subject: "a.b", subscription: "7", replyTo: "_INBOX.x.1", payload: [])),
        .message(NATSMessage(subject: "_INBOX.x.2", subscription: "1", status: 503, payload: [])),
        .message(
            NATSMessage(
                subject: "s", subscription: "1", replyTo: "reply", headers: [("Nats-Msg-Id", "abc")], payload: Array("xyz".utf8))),
    ]

    @Test func everyOperationIsFramed() throws {
        #expect(try operations(Self.sample) == Self.expected)
    }

    @Test(arguments: [1, 2, 3, 7, 16, 64])
    func operationsSplitAnywhereAreFramedTheSame(chunk: Int) throws {
        #expect(try operations(Self.sample, chunk: chunk) == Self.expected)
    }

    @Test func headerLookupIgnoresCase() throws {
        guard case .message(let message) = try operations("HMSG s 1 30 30\r\nNATS/1.0\r\nNats-Msg-Id: abc\r\n\r\n\r\n").first else {
            Issue.record("no message")
            return
        }
        #expect(message.header("nats-msg-id") == "abc")
        #expect(message.header("Other") == nil)
    }

    @Test func anIncompleteMessageWaitsForTheRest() throws {
        var parser = NATSParser()
        parser.append(Array("MSG a 1 10\r\n01234".utf8))
        #expect(try parser.next() == nil)
        parser.append(Array("56789\r\n".utf8))
        #expect(try parser.next() == .message(NATSMessage(subject: "a", subscription: "1", payload: Array("0123456789".utf8))))
        #expect(parser.bufferedCount == 0)
    }

    @Test(arguments: [
        ("MSG a 1 5\r\nhelloXX", "not followed by CRLF"),
        ("MSG a 1 five\r\n", "decimal"),
        ("MSG a 1 -5\r\n", "decimal"),
        ("MSG a\r\n", "arguments"),
        ("MSG a 1 2 3 4\r\n", "arguments"),
        ("HMSG a 1 10 5\r\n", "exceeds total"),
        ("HMSG a 1 12 12\r\nHTTP/1.1\r\n\r\n\r\n", "NATS/1.0"),
        ("HMSG a 1 13 13\r\nNATS/1.0\r\nX\r\n\r\n", "headers block"),
        ("HMSG a 1 16 16\r\nNATS/1.0 5x3\r\n\r\n\r\n", "status"),
        ("HMSG a 1 17 17\r\nNATS/1.0\r\n: v\r\n\r\n\r\n", "without a name"),
        ("HMSG a 1 14 14\r\nNATS/1.0\rX\r\n\r\n\r\n", "bare CR"),
        ("INFO {not json}\r\n", "INFO"),
        ("INFO\r\n", "INFO"),
        ("HELLO world\r\n", "unknown operation"),
        ("PING extra\r\n", "unknown operation"),
        ("MSG a 1 99999999999\r\n", "decimal"),
    ])
    func brokenInputIsAViolation(input: String, reason: String) {
        #expect {
            _ = try operations(input)
        } throws: { error in
            (error as? NATSProtocolViolation)?.description.contains(reason) == true
        }
    }

    @Test func anOverlongControlLineIsRefusedBeforeItIsBuffered() {
        var parser = NATSParser(maximumControlLine: 64)
        parser.append([UInt8](repeating: UInt8(ascii: "A"), count: 65))
        #expect(throws: NATSProtocolViolation.self) { try parser.next() }
        var complete = NATSParser(maximumControlLine: 64)
        complete.append(Array(("MSG " + String(repeating: "a", count: 80) + " 1 0\r\n\r\n").utf8))
        #expect(throws: NATSProtocolViolation.self) { try complete.next() }
    }

    /// Found by the fuzzer: a line of exactly the limit, cut between its CR and LF, was refused as
    /// too long, while the same bytes in one piece were read (an unknown operation, here).
    @Test(arguments: [1, 7, 49, 50, .max])
    func aLineOfExactlyTheLimitIsReadHoweverItIsCut(chunk: Int) throws {
        let parser = NATSParser(maximumControlLine: 48)
        let line = "MSG " + String(repeating: "a", count: 40) + " 1 0"
        #expect(line.utf8.count == 48)
        let operations = try operations(line + "\r\n\r\nPING\r\n", chunk: chunk, parser: parser)
        #expect(operations == [.message(NATSMessage(subject: String(repeating: "a", count: 40), subscription: "1", payload: [])), .ping])
        #expect(throws: NATSProtocolViolation.self) { try self.operations(line + "a\r\n", chunk: chunk, parser: parser) }
    }

    @Test func aPayloadOverTheLimitIsRefusedBeforeItArrives() {
        var parser = NATSParser(maximumPayload: 1000)
        parser.append(Array("MSG a 1 1001\r\n".utf8))
        #expect(throws: NATSProtocolViolation.self) { try parser.next() }
        var headers = NATSParser(maximumPayload: 1000)
        headers.append(Array("HMSG a 1 10 2000000000\r\n".utf8))
        #expect(throws: NATSProtocolViolation.self) { try headers.next() }
    }

    @Test func randomBytesNeverCrashAndNeverBufferPastTheLimits() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var parser = NATSParser(maximumControlLine: 256, maximumPayload: 4096)
            let alphabet = Array("MSG HMSG INFO PING PONG +OK -ERR 0123456789 \r\n{}\"a.b_*>".utf8)
            let bytes = (0..<Int.random(in: 0..<600, using: &generator)).map { _ in
                alphabet[Int.random(in: 0..<alphabet.count, using: &generator)]
            }
            parser.append(bytes)
            while true {
                guard let operation = try? parser.next() else { break }
                _ = operation
            }
            #expect(parser.bufferedCount <= 600)
        }
    }
}

/// What the client sends: exact bytes, and no way for a subject or header value to add a line.
@Suite struct NATSCommandTests {
    @Test func publishWithoutAndWithHeaders() throws {
        #expect(try NATSCommand.publish("a.b", payload: Array("hi".utf8)) == Array("PUB a.b 2\r\nhi\r\n".utf8))
        #expect(try NATSCommand.publish("a.b", replyTo: "_INBOX.x.1", payload: []) == Array("PUB a.b _INBOX.x.1 0\r\n\r\n".utf8))
        let headers = "NATS/1.0\r\nNats-Msg-Id: m1\r\n\r\n"
        #expect(
            try NATSCommand.publish("a.b", replyTo: "r", headers: [("Nats-Msg-Id", "m1")], payload: Array("xyz".utf8))
                == Array("HPUB a.b r \(headers.utf8.count) \(headers.utf8.count + 3)\r\n\(headers)xyz\r\n".utf8))
    }

    @Test func whatTheClientSendsTheParserReadsBack() throws {
        // The client's HPUB body is the server's HMSG body: round trip through the parser.
        let command = try NATSCommand.publish("s.t", replyTo: "r", headers: [("Nats-Msg-Id", "id-1"), ("X-A", "b c")], payload: [1, 2, 3])
        let text = String(decoding: command, as: UTF8.self).replacingOccurrences(of: "HPUB s.t r", with: "HMSG s.t 9 r")
        var parser = NATSParser()
        parser.append(Array(text.utf8))
        guard case .message(let message)? = try parser.next() else {
            Issue.record("not a message")
            return
        }
        #expect(message.header("Nats-Msg-Id") == "id-1")
        #expect(message.header("X-A") == "b c")
        #expect(message.payload == [1, 2, 3])
    }

    @Test(arguments: ["", "a..b", ".a", "a.", "a b", "a\r\nPUB x 1", "a.*", "a.>", "a.b*", "tab\there", String(repeating: "a", count: 1025)])
    func badPublishSubjectsAreRefused(subject: String) {
        #expect(throws: NATSCommand.Invalid.self) { try NATSCommand.publish(subject, payload: []) }
    }

    @Test func wildcardsOnlyWhereAllowed() throws {
        _ = try NATSCommand.subscribe("a.*.c", sid: "1")
        _ = try NATSCommand.subscribe("a.>", sid: "1")
        #expect(throws: NATSCommand.Invalid.self) { try NATSCommand.subscribe("a.>.c", sid: "1") }
        #expect(throws: NATSCommand.Invalid.self) { try NATSCommand.subscribe("a", sid: "1 2") }
    }

    @Test func headersCannotInjectLines() {
        #expect(throws: NATSCommand.Invalid.self) {
            try NATSCommand.publish("a", headers: [("Nats-Msg-Id", "x\r\nNats-Expected-Stream: other")], payload: [])
        }
        #expect(throws: NATSCommand.Invalid.self) { try NATSCommand.publish("a", headers: [("Bad Name", "x")], payload: []) }
        #expect(throws: NATSCommand.Invalid.self) { try NATSCommand.publish("a", headers: [("A:B", "x")], payload: []) }
    }

    @Test func connectEscapesCredentials() {
        let line = String(
            decoding: NATSCommand.connect(.init(name: "c", version: "1", token: "t\"\r\nPUB x 1")), as: UTF8.self)
        #expect(line.hasPrefix("CONNECT {"))
        #expect(line.hasSuffix("}\r\n"))
        #expect(line.dropLast(2).contains("\r\n") == false)
        #expect(line.contains("\"headers\":true") && line.contains("\"no_responders\":true"))
    }
}
