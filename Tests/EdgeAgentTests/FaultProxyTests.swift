import EdgeSyncTestSupport
import HTTPCore
import Synchronization
import Testing

@testable import EdgeAgent

/// The fault proxy is itself test infrastructure that end-to-end tests trust; each fault must do
/// exactly what it claims, as seen by the real upload client and the real server.
@Suite struct FaultProxyTests {
    @Test func eachFaultReachesTheClientAndTheServerAsDocumented() async throws {
        let served = Mutex(0)
        let faults: [FaultProxy.Fault] = [
            .none, .resetBeforeForwarding, .internalServerError, .serviceUnavailable, .tooManyRequests, .loseAnswer,
            .none,
        ]
        try await withLoopbackServer { request in
            _ = try await request.body.collect(upTo: 1 << 20)
            served.withLock { $0 += 1 }
            return HTTPResponse(text: "stored")
        } _: { baseURL in
            let upstreamPort = Int(baseURL.split(separator: ":").last ?? "") ?? 0
            let proxy = try FaultProxy(upstreamPort: upstreamPort) { number in
                faults[(number - 1) % faults.count]
            }
            defer { proxy.stop() }
            let configuration = CurlTransport.Configuration(baseURL: "http://127.0.0.1:\(proxy.port)", token: "t")
            var seen: [String] = []
            for _ in faults {
                // A fresh client per request: libcurl silently retries a request whose reused
                // connection dies, which would shift the numbering this test relies on.
                let transport = CurlTransport(configuration: configuration)
                let before = served.withLock { $0 }
                let result = await transport.send(
                    UploadRequest(path: "/v1/batches", contentType: "x", body: [1, 2, 3]))
                let reached = served.withLock { $0 } > before
                switch result {
                case .success(let response):
                    seen.append(
                        "\(response.status)\(response.retryAfter.map { " retry \($0)" } ?? "") reached=\(reached)")
                case .failure:
                    seen.append("failure reached=\(reached)")
                }
            }
            #expect(
                seen == [
                    "200 reached=true", "failure reached=false", "500 reached=false",
                    "503 retry 1.0 seconds reached=false", "429 retry 1.0 seconds reached=false", "failure reached=true",
                    "200 reached=true",
                ])
            #expect(proxy.statistics.requests == faults.count)
            #expect(proxy.statistics.faults[.none] == 2)
        }
    }

    @Test func aStallOutlastsTheClientTimeoutAndNeverReachesTheServer() async throws {
        let served = Mutex(0)
        try await withLoopbackServer { request in
            _ = try await request.body.collect(upTo: 1 << 20)
            served.withLock { $0 += 1 }
            return HTTPResponse(text: "stored")
        } _: { baseURL in
            let upstreamPort = Int(baseURL.split(separator: ":").last ?? "") ?? 0
            let proxy = try FaultProxy(upstreamPort: upstreamPort, stallDuration: .seconds(2)) { _ in .stall }
            defer { proxy.stop() }
            var configuration = CurlTransport.Configuration(baseURL: "http://127.0.0.1:\(proxy.port)", token: "t")
            configuration.requestTimeout = .milliseconds(300)
            let result = await CurlTransport(configuration: configuration).send(
                UploadRequest(path: "/v1/batches", contentType: "x", body: [1]))
            guard case .failure = result else {
                Issue.record("expected a timeout, got \(result)")
                return
            }
            #expect(served.withLock { $0 } == 0)
        }
    }
}
