import EdgeSyncCodec
import EdgeSyncPostgres
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Several stateless collectors on one PostgreSQL database (issue 9): real binaries, Debian's nginx
/// and PostgreSQL on loopback. Each test skips with the reason printed when PostgreSQL or nginx is
/// missing; .ci/run installs both.
@Suite(.serialized) struct PostgresScaleOutTests {
    static let gateways = 20
    static let readingsPerGateway = 15_000

    /// Agent settings for these runs: small batches so the run spans the faults, short backoff.
    static let agentConfig = """
        {"upload": {"batch_readings": 500, "replay_batch_readings": 500, "max_in_flight": 2, "backoff_initial_ms": 50, "backoff_max_seconds": 1},
         "collector": {"request_timeout_seconds": 20}}
        """

    /// Three collectors behind nginx round-robin, twenty gateways draining real data through it, one
    /// collector SIGKILLed and restarted mid-run, and the same batches posted to two collectors at
    /// once: the database holds exactly the produced readings.
    @Test func threeCollectorsBehindNginxStoreEveryReadingOnce() async throws {
        guard let nginx = programOrSkip("nginx", debianPackage: "nginx") else { return }
        guard let server = try await PostgresTestServer.sharedOrSkip() else { return }
        let url = try await server.makeDatabase(prefix: "scaleout")
        try await withTemporaryDirectory { directory in
            let (text, expected) = try realDataAsLineProtocol(limit: Self.readingsPerGateway)
            let devices = (0..<Self.gateways).map { String(format: "gw-%02d", $0) }
            var tokens: [String: String] = [:]
            for device in devices {
                tokens[device] = try await CollectorUnderTest.addToken(postgres: url, device: device)
                try await importLineProtocol(text, dataDirectory: directory + "/" + device, device: device, name: device)
            }
            let duplicateDevice = "gw-twice"
            let duplicateToken = try await CollectorUnderTest.addToken(postgres: url, device: duplicateDevice)

            let ports = try (0..<3).map { _ in try freeLoopbackPort() }
            var collectors = try await ports.asyncMap { try await CollectorUnderTest.start(postgres: url, port: $0) }
            defer { for collector in collectors { collector.process.kill() } }
            let proxy = try await NginxUnderTest.start(nginx, directory: directory + "/nginx", upstreamPorts: ports)
            defer { proxy.stop() }
            let config = directory + "/agent.json"
            try Self.agentConfig.write(toFile: config, atomically: false, encoding: .utf8)

            let drains = devices.map { device in
                let token = tokens[device] ?? ""
                return Task {
                    try await ChildProcess.run(
                        try ChildProcess.productURL("edge-agent"),
                        [
                            "drain", "--config", config, "--data-dir", directory + "/" + device,
                            "--collector", "http://127.0.0.1:\(proxy.port)",
                        ], environment: ["EDGE_AGENT_TOKEN": token])
                }
            }
            // The same batches to two collectors at once, beside the drains.
            let twice = Task { try await Self.postEachBatchToTwoCollectors(ports: [ports[1], ports[2]], token: duplicateToken, device: duplicateDevice) }

            // Once a third of the readings are stored, collector 0 crashes and comes back on its port.
            let total = expected.count * devices.count
            let storedAtCrash = try await eventually(within: .seconds(300)) { () -> Int? in
                let stored = try Self.count(url, "SELECT count(*) FROM readings")
                return stored >= total / 3 ? stored : nil
            }
            collectors[0].process.kill(SIGKILL)
            _ = await collectors[0].process.waitForExit()
            collectors[0] = try await CollectorUnderTest.start(postgres: url, port: ports[0])

            for (device, drain) in zip(devices, drains) {
                let output = try await drain.value
                #expect(output.status == 0, "\(device): \(output.stderr.suffix(800))")
            }
            let duplicates = try await twice.value
            let storedAfter = try Self.count(url, "SELECT count(*) FROM readings")
            #expect(storedAtCrash.map { $0 < storedAfter } == true, "the crash happened mid-run")

            // Exactly the produced readings, per gateway, by sequence number.
            for device in devices {
                try expectExactly(expected, postgres: url, device: device)
            }
            #expect(duplicates.accepted == duplicates.readings, "each twice-sent reading accepted once")
            #expect(duplicates.duplicates == duplicates.readings, "and reported as a duplicate once")
            #expect(try Self.count(url, "SELECT count(*) FROM readings_view WHERE device = '\(duplicateDevice)'") == duplicates.readings)
            #expect(try Self.count(url, "SELECT count(DISTINCT seq) FROM readings_view WHERE device = '\(duplicateDevice)'") == duplicates.readings)
            let log = (try? String(contentsOfFile: directory + "/nginx/access.log", encoding: .utf8)) ?? ""
            for port in ports {
                #expect(log.contains("upstream=127.0.0.1:\(port)"), "nginx spread batches to the collector on \(port)")
            }
        }
    }

    /// PostgreSQL stopped (fast shutdown) and later crashed (SIGKILL) while two collectors ingest:
    /// batches get 503 meanwhile, the collectors reconnect by themselves, nothing is lost or doubled.
    @Test func postgresRestartsDuringIngestLoseNothing() async throws {
        guard let server = try await PostgresTestServer.makeOrSkip() else { return }
        defer { Task { await server.destroy() } }
        let url = try await server.makeDatabase(prefix: "restart")
        try await withTemporaryDirectory { directory in
            let (text, expected) = try realDataAsLineProtocol(limit: 40_000)
            let devices = ["gw-a", "gw-b", "gw-c", "gw-d"]
            var tokens: [String: String] = [:]
            for device in devices {
                tokens[device] = try await CollectorUnderTest.addToken(postgres: url, device: device)
                try await importLineProtocol(text, dataDirectory: directory + "/" + device, device: device, name: device)
            }
            let collectors = try await [0, 1].asyncMap { _ in try await CollectorUnderTest.start(postgres: url) }
            defer { for collector in collectors { collector.process.kill() } }
            let config = directory + "/agent.json"
            try Self.agentConfig.write(toFile: config, atomically: false, encoding: .utf8)
            let drains = devices.enumerated().map { index, device in
                let token = tokens[device] ?? ""
                let collectorURL = collectors[index % 2].url
                return Task {
                    try await ChildProcess.run(
                        try ChildProcess.productURL("edge-agent"),
                        [
                            "drain", "--config", config, "--data-dir", directory + "/" + device,
                            "--collector", collectorURL,
                        ], environment: ["EDGE_AGENT_TOKEN": token])
                }
            }
            let total = expected.count * devices.count

            // 1: fast shutdown at a quarter; a collector reports the database unavailable; start again.
            let beforeStop = try #require(
                try await eventually(within: .seconds(300)) { () -> Int? in
                    let stored = try Self.count(url, "SELECT count(*) FROM readings")
                    return stored >= total / 4 ? stored : nil
                }, "a quarter of the readings arrived")
            #expect(beforeStop < total, "PostgreSQL stops mid-ingest")
            await server.stop()
            _ = try await collectors[0].process.waitForLine { $0.contains("event=database_unavailable") }
            let notReady = try await onDedicatedThread {
                try BlockingHTTPClient(port: collectors[1].port).send(method: "GET", path: "/readyz")
            }
            #expect(notReady.status == 503)
            #expect(notReady.text.contains("PostgreSQL"), "\(notReady.text)")
            try await server.start()

            // 2: a crash at two thirds (recovery replays the WAL at the next start).
            let beforeCrash = try #require(
                try await eventually(within: .seconds(300)) { () -> Int? in
                    let stored = try Self.count(url, "SELECT count(*) FROM readings")
                    return stored >= total * 2 / 3 ? stored : nil
                }, "two thirds of the readings arrived")
            #expect(beforeCrash < total, "PostgreSQL crashes mid-ingest")
            await server.crash()
            try await server.start()

            for (device, drain) in zip(devices, drains) {
                let output = try await drain.value
                #expect(output.status == 0, "\(device): \(output.stderr.suffix(800))")
                try expectExactly(expected, postgres: url, device: device)
            }
            // Both collectors still serve, on new connections, and say they are ready.
            for collector in collectors {
                let ready = try await onDedicatedThread {
                    try BlockingHTTPClient(port: collector.port).send(method: "GET", path: "/readyz").status
                }
                #expect(ready == 200)
            }
        }
    }

    /// Tokens live in the database: added, listed and revoked with `token … --database`, seen by
    /// a running collector at once.
    @Test func tokensAreSharedThroughTheDatabase() async throws {
        guard let server = try await PostgresTestServer.sharedOrSkip() else { return }
        let url = try await server.makeDatabase(prefix: "tokens")
        let token = try await CollectorUnderTest.addToken(postgres: url, device: "gw-t")
        let operatorToken = "operator-token-for-the-pg-test"
        let collector = try await CollectorUnderTest.start(
            postgres: url, environment: ["CLOUD_COLLECTOR_OPERATOR_TOKEN": operatorToken])
        defer { collector.process.kill() }
        let frame = try BatchEncoder().encode(
            Batch(device: "gw-t", stream: 1, firstSequence: 1, seriesKeys: ["t v"], readings: [Reading(series: 0, timestamp: 1, value: 1)]))
        let post = { @Sendable (token: String) async throws -> Int in
            try await onDedicatedThread {
                try BlockingHTTPClient(port: collector.port).post(
                    ProtocolPath.batches, body: frame,
                    headers: [("Authorization", "Bearer \(token)"), ("Content-Type", FrameHeader.mediaType)]
                ).status
            }
        }
        #expect(try await post(token) == 200)
        // The query API answers from PostgreSQL too.
        let csv = try await onDedicatedThread {
            try BlockingHTTPClient(port: collector.port).send(
                method: "GET", path: "/v1/readings?device=gw-t&series=t%20v&format=csv",
                headers: [("Authorization", "Bearer \(operatorToken)")])
        }
        #expect(csv.status == 200)
        #expect(csv.text.contains(",1"), "\(csv.text)")
        let devices = try await onDedicatedThread {
            try BlockingHTTPClient(port: collector.port).send(
                method: "GET", path: "/v1/devices", headers: [("Authorization", "Bearer \(operatorToken)")])
        }
        #expect(devices.status == 200 && devices.text.contains("gw-t"), "\(devices.text)")
        let cli = try ChildProcess.productURL("cloud-collector")
        let list = try await ChildProcess.run(cli, ["token", "list", "--database", url])
        #expect(list.status == 0 && list.stdout.hasPrefix("gw-t\t"), "\(list.stdout) \(list.stderr)")
        #expect(!list.stdout.contains(token))
        #expect(try await ChildProcess.run(cli, ["token", "revoke", "--database", url, "gw-t"]).status == 0)
        #expect(try await post(token) == 401)
        #expect(try await ChildProcess.run(cli, ["token", "revoke", "--database", url, "gw-t"]).status != 0)
    }

    // MARK: Helpers

    static func count(_ url: String, _ sql: String) throws -> Int {
        Int(try PostgresConnection(url: url).query(sql).requiredInt64(0, 0))
    }

    /// Posts 40 batches of 250 readings, each to both collectors at the same moment (two threads),
    /// retrying a 503 until both have answered 200. Returns the summed acknowledgements.
    static func postEachBatchToTwoCollectors(ports: [Int], token: String, device: String) async throws
        -> (readings: Int, accepted: Int, duplicates: Int)
    {
        var totals = (readings: 0, accepted: 0, duplicates: 0)
        for index in 0..<40 {
            let readings = (0..<250).map { offset in
                Reading(series: offset % 2, timestamp: 1_700_000_000_000_000_000 + Int64(index * 250 + offset), value: Double(offset))
            }
            let batch = Batch(
                device: device, stream: 42, firstSequence: UInt64(index * 250 + 1), seriesKeys: ["twice,k=a v", "twice,k=b v"],
                readings: readings)
            let frame = try BatchEncoder().encode(batch)
            let answers = try await withThrowingTaskGroup(of: BatchAcknowledgement.self) { group in
                for port in ports {
                    group.addTask {
                        try await onDedicatedThread {
                            let client = BlockingHTTPClient(port: port)
                            defer { client.close() }
                            for _ in 0..<200 {
                                let response = try client.post(
                                    ProtocolPath.batches, body: frame,
                                    headers: [("Authorization", "Bearer \(token)"), ("Content-Type", FrameHeader.mediaType)])
                                if response.status == 200 {
                                    return try JSONDecoder().decode(BatchAcknowledgement.self, from: Data(response.body))
                                }
                                guard response.status == 503 else {
                                    throw ChildProcess.Failure("collector on \(port) answered \(response.status)")
                                }
                                usleep(50_000)  // a blocking client on its own thread, honouring Retry-After loosely
                            }
                            throw ChildProcess.Failure("collector on \(port) stayed busy")
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            totals.readings += readings.count
            totals.accepted += answers.reduce(0) { $0 + $1.accepted }
            totals.duplicates += answers.reduce(0) { $0 + $1.duplicates }
        }
        return totals
    }
}

/// Checks that the PostgreSQL database holds exactly `expected` for `device`, in sequence order from 1.
func expectExactly(_ expected: [ExpectedReading], postgres url: String, device: String) throws {
    let rows = try PostgresConnection(url: url).query(
        "SELECT series_key, timestamp, value, value_bits, seq FROM readings_view WHERE device = $1", [device])
    var bySequence: [UInt64: ExpectedReading] = [:]
    for row in 0..<rows.count {
        let bits = try rows.int64(row, 3).map { UInt64(bitPattern: $0) } ?? (try rows.double(row, 2) ?? .nan).bitPattern
        bySequence[UInt64(try rows.requiredInt64(row, 4))] = ExpectedReading(
            key: rows.string(row, 0) ?? "", timestamp: try rows.requiredInt64(row, 1), valueBits: bits)
    }
    expectExactly(expected, stored: (rows.count, bySequence), device: device)
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        result.reserveCapacity(count)
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
