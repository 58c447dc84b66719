import EdgeSyncTestSupport
import Foundation
import HTTPCore
import Synchronization
import Testing

@testable import EdgeAgent

/// Starts an HTTPCore server on a free loopback port for the duration of `body`.
func withLoopbackServer<T: Sendable>(
    handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse,
    _ body: (String) async throws -> T
) async throws -> T {
    let server = HTTPServer(
        configuration: HTTPServer.Configuration(host: "127.0.0.1", port: 0),
        responder: HTTPClosureResponder { request, _ in try await handler(request) })
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        let address = try await server.localAddress
        defer { server.shutdown(grace: .zero) }
        let result = try await body("http://127.0.0.1:\(address.port)")
        server.shutdown(grace: .zero)
        try await group.waitForAll()
        return result
    }
}

@Suite struct CurlTransportTests {
    @Test func postsTheBodyWithTokenAndContentTypeAndReadsTheAnswer() async throws {
        let seen = Mutex<[(String, String?, String?, [UInt8])]>([])
        try await withLoopbackServer { request in
            let body = try await request.body.collect(upTo: 1 << 20)
            seen.withLock {
                $0.append((request.path, request.headers["authorization"], request.headers["content-type"], body))
            }
            var headers = HTTPHeaders()
            headers.add("Retry-After", "3")
            return HTTPResponse(status: HTTPStatus(503), headers: headers, bytes: Array("busy".utf8))
        } _: { baseURL in
            let transport = CurlTransport(configuration: .init(baseURL: baseURL, token: "s3cret"))
            let body = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
            let result = await transport.send(
                UploadRequest(path: "/v1/batches", contentType: "application/x-test", body: body))
            let response = try result.get()
            #expect(response == UploadResponse(status: 503, retryAfter: .seconds(3), body: Array("busy".utf8)))
            let requests = seen.withLock { $0 }
            #expect(requests.count == 1)
            #expect(requests.first?.0 == "/v1/batches")
            #expect(requests.first?.1 == "Bearer s3cret")
            #expect(requests.first?.2 == "application/x-test")
            #expect(requests.first?.3 == body)
        }
    }

    @Test func aRefusedConnectionIsATransportFailure() async throws {
        // Bind a port, then close it, so nothing listens there.
        let port = try await withLoopbackServer(handler: { _ in HTTPResponse(text: "") }) { baseURL in
            baseURL
        }
        let transport = CurlTransport(configuration: .init(baseURL: port, token: "t"))
        let result = await transport.send(UploadRequest(path: "/v1/batches", contentType: "x", body: [1]))
        guard case .failure(let error) = result else {
            Issue.record("expected a failure, got \(result)")
            return
        }
        #expect(error.message.contains("connect") || error.message.contains("Connection refused"))
    }

    @Test func aStalledServerTimesOutInsteadOfHanging() async throws {
        let release = AsyncStream.makeStream(of: Void.self)
        try await withLoopbackServer { _ in
            for await _ in release.stream { break }
            return HTTPResponse(text: "late")
        } _: { baseURL in
            var configuration = CurlTransport.Configuration(baseURL: baseURL, token: "t")
            configuration.requestTimeout = .milliseconds(300)
            let transport = CurlTransport(configuration: configuration)
            let result = await transport.send(UploadRequest(path: "/", contentType: "x", body: [1]))
            release.continuation.finish()
            guard case .failure(let error) = result else {
                Issue.record("expected a timeout, got \(result)")
                return
            }
            #expect(error.message.lowercased().contains("timeout") || error.message.lowercased().contains("timed out"))
        }
    }

    @Test func concurrentRequestsReuseAFewConnections() async throws {
        let connections = Mutex<Set<UInt64>>([])
        let server = HTTPServer(
            configuration: HTTPServer.Configuration(host: "127.0.0.1", port: 0),
            responder: HTTPClosureResponder { request, context in
                _ = try await request.body.collect(upTo: 1 << 16)
                connections.withLock { _ = $0.insert(context.connectionID) }
                return HTTPResponse(text: "ok")
            })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let address = try await server.localAddress
            let transport = CurlTransport(configuration: .init(baseURL: "http://127.0.0.1:\(address.port)", token: "t"))
            for _ in 0..<10 {
                await withTaskGroup(of: Void.self) { requests in
                    for _ in 0..<3 {
                        requests.addTask {
                            let result = await transport.send(UploadRequest(path: "/", contentType: "x", body: [1, 2]))
                            #expect((try? result.get().status) == 200)
                        }
                    }
                }
            }
            server.shutdown(grace: .zero)
            try await group.waitForAll()
        }
        // 30 requests, at most 3 at a time: keep-alive means at most 3 connections were opened.
        #expect(connections.withLock { $0.count } <= 3)
    }
}
