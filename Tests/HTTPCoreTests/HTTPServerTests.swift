import Foundation
import Synchronization
import Testing

@testable import HTTPCore

/// An error type of the kind other modules define, carrying its own status and headers.
private struct Throttled: HTTPResponseError {
    var status: HTTPStatus { .serviceUnavailable }
    var responseHeaders: HTTPHeaders { ["Retry-After": "7"] }
    var responseMessage: String? { "busy" }
}

private struct SecretFailure: Error {}

/// Echoes what the server handed to the handler, so tests can check the request side.
private let echo = HTTPClosureResponder { request, context in
    let body = try await request.body.collect(upTo: 1 << 24)
    var headers = HTTPHeaders()
    headers.add("X-Connection", String(context.connectionID))
    headers.add("X-Request-Index", String(context.requestIndex))
    headers.add("X-Method", request.method)
    return HTTPResponse(status: .ok, headers: headers, bytes: Array("\(request.target) \(body.count)".utf8))
}

/// A one-shot signal a test opens to let a waiting handler go on.
private final class Gate: Sendable {
    private let state = Mutex<(isOpen: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state in
                if state.isOpen { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }
}

@Suite("HTTPServer on loopback")
struct HTTPServerTests {
    @Test func servesAndKeepsTheConnectionAlive() async throws {
        try await withServer(responder: echo) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send("GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
            let first = try await client.readResponse()
            try await client.send("POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            let second = try await client.readResponse()
            #expect(first.status == 200)
            #expect(first.text == "/one 0")
            #expect(first.headers["date"] != nil)
            #expect(second.text == "/two 5")
            #expect(first.headers["x-connection"] == second.headers["x-connection"])
            #expect(second.headers["x-request-index"] == "1")
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let slowFirst = HTTPClosureResponder { request, _ in
            // The first request finishes last unless the server serialises responses.
            if request.path == "/1" { for _ in 0..<50 { await Task.yield() } }
            return HTTPResponse(text: request.path)
        }
        try await withServer(responder: slowFirst) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send((1...5).map { "GET /\($0) HTTP/1.1\r\nHost: t\r\n\r\n" }.joined())
            var paths: [String] = []
            for _ in 1...5 { paths.append(try await client.readResponse().text) }
            #expect(paths == ["/1", "/2", "/3", "/4", "/5"])
        }
    }

    @Test func streamsAChunkedRequestBodyToTheHandler() async throws {
        let counter = HTTPClosureResponder { request, _ in
            var total = 0
            var pieces = 0
            var sum: UInt64 = 0
            for try await chunk in request.body {
                total += chunk.count
                pieces += 1
                for byte in chunk { sum = sum &* 31 &+ UInt64(byte) }
            }
            return HTTPResponse(text: "\(total) \(sum) \(request.headers["transfer-encoding"] ?? "")")
        }
        let payload = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var expectedSum: UInt64 = 0
        for byte in payload { expectedSum = expectedSum &* 31 &+ UInt64(byte) }
        try await withServer(responder: counter) { _, address in
            let client = try await RawClient.connect(address)
            var message = Array("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            var offset = 0
            while offset < payload.count {
                let size = min(100_000, payload.count - offset)
                message += Array(String(size, radix: 16).utf8) + [13, 10] + payload[offset..<offset + size] + [13, 10]
                offset += size
            }
            message += Array("0\r\n\r\n".utf8)
            try await client.send(message)
            let response = try await client.readResponse()
            #expect(response.text == "\(payload.count) \(expectedSum) chunked")
        }
    }

    @Test func streamsAChunkedResponse() async throws {
        let streamer = HTTPClosureResponder { _, _ in
            HTTPResponse(headers: ["Content-Type": "text/csv"]) { writer in
                for row in 0..<2000 { try await writer.write("row,\(row)\n") }
            }
        }
        try await withServer(responder: streamer) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send("GET /rows HTTP/1.1\r\nHost: t\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.headers["transfer-encoding"] == "chunked")
            #expect(response.headers["content-length"] == nil)
            #expect(response.text == (0..<2000).map { "row,\($0)\n" }.joined())
            // The connection is still usable after the terminating chunk.
            try await client.send("HEAD /rows HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try await client.readResponse(forHead: true).status == 200)
        }
    }

    @Test func streamedResponseToHTTP10IsCloseDelimited() async throws {
        let streamer = HTTPClosureResponder { _, _ in
            HTTPResponse { writer in try await writer.write("abc") }
        }
        try await withServer(responder: streamer) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.text == "abc")
            #expect(response.headers["connection"] == "close")
        }
    }

    @Test func http10KeepAliveIsEchoedOnlyWhenAsked() async throws {
        try await withServer(responder: echo) { _, address in
            let keeping = try await RawClient.connect(address)
            try await keeping.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let first = try await keeping.readResponse()
            #expect(first.headers["connection"] == "keep-alive")
            try await keeping.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            #expect(try await keeping.readResponse().text == "/b 0")

            let plain = try await RawClient.connect(address)
            try await plain.send("GET /c HTTP/1.0\r\n\r\n")
            let response = try await plain.readResponse()
            #expect(response.headers["connection"] == "close")
            #expect(try await plain.isClosedByServer())
        }
    }

    @Test func connectionCloseIsHonoured() async throws {
        try await withServer(responder: echo) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            #expect(try await client.readResponse().headers["connection"] == "close")
            #expect(try await client.isClosedByServer())
        }
    }

    @Test func expectContinueIsSentWhenTheHandlerReads() async throws {
        try await withServer(responder: echo) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send("PUT /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            let interim = try await client.readResponse()
            #expect(interim.status == 100)
            try await client.send("data")
            #expect(try await client.readResponse().text == "/x 4")
        }
    }

    @Test func handlerCanRefuseWithoutReadingTheBody() async throws {
        let refuser = HTTPClosureResponder { _, _ in throw HTTPError(.contentTooLarge, "split the batch") }
        try await withServer(responder: refuser) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send("PUT /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4000\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 413)
            #expect(response.text == "split the batch\n")
            #expect(try await client.isClosedByServer())
        }
    }

    @Test func unreadBodyIsDiscardedAndTheConnectionReused() async throws {
        let ignoring = HTTPClosureResponder { request, _ in HTTPResponse(text: request.path) }
        try await withServer(responder: ignoring) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send(
                "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789"
                    + "GET /b HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try await client.readResponse().text == "/a")
            #expect(try await client.readResponse().text == "/b")
        }
    }

    @Test func handlerErrorsBecomeTheirStatus() async throws {
        let failing = HTTPClosureResponder { request, _ in
            switch request.path {
            case "/missing": throw HTTPError(.notFound, "no such batch")
            case "/busy": throw Throttled()
            default: throw SecretFailure()
            }
        }
        try await withServer(responder: failing) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send("GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
            let missing = try await client.readResponse()
            #expect(missing.status == 404)
            #expect(missing.text == "no such batch\n")
            try await client.send("GET /busy HTTP/1.1\r\nHost: t\r\n\r\n")
            let busy = try await client.readResponse()
            #expect(busy.status == 503)
            #expect(busy.headers["retry-after"] == "7")
            try await client.send("GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
            let boom = try await client.readResponse()
            #expect(boom.status == 500)
            #expect(boom.body.isEmpty, "details of unknown errors stay in the log")
        }
    }

    @Test func responseSplittingHeadersAreRefused() async throws {
        let splitter = HTTPClosureResponder { _, _ in
            HTTPResponse(status: .ok, headers: ["X-Evil": "a\r\nSet-Cookie: stolen"], bytes: [])
        }
        try await withServer(responder: splitter) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 500)
            #expect(response.headers["set-cookie"] == nil)
        }
    }

    @Test func hostileRequestsNeverReachTheHandler() async throws {
        let calls = Atomic<Int>(0)
        let counting = HTTPClosureResponder { request, _ in
            calls.add(1, ordering: .relaxed)
            _ = try await request.body.collect(upTo: 1 << 20)
            return HTTPResponse(text: "handled")
        }
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.limits = hostileLimits
        try await withServer(configuration, responder: counting) { _, address in
            for message in hostileMessages {
                let client = try await RawClient.connect(address)
                try await client.send(message.text)
                let response = try await client.readResponse()
                #expect(response.status == message.status, "\(message.name)")
                #expect(try await client.isClosedByServer(), "\(message.name)")
            }
        }
        // Only a body can fail after a valid head; its handler may have started before the bad
        // bytes arrived, or not, if the whole message came in one read. Heads never get through.
        let bodyFailures = hostileMessages.filter { $0.text.hasPrefix(chunkedPost) }
        #expect(calls.load(ordering: .relaxed) <= bodyFailures.count)
    }

    /// What a handler does with a body error it caught: swallow it and answer 200, or wrap it in an
    /// error of its own (which would be a 500).
    enum BodyErrorHandling: String, CaseIterable, Sendable {
        case swallows, wraps
    }

    @Test(arguments: BodyErrorHandling.allCases)
    func malformedChunkedBodyInAStartedHandlerAnswers400AndCloses(handling: BodyErrorHandling) async throws {
        struct Wrapped: Error {}
        let (started, startedContinuation) = AsyncStream.makeStream(of: Void.self)
        let handler = HTTPClosureResponder { request, _ in
            var iterator = request.body.makeAsyncIterator()
            do {
                _ = try await iterator.next()  // the valid first chunk: the handler is running
                startedContinuation.yield()
                while try await iterator.next() != nil {}
            } catch {
                if handling == .wraps { throw Wrapped() }
            }
            return HTTPResponse(text: "handler finished")
        }
        try await withServer(responder: handler) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            var waiting = started.makeAsyncIterator()
            _ = await waiting.next()
            try await client.send("zz\r\nnot a chunk size\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 400)
            #expect(response.headers["connection"] == "close")
            #expect(try await client.isClosedByServer())
        }
    }

    @Test func handlersCanRunOnTheEventLoop() async throws {
        let mixed = HTTPClosureResponder { request, context in
            if request.path == "/stream" {
                return HTTPResponse { writer in
                    for index in 0..<500 { try await writer.write("\(index),") }
                }
            }
            let body = try await request.body.collect(upTo: 1 << 22)
            return HTTPResponse(text: "\(request.path) \(body.count)")
        }
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.runsHandlersOnEventLoop = true
        try await withServer(configuration, responder: mixed) { _, address in
            let client = try await RawClient.connect(address)
            try await client.send("POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
            #expect(try await client.readResponse().text == "/a 3")
            try await client.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try await client.readResponse().text == (0..<500).map { "\($0)," }.joined())
            let large = [UInt8](repeating: 7, count: 2_000_000)
            try await client.send(Array("PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n".utf8) + large)
            #expect(try await client.readResponse().text == "/big 2000000")
        }
    }

    @Test func manyPipelinedRequestsWithLargeResponsesAreAllServed() async throws {
        let big = HTTPClosureResponder { _, _ in HTTPResponse(bytes: [UInt8](repeating: 0x61, count: 100_000)) }
        try await withServer(responder: big) { _, address in
            let client = try await RawClient.connect(address)
            // 200 pipelined requests make 20 MB of responses, far more than the socket buffers: the
            // server holds requests back while the client is not reading and resumes as it reads.
            let requests = String(repeating: "GET / HTTP/1.1\r\nHost: t\r\n\r\n", count: 200)
            try await client.send(requests)
            for _ in 0..<200 {
                #expect(try await client.readResponse().body.count == 100_000)
            }
        }
    }

    @Test func runTwiceIsRefused() async throws {
        _ = try await withServer(responder: echo) { server, _ in
            await #expect(throws: HTTPError.self) { try await server.run() }
        }
    }

    @Test func severalEventLoopsShareThePort() async throws {
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.eventLoopCount = 3
        try await withServer(configuration, responder: echo) { _, address in
            var connectionIDs: Set<String> = []
            for index in 0..<24 {
                let client = try await RawClient.connect(address)
                try await client.send("POST /\(index) HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
                let response = try await client.readResponse()
                #expect(response.text == "/\(index) 2")
                connectionIDs.insert(response.headers["x-connection"] ?? "")
            }
            #expect(connectionIDs.count == 24, "connection ids are unique across loops")
            // The kernel spreads connections by hash; with 24 of them more than one loop is used.
            let loopsUsed = Set(connectionIDs.compactMap { UInt64($0) }.map { ($0 - 16) % 3 })
            #expect(loopsUsed.count > 1)
        }
    }

    @Test func bindsIPv6Loopback() async throws {
        let configuration = HTTPServer.Configuration(host: "::1", port: 0)
        try await withServer(configuration, responder: echo) { _, address in
            #expect(address.host == "::1")
            #expect(address.port > 0)
            let client = try await RawClient.connect(address)
            try await client.send("GET /six HTTP/1.1\r\nHost: [::1]\r\n\r\n")
            #expect(try await client.readResponse().text == "/six 0")
        }
    }

    @Test func bindFailureIsReported() async throws {
        try await withServer(responder: echo) { _, address in
            let second = HTTPServer(configuration: .init(host: address.host, port: address.port), responder: echo)
            await #expect(throws: SocketError.self) { try await second.run() }
            await #expect(throws: SocketError.self) { try await second.localAddress }
        }
    }
}
