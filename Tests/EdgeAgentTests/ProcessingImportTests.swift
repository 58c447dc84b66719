import EdgeAgent
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import Testing

/// `edge-agent import --config`: the agent's processing rules apply to imported readings too.
extension ChildProcessTests {
    @Suite struct ProcessingImportTests {
        /// A multiple of 60 s, so the downsample windows below start where the readings say.
        static let base: Int64 = 1_699_999_980
        static let configuration = """
            {"data_dir": "DIR", "device": "gw",
             "spool": {"fsync": "normal"},
             "processing": {"rules": [
               {"name": "range", "type": "validate", "measurement": "room", "min": 0, "max": 50},
               {"name": "steady", "type": "deadband", "field": "temp", "delta": 0.5, "heartbeat_seconds": 3600},
               {"name": "minutes", "type": "downsample", "measurement": "vib", "every_seconds": 60, "aggregate": "max"},
               {"name": "debug", "type": "drop", "measurement": "debug"}
             ]}}
            """

        static func line(_ text: String, _ seconds: Int64) -> String { "\(text) \((base + seconds) * 1_000_000_000)\n" }

        static let input =
            line("room temp=20", 0) + line("room temp=20.2", 1) + line("room temp=99", 2) + line("room temp=21", 3)
            + line("debug x=1", 4) + line("vib a=1", 0) + line("vib a=5", 10) + line("vib a=3", 70)

        @Test func theRulesDropAndReduceImportedReadingsAndTheCountsAddUp() async throws {
            try await withTemporaryDirectory { (directory: String) async throws in
                let spoolDirectory = directory + "/spool"
                let file = directory + "/agent.json"
                try Self.configuration.replacingOccurrences(of: "DIR", with: spoolDirectory)
                    .write(toFile: file, atomically: true, encoding: .utf8)
                let result = try await runProcess(
                    try edgeAgentBinary(), ["import", "--config", file, "-"], input: Data(Self.input.utf8))
                #expect(result.status == 0, "\(result.stderr)")
                #expect(result.stdout.contains("lines 1-8 (3 readings, seq 1-3)"), "\(result.stdout)")
                #expect(
                    result.stdout.contains(
                        "processing: 8 readings read, 4 stored; rule range kept 3, dropped 1; rule steady kept 2, reduced 1;"
                            + " rule minutes reduced 3, emitted 2; rule debug dropped 1"),
                    "\(result.stdout)")

                let stored = try await storedReadings(
                    try await Spool.open(spoolConfiguration(spoolDirectory, device: "gw")))
                let second: Int64 = 1_000_000_000
                #expect(stored.map(\.seq) == [1, 2, 3, 4])
                #expect(stored.map(\.key) == ["room temp", "room temp", "vib a", "vib a"])
                #expect(stored.map(\.value) == [20, 21, 5, 3])
                #expect(
                    stored.map(\.timestamp) == [0, 3, 10, 70].map { (Self.base + $0) * second },
                    "the window left open at the end of the input is stored too")

                // The counts are in the spool: `status` shows them, and a second import adds to them.
                _ = try await runProcess(
                    try edgeAgentBinary(), ["import", "--config", file, "-"],
                    input: Data(Self.line("debug x=2", 9).utf8))
                let text = try await runProcess(try edgeAgentBinary(), ["status", "--data-dir", spoolDirectory])
                #expect(text.status == 0, "\(text.stderr)")
                #expect(
                    text.stdout.contains("rule      debug (drop): kept 0, dropped 2, flagged 0, reduced 0, emitted 0"),
                    "\(text.stdout)")
                #expect(
                    text.stdout.contains(
                        "rule      minutes (downsample): kept 0, dropped 0, flagged 0, reduced 3, emitted 2"),
                    "\(text.stdout)")
                let json = try await runProcess(
                    try edgeAgentBinary(), ["status", "--data-dir", spoolDirectory, "--json"])
                let object = try #require(
                    try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
                let rules = try #require(object["processing"] as? [[String: Any]])
                #expect(rules.map { $0["rule"] as? String } == ["debug", "minutes", "range", "steady"])
                #expect(rules.map { $0["dropped"] as? Int } == [2, 0, 1, 0])
                #expect(rules.map { $0["reduced"] as? Int } == [0, 3, 0, 1])
                #expect(rules.map { $0["emitted"] as? Int } == [0, 2, 0, 0])
                #expect(rules.map { $0["type"] as? String } == ["drop", "downsample", "validate", "deadband"])
                #expect(rules.map { $0["kept"] as? Int } == [0, 0, 3, 2])
            }
        }

        @Test func withoutTheConfigurationEveryReadingIsImportedAsItCame() async throws {
            try await withTemporaryDirectory { (directory: String) async throws in
                let result = try await runProcess(
                    try edgeAgentBinary(), ["import", "--data-dir", directory, "--device", "gw", "-"],
                    input: Data(Self.input.utf8))
                #expect(result.status == 0, "\(result.stderr)")
                #expect(result.stdout.contains("lines 1-8 (8 readings, seq 1-8)"), "\(result.stdout)")
                #expect(!result.stdout.contains("processing:"), "\(result.stdout)")
            }
        }

        @Test func flagsOverrideTheFileAndABadRuleIsNamedWithExit64() async throws {
            try await withTemporaryDirectory { (directory: String) async throws in
                let file = directory + "/agent.json"
                try Self.configuration.replacingOccurrences(of: "DIR", with: directory + "/unused")
                    .write(toFile: file, atomically: true, encoding: .utf8)
                let other = directory + "/other"
                let result = try await runProcess(
                    try edgeAgentBinary(), ["import", "--config", file, "--data-dir", other, "-"],
                    input: Data(Self.input.utf8))
                #expect(result.status == 0, "\(result.stderr)")
                #expect(result.stdout.contains("into \(other)/spool.sqlite"), "\(result.stdout)")
                #expect(!FileManager.default.fileExists(atPath: directory + "/unused"))

                try Self.configuration.replacingOccurrences(of: "\"delta\": 0.5, ", with: "")
                    .write(toFile: file, atomically: true, encoding: .utf8)
                let bad = try await runProcess(
                    try edgeAgentBinary(), ["import", "--config", file, "-"], input: Data(Self.input.utf8))
                #expect(bad.status == 64, "\(bad.stderr)")
                #expect(bad.stderr.contains("processing.rules[1].delta"), "\(bad.stderr)")
            }
        }
    }
}
