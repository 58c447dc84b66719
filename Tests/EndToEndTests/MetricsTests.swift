import EdgeSyncTestSupport
import Foundation
import Testing

/// `/metrics` of both binaries after real traffic: valid for Prometheus' own checker, and the
/// numbers agree with what was sent.
@Suite(.serialized) struct MetricsTests {
    func fetch(_ url: String) async throws -> (status: Int32, body: String) {
        let output = try await ChildProcess.run(
            URL(fileURLWithPath: "/usr/bin/env"), ["curl", "-sS", "--fail-with-body", "--max-time", "20", url])
        return (output.status, output.stdout)
    }

    /// `promtool check metrics` reads the exposition on standard input; nil when promtool is missing.
    func promtoolProblems(_ exposition: String) async throws -> String? {
        guard let promtool = programOrSkip("promtool", debianPackage: "prometheus") else { return nil }
        let output = try await ChildProcess.run(promtool, ["check", "metrics"], input: Data(exposition.utf8))
        return output.status == 0 ? "" : output.stdout + output.stderr
    }

    func value(_ name: String, in exposition: String) -> Double? {
        exposition.split(separator: "\n").first { $0.hasPrefix(name + " ") }
            .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
    }

    @Test func bothBinariesExposeValidMetricsThatMatchTheTraffic() async throws {
        try await withPairServingHTTP { pair, collector, agent in
            let port = agent.ports["http"]!
            let lines = (1...500).map { "room,site=a temperature=\(20 + Double($0) / 100) \($0)" }.joined(separator: "\n")
            let write = try await ChildProcess.run(
                URL(fileURLWithPath: "/usr/bin/env"),
                ["curl", "-sS", "--fail-with-body", "--data-binary", "@-", "http://127.0.0.1:\(port)/write?db=x"],
                input: Data(lines.utf8))
            #expect(write.status == 0, "\(write.stdout) \(write.stderr)")
            let bad = try await ChildProcess.run(
                URL(fileURLWithPath: "/usr/bin/env"),
                ["curl", "-sS", "--data-binary", "m v=oops", "http://127.0.0.1:\(port)/write?db=x"])
            #expect(bad.stdout.contains("expected a number"))

            let agentMetrics = try await fetch("http://127.0.0.1:\(port)/metrics")
            #expect(agentMetrics.status == 0)
            #expect(value("edge_agent_input_readings_total{input=\"http\"}", in: agentMetrics.body) == 500)
            #expect(value("edge_agent_input_rejected_lines_total{input=\"http\"}", in: agentMetrics.body) == 1)
            #expect(agentMetrics.body.contains("edge_agent_input_requests_total{path=\"/write\",code=\"400\"} 1"))
            #expect(agentMetrics.body.contains("edge_agent_http_request_duration_seconds_bucket{path=\"/write\",code=\"2xx\",le=\"+Inf\"} 1"))
            #expect(value("edge_agent_spool_next_sequence", in: agentMetrics.body) == 501)
            if let problems = try await promtoolProblems(agentMetrics.body) {
                #expect(problems.isEmpty, "\(problems)")
            }

            // Stop the agent and drain, so the collector holds every reading; then its view.
            #expect(await agent.stop() == 0)
            #expect(try await pair.drain(collector.url).status == 0)
            let collectorMetrics = try await fetch("\(collector.url)/metrics")
            #expect(collectorMetrics.status == 0)
            #expect(value("collector_ingest_readings_total", in: collectorMetrics.body) == 500)
            #expect(collectorMetrics.body.contains("collector_ingest_batch_readings_count"))
            #expect(collectorMetrics.body.contains("collector_http_request_duration_seconds_bucket{path=\"/v1/batches\""))
            if let problems = try await promtoolProblems(collectorMetrics.body) {
                #expect(problems.isEmpty, "\(problems)")
            }
            let wrong = try await fetch("\(collector.url)/nowhere")
            #expect(wrong.status != 0)
            let after = try await fetch("\(collector.url)/metrics")
            #expect(after.body.contains("collector_http_errors_total{code=\"404\",error=\"not_found\"} 1"))
            let ready = try await fetch("\(collector.url)/readyz")
            #expect(ready.status == 0 && ready.body == "ready\n")
        }
    }
}
