import CloudCollector
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import Testing

/// Debian's Prometheus (2.42) against a real collector: configured with `remote_read` to the
/// collector and `read_recent: true`, its own query API must answer PromQL over the collector's
/// data with the values computed from that data, and a wrong operator token must get no data.
///
/// CI installs the `prometheus` package; the test is skipped only where the binary is absent.
@Suite(.serialized) struct PrometheusRemoteReadTests {
    static let binary = "/usr/bin/prometheus"

    /// A Prometheus on a free loopback port reading remotely from `collectorPort` with `token`;
    /// bounded: GOMEMLIMIT, one OS thread for Go code, killed when `body` returns.
    static func withPrometheus<T>(
        collectorPort: Int, token: String, _ body: (Int) async throws -> T
    ) async throws -> T {
        try await withTemporaryDirectory(prefix: "prometheus-test") { directory in
            let port = try freeLoopbackPort()
            let config = """
                global:
                  scrape_interval: 1h
                  evaluation_interval: 1h
                remote_read:
                  - url: http://127.0.0.1:\(collectorPort)/api/v1/read
                    name: collector
                    read_recent: true
                    remote_timeout: 20s
                    authorization:
                      credentials: \(token)
                """
            let configPath = directory + "/prometheus.yml"
            try config.write(toFile: configPath, atomically: true, encoding: .utf8)
            let child = try ChildProcess(
                URL(fileURLWithPath: binary),
                [
                    "--config.file=\(configPath)", "--storage.tsdb.path=\(directory)/data",
                    "--web.listen-address=127.0.0.1:\(port)", "--log.level=info",
                ],
                environment: ["GOMEMLIMIT": "256MiB", "GOMAXPROCS": "1"], name: "prometheus")
            do {
                // Its own log line, not polling: the query API answers from here on.
                _ = try await child.waitForLine { $0.contains("Server is ready to receive web requests") }
                let result = try await body(port)
                child.kill(SIGTERM)
                _ = await child.waitForExit()
                return result
            } catch {
                child.kill()
                _ = await child.waitForExit()
                throw error
            }
        }
    }

    struct QueryAnswer: Decodable {
        struct Data: Decodable {
            struct Sample: Decodable {
                var metric: [String: String]
                var value: [ValueOrTime]
            }
            var resultType: String
            var result: [Sample]
        }
        enum ValueOrTime: Decodable {
            case time(Double)
            case text(String)
            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let number = try? container.decode(Double.self) {
                    self = .time(number)
                } else {
                    self = .text(try container.decode(String.self))
                }
            }
        }
        var status: String
        var data: Data?
        var error: String?
        var warnings: [String]?
    }

    /// An instant query through Prometheus' HTTP API.
    static func query(_ port: Int, _ promQL: String, at seconds: Int64) async throws -> QueryAnswer {
        let target =
            "/api/v1/query?query=\(promQL.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? promQL)"
            + "&time=\(seconds)"
        let response = try await onDedicatedThread {
            let client = BlockingHTTPClient(port: port)
            defer { client.close() }
            return try client.send(method: "GET", path: target)
        }
        return try JSONDecoder().decode(QueryAnswer.self, from: Data(response.body))
    }

    /// The single value of an instant vector answer.
    static func value(_ answer: QueryAnswer) -> Double? {
        guard answer.status == "success", let result = answer.data?.result, result.count == 1,
            result[0].value.count == 2, case .text(let text) = result[0].value[1]
        else { return nil }
        return Double(text)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary), "prometheus is not installed"))
    func promQLOverTheCollectorGivesTheValuesOfTheData() async throws {
        try await RemoteReadTests.withData { collector in
            try await Self.withPrometheus(collectorPort: collector.port, token: RemoteReadTests.token) { port in
                // The data (RemoteReadTests.batches): gateway-1's readings every 10 s from `base`;
                // http_requests_total is 100 + 5 i, temperature_celsius{site="a"} is 100 + i + 0.25.
                let base = RemoteReadTests.base / 1_000_000_000
                let at = base + 65  // window [base+5 s, base+65 s] holds readings i = 1…6
                let selected = Array(1...6)
                let counter = selected.map { Double(100 + 5 * $0) }
                let temperature = selected.map { Double(100 + $0) + 0.25 }

                let count = try await Self.query(
                    port, "count_over_time(temperature_celsius{site=\"a\",device=\"gateway-1\"}[60s])", at: at)
                #expect(Self.value(count) == Double(selected.count), "\(count)")

                let average = try await Self.query(
                    port, "avg_over_time(temperature_celsius{site=\"a\",device=\"gateway-1\"}[60s])", at: at)
                #expect(Self.value(average) == temperature.reduce(0, +) / Double(temperature.count), "\(average)")

                // rate() extrapolates to the window's ends when the gaps there (5 s each) are below 1.1
                // sample intervals (10 s), which makes it the slope between first and last sample.
                let rate = try await Self.query(port, "rate(http_requests_total{job=\"api\"}[60s])", at: at)
                let slope = (counter.last! - counter.first!) / Double(10 * (selected.count - 1))
                let measured = try #require(Self.value(rate), "\(rate)")
                #expect(abs(measured - slope) < 1e-9)

                // Labels arrive as the mapping says.
                let labels = try await Self.query(port, "http_requests_total", at: base + 30)
                #expect(
                    labels.data?.result.first?.metric == [
                        "__name__": "http_requests_total", "job": "api", "device": "gateway-1", "stream": "43981",
                    ])
                // A regex matcher goes through too.
                let regex = try await Self.query(
                    port, "count(count_over_time({__name__=~\"temp.+\"}[1h]))", at: base + 200)
                #expect(Self.value(regex) == 4, "\(regex)")  // gateway-1 site a, b and none; gateway-2 site a
            }
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary), "prometheus is not installed"))
    func aWrongTokenGetsNoData() async throws {
        try await RemoteReadTests.withData { collector in
            try await Self.withPrometheus(collectorPort: collector.port, token: "wrong-token-0123456789abcdef") {
                port in
                let base = RemoteReadTests.base / 1_000_000_000
                let answer = try await Self.query(port, "count_over_time(http_requests_total[60s])", at: base + 65)
                // Prometheus reports a failing remote read as an error or as a warning beside an empty result.
                let said = (answer.error ?? "") + (answer.warnings ?? []).joined(separator: " ")
                #expect(answer.data?.result.isEmpty ?? true)
                #expect(said.contains("401"), "\(answer)")
            }
        }
    }
}
