import EdgeAgent
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

/// One reading as the collector should end up holding it.
struct ExpectedReading: Hashable {
    var key: String
    var timestamp: Int64
    var valueBits: UInt64
}

/// A `cloud-collector serve` process on loopback.
struct CollectorUnderTest {
    let process: ChildProcess
    let port: Int
    var url: String { "http://127.0.0.1:\(port)" }

    /// Starts the collector (on `port`, or a free one when 0) and returns once it is listening.
    /// `environment` adds variables (`CLOUD_COLLECTOR_OPERATOR_TOKEN`).
    static func start(dataDirectory: String, port: Int = 0, environment: [String: String]? = nil) async throws
        -> CollectorUnderTest
    {
        try await start(storage: ["--data-dir", dataDirectory], port: port, environment: environment)
    }

    /// Starts the collector with a configuration file (`--config`) besides the data directory.
    static func start(dataDirectory: String, config: String) async throws -> CollectorUnderTest {
        try await start(storage: ["--data-dir", dataDirectory, "--config", config], port: 0, environment: nil)
    }

    /// Starts a collector on PostgreSQL (`--database url`).
    static func start(postgres url: String, port: Int = 0, environment: [String: String]? = nil) async throws
        -> CollectorUnderTest
    {
        try await start(storage: ["--database", url], port: port, environment: environment)
    }

    private static func start(storage: [String], port: Int, environment: [String: String]?) async throws
        -> CollectorUnderTest
    {
        let process = try ChildProcess(
            try ChildProcess.productURL("cloud-collector"),
            ["serve", "--listen", "127.0.0.1:\(port)"] + storage, environment: environment)
        let line = try await process.waitForLine { $0.contains("event=listening") }
        guard let address = line.split(separator: " ").first(where: { $0.hasPrefix("address=") }),
            let actual = address.split(separator: ":").last.flatMap({ Int($0) })
        else { throw ChildProcess.Failure("no port in \"\(line)\"") }
        return CollectorUnderTest(process: process, port: actual)
    }

    /// Registers `device` in the collector's database and returns its new token.
    static func addToken(dataDirectory: String, device: String) async throws -> String {
        try await addToken(storage: ["--data-dir", dataDirectory], device: device)
    }

    static func addToken(postgres url: String, device: String) async throws -> String {
        try await addToken(storage: ["--database", url], device: device)
    }

    private static func addToken(storage: [String], device: String) async throws -> String {
        let output = try await ChildProcess.run(
            try ChildProcess.productURL("cloud-collector"), ["token", "add"] + storage + [device])
        guard output.status == 0 else { throw ChildProcess.Failure("token add failed: \(output.stderr)") }
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Every stored reading of `device`, by sequence number (duplicates would show as a count
    /// mismatch: the map would hold fewer entries than rows).
    static func storedReadings(dataDirectory: String, device: String) throws -> (
        rows: Int, bySequence: [UInt64: ExpectedReading]
    ) {
        var configuration = SQLiteDatabase.Configuration()
        configuration.isReadOnly = true
        let database = try SQLiteDatabase(path: dataDirectory + "/collector.sqlite", configuration: configuration)
        let select = try database.prepare(
            "SELECT series_key, timestamp, value, value_bits, seq FROM readings_view WHERE device = ?1")
        try select.bind(device, at: 1)
        var rows = 0
        var bySequence: [UInt64: ExpectedReading] = [:]
        while try select.step() {
            rows += 1
            let bits = select.isNull(at: 3) ? select.double(at: 2).bitPattern : UInt64(bitPattern: select.int64(at: 3))
            bySequence[UInt64(select.int64(at: 4))] = ExpectedReading(
                key: select.text(at: 0) ?? "", timestamp: select.int64(at: 1), valueBits: bits)
        }
        return (rows, bySequence)
    }
}

/// The real datasets as line protocol (one field per line), and the readings they must become.
func realDataAsLineProtocol(limit: Int = .max) throws -> (text: String, expected: [ExpectedReading]) {
    var text = ""
    var expected: [ExpectedReading] = []
    for dataset in try RealDataset.loadAll() {
        for reading in dataset.readings where expected.count < limit {
            let name = dataset.seriesKeys[reading.series]
            let field = String(name.dropFirst(dataset.name.count + 1))
            text +=
                "\(dataset.name) \(field.replacingOccurrences(of: " ", with: "\\ "))=\(reading.value) \(reading.timestamp)\n"
            expected.append(
                ExpectedReading(
                    key: LineProtocolSeriesKey.make(measurement: dataset.name, tags: [], field: field),
                    timestamp: reading.timestamp, valueBits: reading.value.bitPattern))
        }
    }
    return (text, expected)
}

/// Imports `text` into the spool in `dataDirectory` through the real binary.
func importLineProtocol(_ text: String, dataDirectory: String, device: String, name: String) async throws {
    let file = dataDirectory + "-\(name).lp"
    try text.write(toFile: file, atomically: false, encoding: .utf8)
    let output = try await ChildProcess.run(
        try ChildProcess.productURL("edge-agent"), ["import", "--data-dir", dataDirectory, "--device", device, file])
    guard output.status == 0 else { throw ChildProcess.Failure("import failed (\(output.status)): \(output.stderr)") }
}

/// Checks that the collector holds exactly `expected` for `device`, in sequence order from 1.
func expectExactly(_ expected: [ExpectedReading], collectorDirectory: String, device: String) throws {
    expectExactly(expected, stored: try CollectorUnderTest.storedReadings(dataDirectory: collectorDirectory, device: device), device: device)
}

/// Checks that `stored` (rows of one device, and those rows by sequence number) is exactly
/// `expected`, in sequence order from 1: a duplicate shows as more rows than sequence numbers.
func expectExactly(
    _ expected: [ExpectedReading], stored: (rows: Int, bySequence: [UInt64: ExpectedReading]), device: String
) {
    #expect(stored.rows == expected.count, "\(device): rows stored")
    #expect(stored.bySequence.count == expected.count, "\(device): distinct sequence numbers stored")
    var mismatches = 0
    for (index, reading) in expected.enumerated() where stored.bySequence[UInt64(index + 1)] != reading {
        mismatches += 1
    }
    #expect(mismatches == 0, "\(device): \(mismatches) readings missing or different")
}

/// One gateway's spool and one collector's data directory in a fresh temporary folder, with the
/// device `gw-1` registered and its token at hand.
struct PairFixture {
    static let device = "gw-1"
    let directory: String
    let token: String
    var collectorDirectory: String { directory + "/collector" }
    var spoolDirectory: String { directory + "/spool" }

    /// Runs `body` with a fixture; the caller starts (and stops) the collector it needs.
    static func with(_ body: (PairFixture) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            let token = try await CollectorUnderTest.addToken(
                dataDirectory: directory + "/collector", device: PairFixture.device)
            try await body(PairFixture(directory: directory, token: token))
        }
    }

    func startCollector(port: Int = 0, environment: [String: String]? = nil) async throws -> CollectorUnderTest {
        try await CollectorUnderTest.start(dataDirectory: collectorDirectory, port: port, environment: environment)
    }

    func importLineProtocol(_ text: String, name: String) async throws {
        try await EndToEndTests.importLineProtocol(
            text, dataDirectory: spoolDirectory, device: PairFixture.device, name: name)
    }

    /// `edge-agent drain` against `collectorURL`, with the token from the environment.
    func drain(_ collectorURL: String, token: String? = nil, extraArguments: [String] = []) async throws
        -> ChildProcess.Output
    {
        try await ChildProcess.run(
            try ChildProcess.productURL("edge-agent"),
            ["drain", "--data-dir", spoolDirectory, "--collector", collectorURL] + extraArguments,
            environment: ["EDGE_AGENT_TOKEN": token ?? self.token])
    }

    /// A running `edge-agent run` against `collectorURL`.
    func startAgent(_ collectorURL: String, config: String) throws -> ChildProcess {
        try ChildProcess(
            try ChildProcess.productURL("edge-agent"),
            [
                "run", "--config", config, "--data-dir", spoolDirectory, "--device", PairFixture.device,
                "--collector", collectorURL,
            ], environment: ["EDGE_AGENT_TOKEN": token])
    }

    /// Writes an agent configuration file and returns its path.
    func writeAgentConfig(_ json: String) throws -> String {
        let path = directory + "/agent.json"
        try json.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    func expectExactly(_ expected: [ExpectedReading]) throws {
        try EndToEndTests.expectExactly(expected, collectorDirectory: collectorDirectory, device: PairFixture.device)
    }
}

/// The executable `name` from PATH or `extraDirectories` (nginx lives in /usr/sbin, often not on
/// a non-root PATH).
func executableOnPath(_ name: String, extraDirectories: [String] = []) -> URL? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":").map(String.init) + extraDirectories {
        let candidate = directory + "/" + name
        if FileManager.default.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
    }
    return nil
}

/// `name` from PATH (or /usr/sbin), or nil after printing why the calling test is skipped.
func programOrSkip(_ name: String, debianPackage: String) -> URL? {
    if let found = executableOnPath(name, extraDirectories: ["/usr/sbin"]) { return found }
    print("skipped: \(name) is not installed (Debian package \(debianPackage); .ci/run installs it)")
    return nil
}
