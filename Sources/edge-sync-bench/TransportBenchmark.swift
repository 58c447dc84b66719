import EdgeAgent
import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation
import HTTPCore
import Synchronization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Compares the uploader's two candidate HTTP clients, libcurl (`CurlTransport`) and URLSession,
/// posting real 10,000-reading frames to an HTTPCore server on loopback (decision record 0005).
enum TransportBenchmark: BenchmarkScenario {
    static let name = "transport"
    static let summary = "upload HTTP clients: libcurl vs URLSession posting real frames (req/s, p50/p99)"

    static func run(_ options: BenchmarkOptions) async throws {
        let datasets = try RealDataset.loadAll(from: options.dataDirectory)
        guard let dataset = datasets.first, let batch = dataset.batches(of: 10_000).first else {
            throw BenchmarkError("no real data in \(options.dataDirectory.path)")
        }
        let frame = try BatchEncoder().encode(batch)
        let requests = 3000
        let answer = Array(#"{"device":"gateway-1","stream":"1","accepted":10000,"duplicates":0,"acknowledged":[[1,10000]]}"#.utf8)
        let server = HTTPServer(
            configuration: HTTPServer.Configuration(host: "127.0.0.1", port: 0),
            responder: HTTPClosureResponder { request, _ in
                _ = try await request.body.collect(upTo: 8 << 20)
                return HTTPResponse(status: .ok, bytes: answer)
            })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let address = try await server.localAddress
            let baseURL = "http://127.0.0.1:\(address.port)"
            print("transport: \(requests) POSTs of a \(frame.count)-byte frame (\(batch.readings.count) readings) to \(baseURL)\n")
            var table = TextTable("client", "in flight", "requests/s", "readings/s", "p50", "p99")
            let curl = CurlTransport(configuration: .init(baseURL: baseURL, token: "bench"))
            let session = URLSession(configuration: .ephemeral)
            for inFlight in [1, 4] {
                let curlResult = try await measure(requests: requests, inFlight: inFlight) {
                    let response = await curl.send(
                        UploadRequest(path: "/v1/batches", contentType: FrameHeader.mediaType, body: frame))
                    return (try? response.get().status) == 200
                }
                table.append(contentsOf: "libcurl", inFlight, curlResult, readings: batch.readings.count)
                let sessionResult = try await measure(requests: requests, inFlight: inFlight) {
                    var request = URLRequest(url: URL(string: baseURL + "/v1/batches")!)
                    request.httpMethod = "POST"
                    request.httpBody = Data(frame)
                    request.setValue(FrameHeader.mediaType, forHTTPHeaderField: "Content-Type")
                    request.setValue("Bearer bench", forHTTPHeaderField: "Authorization")
                    let (_, response) = try await session.data(for: request)
                    return (response as? HTTPURLResponse)?.statusCode == 200
                }
                table.append(contentsOf: "URLSession", inFlight, sessionResult, readings: batch.readings.count)
            }
            print(table.render())
            server.shutdown(grace: .zero)
            try await group.waitForAll()
        }
    }

    struct Result {
        var seconds: Double
        var latencies: [Double]
        var requests: Int
    }

    /// Runs `requests` calls of `send`, `inFlight` at a time, and times each.
    static func measure(
        requests: Int,
        inFlight: Int,
        _ send: @escaping @Sendable () async throws -> Bool
    ) async throws -> Result {
        final class Counter: Sendable { let next = Atomic<Int>(0) }
        let counter = Counter()
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for _ in 0..<inFlight {
                group.addTask {
                    var times: [Double] = []
                    while counter.next.add(1, ordering: .relaxed).oldValue < requests {
                        let began = ContinuousClock.now
                        guard try await send() else { throw BenchmarkError("a request failed") }
                        let elapsed = ContinuousClock.now - began
                        times.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1e3)
                    }
                    return times
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }.sorted()
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Result(seconds: seconds, latencies: latencies, requests: requests)
    }
}

extension TextTable {
    fileprivate mutating func append(
        contentsOf client: String, _ inFlight: Int, _ result: TransportBenchmark.Result, readings: Int
    ) {
        let rate = Double(result.requests) / result.seconds
        func percentile(_ p: Double) -> String {
            let index = min(result.latencies.count - 1, Int(Double(result.latencies.count) * p))
            return String(format: "%.2f ms", result.latencies[index])
        }
        append(
            client, String(inFlight), String(format: "%.0f", rate), String(format: "%.1f M", rate * Double(readings) / 1e6),
            percentile(0.5), percentile(0.99))
    }
}
