import EdgeSyncCommandLine
import EdgeSyncTestSupport
import Foundation
import Testing

@testable import EdgeAgent

@Suite struct AgentConfigurationTests {
    let parser = ArgumentParser(options: AgentConfiguration.options)

    func configuration(
        _ json: String?, _ flags: [String], environment: [String: String] = ["EDGE_AGENT_TOKEN": "tok"]
    ) throws -> AgentConfiguration {
        let file = try json.map { text throws(UsageError) in
            try ConfigurationFile(bytes: Array(text.utf8), source: "agent.json")
        }
        return try AgentConfiguration(file: file, arguments: parser.parse(flags), environment: environment)
    }

    @Test func theExampleFileInTheRepositoryIsValid() throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("edge/agent.json")
        let file = try ConfigurationFile(path: example.path)
        let parsed = try AgentConfiguration(
            file: file, arguments: parser.parse([]), environment: ["EDGE_AGENT_TOKEN": "t"])
        #expect(parsed.spool.whenFull == .dropOldest)
        #expect(parsed.maximumSendBytesPerSecond == 250_000)
        // Four batches in flight share the cap.
        #expect(parsed.transport.maximumSendBytesPerSecond == 62_500)
    }

    @Test func theSeriesLimitAndTheCollectdTypesComeFromTheFile() throws {
        let base = #""data_dir": "/a", "device": "gw", "collector": {"url": "http://c:1"}"#
        #expect(try configuration("{\(base)}", []).spool.maxSeries == 100_000)
        #expect(try configuration(#"{\#(base), "spool": {"max_series": 5}}"#, []).spool.maxSeries == 5)
        #expect(try configuration(#"{\#(base), "spool": {"max_series": 0}}"#, []).spool.maxSeries == nil)
        #expect(throws: UsageError.self) { try configuration(#"{\#(base), "spool": {"max_series": -1}}"#, []) }
        try withTemporaryDirectory { (directory: String) throws in
            let path = directory + "/types.db"
            try "mine  a:GAUGE:U:U, b:GAUGE:U:U\n".write(toFile: path, atomically: true, encoding: .utf8)
            let parsed = try configuration(#"{\#(base), "inputs": {"http": {"collectd_types_db": "\#(path)"}}}"#, [])
            #expect(parsed.inputs.httpLimits.collectdTypes.names["mine"] == ["a", "b"])
            let missing = #"{\#(base), "inputs": {"http": {"collectd_types_db": "\#(directory)/none.db"}}}"#
            #expect(throws: UsageError.self) { try configuration(missing, []) }
        }
    }

    @Test func flagsOverrideTheFileAndTheFileOverridesDefaults() throws {
        let json = """
            {"data_dir": "/a", "device": "gw", "collector": {"url": "http://c:1"},
             "spool": {"fsync": "normal"}, "upload": {"batch_readings": 500, "linger_ms": 0}}
            """
        let parsed = try configuration(json, ["--data-dir", "/b", "--fsync", "off"])
        #expect(parsed.spool.dataDirectory == "/b")
        #expect(parsed.spool.fsync == .off)
        #expect(parsed.spool.device == "gw")
        #expect(parsed.upload.maximumBatchReadings == 500)
        #expect(parsed.upload.linger == .zero)
        #expect(parsed.transport.token == "tok")
        #expect(parsed.upload.retry.maximumInFlight == 4)
    }

    @Test func socketInputsTakeAPrecisionFromTheFileOrAFlag() throws {
        let json = #"{"inputs": {"tcp": {"listen": "8094", "precision": "ms"}, "udp": {"precision": "s"}}}"#
        let base = ["--data-dir", "/a", "--device", "gw", "--collector", "http://c:1"]
        let parsed = try configuration(json, base)
        #expect(parsed.inputs.tcpPrecision == .milliseconds && parsed.inputs.udpPrecision == .seconds)
        let flagged = try configuration(json, base + ["--udp-precision", "us", "--tcp-precision", "ns"])
        #expect(flagged.inputs.tcpPrecision == .nanoseconds && flagged.inputs.udpPrecision == .microseconds)
        #expect(try configuration(nil, base).inputs.udpPrecision == .nanoseconds)
        let error = #expect(throws: UsageError.self) {
            try configuration(nil, base + ["--udp-precision", "fortnight"])
        }
        #expect(error?.setting == "--udp-precision")
    }

    @Test(arguments: [
        (#"{"inputs": {"tcp": {"precision": "weeks"}}}"#, "agent.json: inputs.tcp.precision"),
        (#"{"upload": {"batch_reading": 5}}"#, "agent.json: upload.batch_reading"),
        (#"{"spool": {"fsync": "sometimes"}}"#, "agent.json: spool.fsync"),
        (#"{"upload": {"max_in_flight": 0}}"#, "agent.json: upload.max_in_flight"),
        (#"{"collector": {"url": "ftp://x"}}"#, "--collector"),
        (
            #"{"upload": {"backoff_initial_ms": 5000, "backoff_max_seconds": 1}}"#,
            "agent.json: upload.backoff_max_seconds"
        ),
    ])
    func badSettingsAreNamed(json: String, setting: String) throws {
        let base =
            ["--data-dir", "/a", "--device", "gw"] + (json.contains("url") ? [] : ["--collector", "http://c:1"])
        let error = #expect(throws: UsageError.self) { try configuration(json, base) }
        #expect(error?.setting == setting, "\(String(describing: error))")
    }

    @Test func theTokenComesFromAFlagAFileOrTheEnvironment() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/token"
            try "from-file\n".write(toFile: path, atomically: false, encoding: .utf8)
            let base = ["--data-dir", "/a", "--device", "gw", "--collector", "https://c"]
            #expect(
                try configuration(nil, base + ["--token-file", path], environment: [:]).transport.token == "from-file")
            #expect(try configuration(nil, base, environment: ["EDGE_AGENT_TOKEN": "env"]).transport.token == "env")
            #expect(try configuration(nil, base + ["--token", "flag"], environment: [:]).transport.token == "flag")
            let missing = #expect(throws: UsageError.self) { try configuration(nil, base, environment: [:]) }
            #expect(missing?.setting == "--token")
            let spaced = #expect(throws: UsageError.self) {
                try configuration(nil, base + ["--token", "a b"], environment: [:])
            }
            #expect(spaced?.description.contains("a b") == false, "the token must not be echoed")
        }
    }
}
