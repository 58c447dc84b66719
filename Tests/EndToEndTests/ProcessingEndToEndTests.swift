import EdgeSyncTestSupport
import Foundation
import Testing

/// A configured agent and a real collector agree on what the processing rules kept, dropped and
/// reduced: the real datasets imported through five rules, drained, and the counts compared from
/// `edge-agent status --json`, the import's summary and the collector's `/v1/devices`.
extension ChildProcessTests {
    @Suite struct ProcessingEndToEndTests {
        static let operatorToken = "processing-operator-token-0123456789"
        static let rules = """
            {"processing": {"rules": [
              {"name": "sea-range", "type": "validate", "measurement": "sea_surface_temperature", "min": 3, "max": 12},
              {"name": "isig-flag", "type": "validate", "measurement": "CGM", "field": "isig", "min": 10, "action": "flag"},
              {"name": "glucose-steady", "type": "deadband", "measurement": "CGM", "field": "glucose", "delta": 5,
               "heartbeat_seconds": 3600},
              {"name": "cycling-10s", "type": "downsample", "measurement": "cycling", "every_seconds": 10, "aggregate": "mean"},
              {"name": "no-debug", "type": "drop", "measurement": "debug"}
            ]}}
            """

        @Test func theAgentAndTheCollectorAgreeOnKeptDroppedAndReducedCounts() async throws {
            try await PairFixture.with { pair in
                let config = try pair.writeAgentConfig(Self.rules)
                var (text, _) = try realDataAsLineProtocol()
                text += (0..<7).map { "debug,host=test x=\($0) \(1_700_000_000_000_000_000 + Int64($0))\n" }.joined()
                let input = pair.directory + "/real.lp"
                try text.write(toFile: input, atomically: false, encoding: .utf8)
                let imported = try await ChildProcess.run(
                    try ChildProcess.productURL("edge-agent"),
                    [
                        "import", "--config", config, "--data-dir", pair.spoolDirectory, "--device", PairFixture.device,
                        input,
                    ])
                try #require(imported.status == 0, "\(imported.stderr)")
                let summary = try #require(
                    imported.stdout.firstMatch(of: /processing: (\d+) readings read, (\d+) stored/),
                    "\(imported.stdout)")
                let read = try #require(Int64(summary.1))
                let stored = try #require(Int64(summary.2))

                let status = try await ChildProcess.run(
                    try ChildProcess.productURL("edge-agent"), ["status", "--data-dir", pair.spoolDirectory, "--json"])
                let object = try #require(
                    try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
                let agentRules = try #require(object["processing"] as? [[String: Any]])
                func agent(_ rule: String, _ key: String) -> Int64? {
                    (agentRules.first { $0["rule"] as? String == rule }?[key] as? Int).map(Int64.init)
                }
                #expect(object["next_seq"] as? Int == Int(stored) + 1, "only kept readings got sequence numbers")
                for rule in ["sea-range", "isig-flag", "glucose-steady", "cycling-10s", "no-debug"] {
                    #expect(agentRules.contains { $0["rule"] as? String == rule }, "\(rule) counted something")
                }
                #expect(agent("no-debug", "dropped") == 7)
                let dropped = agentRules.reduce(Int64(0)) { $0 + Int64($1["dropped"] as? Int ?? 0) }
                let reduced = agentRules.reduce(Int64(0)) { $0 + Int64($1["reduced"] as? Int ?? 0) }
                let emitted = agentRules.reduce(Int64(0)) { $0 + Int64($1["emitted"] as? Int ?? 0) }
                #expect(read == stored + dropped + reduced - emitted, "every reading read is kept, dropped or reduced")

                let collector = try await pair.startCollector(
                    environment: ["CLOUD_COLLECTOR_OPERATOR_TOKEN": Self.operatorToken])
                defer { collector.process.kill() }
                let drained = try await pair.drain(collector.url)
                #expect(drained.status == 0, "\(drained.stderr)")
                let devices = try await onDedicatedThread { [port = collector.port] in
                    try BlockingHTTPClient(port: port).send(
                        method: "GET", path: "/v1/devices", headers: [("Authorization", "Bearer \(Self.operatorToken)")]
                    )
                }
                try #require(devices.status == 200, "\(devices.text)")
                let report = try #require(try JSONSerialization.jsonObject(with: Data(devices.body)) as? [String: Any])
                let device = try #require((report["devices"] as? [[String: Any]])?.first)
                let stream = try #require((device["streams"] as? [[String: Any]])?.first)
                #expect(stream["readings"] as? Int == Int(stored), "the collector holds what was kept")
                #expect(stream["gap_readings"] as? Int == 0, "what the rules dropped or reduced is not a gap")
                #expect(stream["completeness"] as? Double == 1)
                let collectorRules = try #require(stream["processing"] as? [[String: Any]])
                #expect(collectorRules.count == agentRules.count)
                for rule in agentRules {
                    let name = try #require(rule["rule"] as? String)
                    let theirs = try #require(collectorRules.first { $0["rule"] as? String == name }, "\(name)")
                    for key in ["type", "kept", "dropped", "flagged", "reduced", "emitted"] {
                        #expect("\(theirs[key] ?? "missing")" == "\(rule[key] ?? "missing")", "\(name).\(key)")
                    }
                }
            }
        }
    }
}
