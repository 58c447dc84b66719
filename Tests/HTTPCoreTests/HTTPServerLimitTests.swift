import Foundation
import Synchronization
import Testing

@testable import HTTPCore

private let hello = HTTPClosureResponder { request, _ in
    let body = try await request.body.collect(upTo: 1 << 20)
    return HTTPResponse(text: "\(request.path) \(body.count)")
}

/// Timeouts are configured in milliseconds here, and tests await the server's reaction (a 408 or
/// a close) instead of sleeping; the raw client's read timeout bounds every wait.
@Suite("HTTPServer limits, timeouts and shutdown")
struct HTTPServerLimitTests {
    @Test func stalledHeadGets408AndIsClosed() async throws {
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.headerReadTimeout = .milliseconds(150)
        try await withServer(configuration, responder: hello) { _, address in
            let started = ContinuousClock.now
            let client = try await RawClient.connect(address, sending: "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            let response = try await client.readResponse()
            #expect(response.status == 408)
            #expect(try await client.isClosedByServer())
            #expect(ContinuousClock.now - started < .seconds(4))
        }
    }

    @Test func silentConnectionIsClosed() async throws {
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.headerReadTimeout = .milliseconds(100)
        try await withServer(configuration, responder: hello) { _, address in
            let client = try await RawClient.connect(address)
            #expect(try await client.isClosedByServer())
        }
    }

    @Test func idleKeepAliveConnectionIsClosed() async throws {
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.idleTimeout = .milliseconds(100)
        try await withServer(configuration, responder: hello) { _, address in
            let client = try await RawClient.connect(address, sending: "GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try await client.readResponse().status == 200)
            #expect(try await client.isClosedByServer())
        }
    }

    @Test func stalledBodyGets408() async throws {
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.bodyReadTimeout = .milliseconds(150)
        try await withServer(configuration, responder: hello) { _, address in
            let client = try await RawClient.connect(
                address, sending: "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b")
            let response = try await client.readResponse()
            #expect(response.status == 408)
            #expect(try await client.isClosedByServer())
        }
    }

    @Test func bodyBelowTheMinimumRateGets408() async throws {
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.bodyReadTimeout = .milliseconds(100)
        configuration.bodyMinimumBytesPerSecond = 1_000_000
        try await withServer(configuration, responder: hello) { _, address in
            let client = try await RawClient.connect(
                address, sending: "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
            // A byte every 20 ms never stalls for 100 ms, but is far below a megabyte a second.
            let trickle = Task {
                for _ in 0..<200 {
                    try await client.send("x")
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            let response = try await client.readResponse()
            trickle.cancel()
            #expect(response.status == 408)
        }
    }

    @Test func slowClientDoesNotStarveOthers() async throws {
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.headerReadTimeout = .seconds(30)
        try await withServer(configuration, responder: hello) { _, address in
            let slow = try await RawClient.connect(address)
            let head = Array("GET /slow HTTP/1.1\r\nHost: t\r\nX-Padding: abcdefghijklmnopqrstuvwxyz\r\n".utf8)
            let finishedTrickling = Atomic<Bool>(false)
            let trickling = Task {
                // The slowloris: one header byte at a time.
                for byte in head {
                    try await slow.send([byte])
                    try await Task.sleep(for: .milliseconds(25))
                }
                finishedTrickling.store(true, ordering: .relaxed)
            }
            var served = 0
            for round in 0..<20 {
                let client = try await RawClient.connect(
                    address, sending: "GET /fast\(round) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                if try await client.readResponse().text == "/fast\(round) 0" { served += 1 }
            }
            #expect(served == 20)
            #expect(finishedTrickling.load(ordering: .relaxed) == false, "others were served while it trickled")
            try await trickling.value
            try await slow.send("\r\n")
            #expect(try await slow.readResponse().text == "/slow 0", "the slow client is served too")
        }
    }

    @Test func streamingWriterWaitsForASlowReader() async throws {
        let written = Atomic<Int>(0)
        let total = 16 << 20
        let streamer = HTTPClosureResponder { _, _ in
            HTTPResponse { writer in
                let piece = [UInt8](repeating: 0x62, count: 64 * 1024)
                for _ in 0..<(total / piece.count) {
                    try await writer.write(piece)
                    written.add(piece.count, ordering: .relaxed)
                }
            }
        }
        try await withServer(responder: streamer) { _, address in
            let client = try await RawClient.connect(address, receiveBufferSize: 64 * 1024)
            try await client.send("GET /all HTTP/1.1\r\nHost: t\r\n\r\n")
            // Wait (bounded) until the writer stops making progress while nobody reads.
            var last = -1
            var stableRounds = 0
            let deadline = ContinuousClock.now + .seconds(5)
            while stableRounds < 10 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                let now = written.load(ordering: .relaxed)
                stableRounds = now == last && now > 0 ? stableRounds + 1 : 0
                last = now
            }
            // Socket buffers (4 MiB send maximum here) plus the 256 KiB high-water mark, not 16 MiB.
            #expect(last > 0)
            #expect(last < 8 << 20, "writer ran ahead to \(last) bytes")
            let response = try await client.readResponse()
            #expect(response.body.count == total)
        }
    }

    @Test func uploadIsHeldBackWhileTheHandlerDoesNotRead() async throws {
        let gate = GateForShutdown()
        let lateReader = HTTPClosureResponder { request, _ in
            gate.arrived()
            await gate.wait()
            var total = 0
            for try await chunk in request.body { total += chunk.count }
            return HTTPResponse(text: "\(total)")
        }
        let total = 16 << 20
        try await withServer(responder: lateReader) { _, address in
            let sent = Atomic<Int>(0)
            let client = try await RawClient.connect(
                address, sending: "PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: \(total)\r\n\r\n")
            await gate.waitUntilArrived()
            let uploading = Task {
                let piece = [UInt8](repeating: 0x75, count: 64 * 1024)
                for _ in 0..<(total / piece.count) {
                    try await client.send(piece)
                    sent.add(piece.count, ordering: .relaxed)
                }
            }
            // Wait (bounded) until the upload stops making progress while the handler is not reading.
            var last = -1
            var stableRounds = 0
            let deadline = ContinuousClock.now + .seconds(5)
            while stableRounds < 10 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                let now = sent.load(ordering: .relaxed)
                stableRounds = now == last && now > 0 ? stableRounds + 1 : 0
                last = now
            }
            // Socket buffers plus the 256 KiB body buffer, not the whole 16 MiB.
            #expect(last < 8 << 20, "server read ahead to \(last) bytes")
            gate.open()
            try await uploading.value
            #expect(try await client.readResponse().text == "\(total)")
        }
    }

    @Test func connectionsBeyondTheLimitAreRefusedWith503WhenEveryOneIsBusy() async throws {
        let gates = [GateForShutdown(), GateForShutdown()]
        let held = HTTPClosureResponder { request, _ in
            let gate = gates[request.path == "/0" ? 0 : 1]
            gate.arrived()
            await gate.wait()
            return HTTPResponse(text: "\(request.path) done")
        }
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.maxConnections = 2
        try await withServer(configuration, responder: held) { _, address in
            // Both admitted connections have a handler running: active, never reclaimed.
            var open: [RawClient] = []
            for index in 0..<2 {
                open.append(try await RawClient.connect(address, sending: "GET /\(index) HTTP/1.1\r\nHost: t\r\n\r\n"))
                await gates[index].waitUntilArrived()
            }
            let refused = try await RawClient.connect(address)
            let response = try await refused.readResponse()
            #expect(response.status == 503)
            #expect(response.headers["connection"] == "close")
            #expect(try await refused.isClosedByServer())
            // The admitted connections still work.
            gates.forEach { $0.open() }
            #expect(try await open[0].readResponse().text == "/0 done")
            #expect(try await open[1].readResponse().text == "/1 done")
        }
    }

    @Test func atTheLimitTheLongestIdleKeepAliveConnectionMakesRoom() async throws {
        var configuration = HTTPServer.Configuration(port: 0)
        configuration.maxConnections = 3
        try await withServer(configuration, responder: hello) { _, address in
            var idle: [RawClient] = []
            for index in 0..<2 {
                let client = try await RawClient.connect(address, sending: "GET /\(index) HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try await client.readResponse().status == 200)
                idle.append(client)
            }
            let busy = try await RawClient.connect(address, sending: "GET /busy HTTP/1.1\r\n")
            // Full: the newcomer takes the place of the connection idle longest (idle[0]).
            let newcomer = try await RawClient.connect(address, sending: "GET /new HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try await newcomer.readResponse().text == "/new 0")
            #expect(try await idle[0].isClosedByServer(), "the longest-idle connection was closed")
            // Full again: idle[1] is now the longest idle, then the newcomer; the busy one never goes.
            let second = try await RawClient.connect(address, sending: "GET /second HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try await second.readResponse().status == 200)
            #expect(try await idle[1].isClosedByServer())
            try await busy.send("Host: t\r\n\r\n")
            #expect(try await busy.readResponse().text == "/busy 0")
        }
    }

    @Test func gracefulShutdownFinishesInFlightRequests() async throws {
        let gate = GateForShutdown()
        let waiting = HTTPClosureResponder { request, _ in
            if request.path == "/slow" {
                gate.arrived()
                await gate.wait()
            }
            return HTTPResponse(text: "done \(request.path)")
        }
        let server = HTTPServer(configuration: .init(port: 0), responder: waiting)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let address = try await server.localAddress
            let idle = try await RawClient.connect(address, sending: "GET /warm HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try await idle.readResponse().status == 200)

            let busy = try await RawClient.connect(address, sending: "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            await gate.waitUntilArrived()

            server.shutdown(grace: .seconds(10))
            #expect(try await idle.isClosedByServer(), "idle connections close at once")
            await #expect(throws: SocketError.self) { _ = try await RawClient.connect(address) }

            gate.open()
            let response = try await busy.readResponse()
            #expect(response.text == "done /slow")
            #expect(response.headers["connection"] == "close")
            busy.shutdownWrite()  // as a client does after `Connection: close`; ends the server's linger
            try await group.waitForAll()
        }
    }

    @Test func shutdownDeadlineCutsHandlersThatDoNotFinish() async throws {
        let gate = GateForShutdown()
        let stuck = HTTPClosureResponder { _, _ in
            gate.arrived()
            await gate.wait()
            return HTTPResponse(text: "late")
        }
        let server = HTTPServer(configuration: .init(port: 0), responder: stuck)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let address = try await server.localAddress
            let client = try await RawClient.connect(address, sending: "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            await gate.waitUntilArrived()
            server.shutdown(grace: .milliseconds(50))
            try await group.waitForAll()
            #expect(try await client.isClosedByServer())
            gate.open()
        }
    }

    @Test func cancellingRunShutsDown() async throws {
        let server = HTTPServer(configuration: .init(port: 0, shutdownGrace: .milliseconds(50)), responder: hello)
        let running = Task { try await server.run() }
        let address = try await server.localAddress
        let client = try await RawClient.connect(address)
        running.cancel()
        try await running.value
        #expect(try await client.isClosedByServer())
    }
}

/// Lets a test wait until a handler has started, and lets the handler wait until the test says go.
final class GateForShutdown: Sendable {
    private struct State {
        var hasArrived = false
        var isOpen = false
        var arrivalWaiters: [CheckedContinuation<Void, Never>] = []
        var openWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func arrived() {
        let waiters = state.withLock { state in
            state.hasArrived = true
            defer { state.arrivalWaiters = [] }
            return state.arrivalWaiters
        }
        waiters.forEach { $0.resume() }
    }

    func waitUntilArrived() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if state.hasArrived { return true }
                state.arrivalWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if state.isOpen { return true }
                state.openWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.openWaiters = [] }
            return state.openWaiters
        }
        waiters.forEach { $0.resume() }
    }
}
