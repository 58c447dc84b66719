import EdgeSyncTestSupport
import Foundation
import Testing

/// No token ever appears in a log or an error: both binaries are driven through success, wrong
/// tokens and bad configuration with known tokens, and everything they print is searched for them.
@Suite(.serialized) struct TokenLeakTests {
    @Test func noTokenAppearsInAnyOutput() async throws {
        try await PairFixture.with { pair in
            let operatorToken = "op-\(UUID().uuidString)"
            let wrongDeviceToken = "wrong-\(UUID().uuidString)"
            let wrongOperatorToken = "wrong-op-\(UUID().uuidString)"
            let shortOperatorToken = "short-\(Int.random(in: 1000...9999))"
            let secrets = [pair.token, operatorToken, wrongDeviceToken, wrongOperatorToken, shortOperatorToken]
            var outputs: [(what: String, text: String)] = []
            func record(_ what: String, _ output: ChildProcess.Output) {
                outputs.append((what, output.stdout + "\n" + output.stderr))
            }
            let agent = try ChildProcess.productURL("edge-agent")
            let collectorBinary = try ChildProcess.productURL("cloud-collector")

            let collector = try ChildProcess(
                collectorBinary,
                ["serve", "--listen", "127.0.0.1:0", "--data-dir", pair.collectorDirectory],
                environment: ["CLOUD_COLLECTOR_OPERATOR_TOKEN": operatorToken])
            defer { collector.kill() }
            let listening = try await collector.waitForLine { $0.contains("event=listening") }
            let port = try #require(listening.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) })
            let url = "http://127.0.0.1:\(port)"

            let (text, _) = try realDataAsLineProtocol(limit: 2000)
            try await pair.importLineProtocol(text, name: "leak")

            // The device token: wrong, then right, by environment, flag and file.
            record("drain, wrong token", try await pair.drain(url, token: wrongDeviceToken))
            record(
                "run, wrong token",
                try await ChildProcess.run(
                    agent,
                    ["run", "--data-dir", pair.spoolDirectory, "--device", PairFixture.device, "--collector", url],
                    environment: ["EDGE_AGENT_TOKEN": wrongDeviceToken]))
            let badConfig = try pair.writeAgentConfig(#"{"collector": {"tokn": "x"}}"#)
            record(
                "drain, bad config, token flag",
                try await pair.drain(url, extraArguments: ["--config", badConfig, "--token", pair.token]))
            record(
                "drain, token with a space",
                try await pair.drain(url, extraArguments: ["--token", pair.token + " " + wrongDeviceToken]))
            let tokenFile = pair.directory + "/token"
            try (pair.token + "\n").write(toFile: tokenFile, atomically: false, encoding: .utf8)
            record(
                "drain, bad collector URL, token file",
                try await pair.drain("ftp://nowhere", extraArguments: ["--token-file", tokenFile]))
            record(
                "config check with a token",
                try await ChildProcess.run(
                    agent, ["config", "check", badConfig, "--token", pair.token],
                    environment: ["EDGE_AGENT_TOKEN": pair.token]))
            let drained = try await pair.drain(url, extraArguments: ["--token-file", tokenFile])
            #expect(drained.status == 0, "\(drained.stderr)")
            record("drain, right token", drained)

            // The operator token: wrong, then right, on the query API; too short at startup.
            if let curl = executableOnPath("curl") {
                for (what, token) in [("query, wrong operator token", wrongOperatorToken), ("query", operatorToken)] {
                    record(
                        what,
                        try await ChildProcess.run(
                            curl, ["-s", "-i", "-H", "Authorization: Bearer \(token)", url + "/v1/devices"]))
                }
            } else {
                print("curl is not installed: the query API part of the check is skipped")
            }
            let shortFile = pair.directory + "/short-operator-token"
            try shortOperatorToken.write(toFile: shortFile, atomically: false, encoding: .utf8)
            record(
                "serve, short operator token",
                try await ChildProcess.run(
                    collectorBinary,
                    ["serve", "--data-dir", pair.collectorDirectory, "--operator-token-file", shortFile]))
            record(
                "serve, short operator token by environment",
                try await ChildProcess.run(
                    collectorBinary, ["serve", "--data-dir", pair.collectorDirectory],
                    environment: ["CLOUD_COLLECTOR_OPERATOR_TOKEN": shortOperatorToken]))

            collector.kill(SIGTERM)
            _ = await collector.waitForExit()
            await collector.waitForOutputToClose()
            outputs.append(("collector log", collector.stdoutText + collector.stderrLines.joined(separator: "\n")))

            #expect(outputs.count >= 10)
            for (what, output) in outputs {
                for secret in secrets {
                    #expect(!output.contains(secret), "\(what) printed a token: \(output)")
                }
            }
            // The scenarios did what they claim: the wrong token was refused, the query answered.
            #expect(outputs.contains { $0.what == "drain, wrong token" && $0.text.contains("refused device") })
            #expect(
                outputs.contains { $0.what == "drain, bad config, token flag" && $0.text.contains("collector.tokn") })
        }
    }
}
