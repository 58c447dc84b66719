import EdgeSyncTestSupport
import Foundation
import Testing

/// `edge-agent config check` and `cloud-collector config check` load a file exactly as `run` and
/// `serve` do: the shipped examples pass, and every kind of bad setting is refused by name (64).
@Suite struct ConfigCheckTests {
    static let root = DeploymentFilesTests.root

    @Test(arguments: [("edge-agent", "edge/agent.json"), ("cloud-collector", "cloud/collector.example.json")])
    func theShippedExamplesPass(binary: String, file: String) async throws {
        let output = try await ChildProcess.run(
            try ChildProcess.productURL(binary), ["config", "check", Self.root + "/" + file])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("\(file): ok"), "\(output.stdout)")
    }

    @Test func theAgentSummaryShowsEffectiveSettingsAndNeverTheToken() async throws {
        try await withTemporaryDirectory { directory in
            let token = "tok-\(UUID().uuidString)"
            try token.write(toFile: directory + "/token", atomically: false, encoding: .utf8)
            let path = directory + "/agent.json"
            try """
            {"collector": {"token_file": "\(directory)/token"}, "spool": {"fsync": "normal"}, "inputs": {"tcp": {"listen": "9100"}}}
            """.write(toFile: path, atomically: false, encoding: .utf8)
            // Flags apply as in run; the device and data_dir are left to flags and reported unset.
            let output = try await ChildProcess.run(
                try ChildProcess.productURL("edge-agent"),
                ["config", "check", path, "--collector", "https://collector.test", "--when-full", "drop-oldest"],
                environment: ["EDGE_AGENT_TOKEN": ""])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stdout.contains("device: not set"), "\(output.stdout)")
            #expect(output.stdout.contains("collector: https://collector.test"), "\(output.stdout)")
            #expect(output.stdout.contains("fsync normal"), "\(output.stdout)")
            #expect(output.stdout.contains("when_full drop-oldest"), "\(output.stdout)")
            #expect(output.stdout.contains("tcp 127.0.0.1:9100"), "\(output.stdout)")
            #expect(output.stdout.contains("token: from collector.token_file"), "\(output.stdout)")
            #expect(!output.stdout.contains(token) && !output.stderr.contains(token))
        }
    }

    @Test(arguments: [
        // (binary, file contents, what stderr must name)
        ("edge-agent", #"{"device": "gw", "spool": {"fsycn": "full"}}"#, "spool.fsycn"),
        ("edge-agent", #"{"device": "gw", "spol": {}}"#, "spol"),
        ("edge-agent", #"{"device": "gw", "upload": {"batch_readings": "many"}}"#, "upload.batch_readings"),
        ("edge-agent", #"{"device": "gw", "upload": {"max_in_flight": 1000}}"#, "upload.max_in_flight"),
        ("edge-agent", #"{"collector": {"url": "ftp://collector"}}"#, "--collector"),
        ("edge-agent", #"{"device": "gw""#, "agent.json"),
        ("cloud-collector", #"{"listen": "127.0.0.1:8080", "limts": {}}"#, "limts"),
        ("cloud-collector", #"{"limits": {"max_frame_bytes": "8m"}}"#, "limits.max_frame_bytes"),
        ("cloud-collector", #"{"http": {"event_loops": 0}}"#, "http.event_loops"),
        ("cloud-collector", #"{"synchronous": "off"}"#, "synchronous"),
        ("cloud-collector", #"{"database": "mysql://db/edgesync"}"#, "database"),
        ("cloud-collector", #"{"storage": {"query_connections": 0}}"#, "storage.query_connections"),
    ])
    func aBadFileIsRefusedByName(binary: String, contents: String, named: String) async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/agent.json"
            try contents.write(toFile: path, atomically: false, encoding: .utf8)
            let output = try await ChildProcess.run(try ChildProcess.productURL(binary), ["config", "check", path])
            #expect(output.status == 64, "\(output.stdout) \(output.stderr)")
            #expect(output.stderr.contains(named), "\(output.stderr)")
            #expect(!output.stdout.contains(": ok"))
        }
    }

    /// A PostgreSQL URL in the file: the summary shows where, never the password.
    @Test func theCollectorSummaryShowsTheDatabaseWithoutItsPassword() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/collector.json"
            try #"{"database": "postgres://edgesync:s3cret-pass@db.example.net:5433/central?sslmode=require"}"#
                .write(toFile: path, atomically: false, encoding: .utf8)
            let output = try await ChildProcess.run(
                try ChildProcess.productURL("cloud-collector"), ["config", "check", path])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stdout.contains("database: postgres://edgesync:***@db.example.net:5433/central"), "\(output.stdout)")
            #expect(!(output.stdout + output.stderr).contains("s3cret-pass"))
        }
    }

    /// Review: a refused `database` value is echoed in full in the usage error, so a libpq
    /// keyword string (which `PostgresConnection` documents as accepted) prints its password.
    @Test func aRefusedDatabaseSettingDoesNotEchoItsPassword() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/collector.json"
            try #"{"database": "host=db.example.net user=edgesync password=s3cret-pass dbname=central"}"#
                .write(toFile: path, atomically: false, encoding: .utf8)
            let output = try await ChildProcess.run(
                try ChildProcess.productURL("cloud-collector"), ["config", "check", path])
            #expect(output.status == 64, "\(output.stderr)")
            #expect(!(output.stdout + output.stderr).contains("s3cret-pass"), "\(output.stderr)")
        }
    }

    /// `serve` needs a data directory or a database, and names both when it has neither.
    @Test func serveWithoutStorageIsRefusedByName() async throws {
        let output = try await ChildProcess.run(
            try ChildProcess.productURL("cloud-collector"), ["serve", "--listen", "127.0.0.1:0"])
        #expect(output.status == 64)
        #expect(output.stderr.contains("--data-dir") && output.stderr.contains("--database"), "\(output.stderr)")
    }
}
