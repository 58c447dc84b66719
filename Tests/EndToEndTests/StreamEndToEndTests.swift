import CloudCollector
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import NATSJetStream
import Testing

/// The real `cloud-collector serve` with a real `nats-server -js` (token auth): every reading the
/// collector stores appears in the stream exactly once, across a SIGKILL of the collector while it
/// publishes, a nats-server restart while a second collector publishes, and batches sent again;
/// then the pandas consumer of Docs/examples reads the stream back.
@Suite(.serialized, .timeLimit(.minutes(5))) struct StreamEndToEndTests {
    static let device = "gw-stream"
    static let natsToken = "nats-e2e-token-7f3a9c"

    /// One reading as the stream carries it: the device and one line of line protocol.
    struct StreamLine: Hashable, Comparable {
        var device: String
        var line: String
        static func < (a: StreamLine, b: StreamLine) -> Bool { (a.device, a.line) < (b.device, b.line) }
    }

    /// Every stored reading of the collector's database, as the stream must carry it.
    static func storedLines(databasePath: String) throws -> [StreamLine] {
        var configuration = SQLiteDatabase.Configuration()
        configuration.isReadOnly = true
        let database = try SQLiteDatabase(path: databasePath, configuration: configuration)
        let select = try database.prepare("SELECT device, series_key, timestamp, value, value_bits FROM readings_view")
        var lines: [StreamLine] = []
        while try select.step() {
            let bits = select.isNull(at: 4) ? select.double(at: 3).bitPattern : UInt64(bitPattern: select.int64(at: 4))
            var line = StreamMessages.split(select.text(at: 1) ?? "").prefix
            StreamMessages.appendValue(Double(bitPattern: bits), to: &line)
            lines.append(
                StreamLine(
                    device: select.text(at: 0) ?? "",
                    line: String(decoding: line, as: UTF8.self) + " \(select.int64(at: 2))"))
        }
        return lines.sorted()
    }

    static func waitForEmptyOutbox(databasePath: String) async throws {
        var configuration = SQLiteDatabase.Configuration()
        configuration.isReadOnly = true
        let database = try SQLiteDatabase(path: databasePath, configuration: configuration)
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            let select = try database.prepare(
                "SELECT (SELECT count(*) FROM stream_outbox_frames) + (SELECT count(*) FROM stream_outbox)")
            if try select.step(), select.int64(at: 0) == 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ChildProcess.Failure("the collector's outbox did not empty within 120 s")
    }

    static func post(_ batches: ArraySlice<Batch>, to port: Int, token: String) async throws {
        let frames = try batches.map { try BatchEncoder(options: EncodingOptions(version: .v2)).encode($0) }
        try await onDedicatedThread {
            let client = BlockingHTTPClient(port: port)
            defer { client.close() }
            for frame in frames {
                let response = try client.post(
                    ProtocolPath.batches, body: frame,
                    headers: [("Authorization", "Bearer \(token)"), ("Content-Type", FrameHeader.mediaType)])
                guard response.status == 200 else {
                    throw ChildProcess.Failure(
                        "POST answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
                }
            }
        }
    }

    @Test func everyStoredReadingIsInTheStreamOnceAcrossAKillAndANATSRestart() async throws {
        guard NATSTestServer.executable != nil else {
            print("StreamEndToEndTests: skipped: nats-server is not installed")
            return
        }
        try await withTemporaryDirectory(prefix: "stream-e2e") { directory in
            let nats = try await NATSTestServer.start(in: directory, token: Self.natsToken)
            defer { Task { await nats.stop() } }
            try (Self.natsToken + "\n").write(toFile: directory + "/nats-token", atomically: true, encoding: .utf8)
            let config = directory + "/collector.json"
            try Data(
                #"""
                {"stream": {"nats": "nats://127.0.0.1:\#(nats.port)", "token_file": "\#(directory)/nats-token",
                            "duplicate_window_seconds": 3600}}
                """#.utf8
            ).write(to: URL(fileURLWithPath: config))
            let data = directory + "/collector"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            let databasePath = data + "/collector.sqlite"
            let token = try await CollectorUnderTest.addToken(dataDirectory: data, device: Self.device)
            let batches = try RealDataset.loadAll().enumerated().flatMap { index, dataset in
                dataset.batches(of: 2_000, device: Self.device, stream: 0x57AE_0000_0000_0001 + UInt64(index))
            }
            let third = batches.count / 3
            let total = batches.reduce(0) { $0 + $1.readings.count }

            // 1. The first collector stores a third and is killed at once, its relay mid-publish.
            let first = try await CollectorUnderTest.start(dataDirectory: data, config: config)
            try await Self.post(batches[..<third], to: first.port, token: token)
            first.process.kill()
            _ = await first.process.waitForExit()

            // 2. A second collector publishes what waited while it takes the next third, some of it
            //    sent again (an edge retrying); nats-server restarts under it.
            let second = try await CollectorUnderTest.start(dataDirectory: data, config: config)
            try await Self.post(batches[third..<(2 * third)], to: second.port, token: token)
            try await nats.restart()
            try await Self.post(batches[(third - 3)...], to: second.port, token: token)
            try await Self.waitForEmptyOutbox(databasePath: databasePath)
            let metrics = try await onDedicatedThread {
                try BlockingHTTPClient(port: second.port).send(method: "GET", path: "/metrics", headers: [])
            }
            #expect(String(decoding: metrics.body, as: UTF8.self).contains("collector_stream_outbox_entries 0\n"))
            second.process.kill(SIGTERM)
            #expect(await second.process.waitForExit() == 0)

            // Every stored reading exactly once in the stream, and nothing else.
            let stored = try Self.storedLines(databasePath: databasePath)
            #expect(stored.count == total)
            let client = try JetStreamClient(
                .init(
                    host: "127.0.0.1", port: nats.port,
                    options: .init(name: "check", version: "0", token: Self.natsToken)))
            let messages = try client.storedMessages(stream: "EDGESYNC")
            let streamed = messages.flatMap { message in
                String(decoding: message.payload, as: UTF8.self).split(separator: "\n").map {
                    StreamLine(device: String(message.subject.split(separator: ".")[1]), line: String($0))
                }
            }.sorted()
            #expect(streamed.count == total)
            let same = streamed == stored
            #expect(same, "the stream holds other readings than the collector stored")
            #expect(Set(messages.compactMap(\.messageID)).count == messages.count)

            try await Self.checkConsumerExample(
                port: nats.port, directory: directory, messages: messages.count, stored: stored)
        }
    }

    /// A bad `stream.*` setting stops `serve` and `config check` with exit 64, naming the key.
    @Test func badStreamSettingsExitWith64NamingTheKey() async throws {
        try await withTemporaryDirectory(prefix: "stream-config") { directory in
            let config = directory + "/collector.json"
            let binary = try ChildProcess.productURL("cloud-collector")
            let cases = [
                (#"{"stream": {"nats": "tls://nats:4222"}}"#, "stream.nats"),
                (#"{"stream": {"nats": "nats://h:1", "token_file": "\#(directory)/missing"}}"#, "stream.token_file"),
                (#"{"stream": {"subject_prefix": "x"}}"#, "stream.subject_prefix"),
            ]
            for (json, key) in cases {
                try Data(json.utf8).write(to: URL(fileURLWithPath: config))
                let serve = try await ChildProcess.run(binary, ["serve", "--data-dir", directory, "--config", config])
                #expect(serve.status == 64 && serve.stderr.contains(key), "\(serve.stderr)")
            }
            try Data(#"{"stream": {"nats": "nats://127.0.0.1:4222", "name": "A_B"}}"#.utf8).write(
                to: URL(fileURLWithPath: config))
            let check = try await ChildProcess.run(binary, ["config", "check", config])
            #expect(
                check.status == 0 && check.stdout.contains("stream: nats://127.0.0.1:4222 stream A_B"),
                "\(check.stdout)")
        }
    }

    /// Runs Docs/examples/stream_consumer.py against the stream and compares what it read.
    static func checkConsumerExample(port: Int, directory: String, messages: Int, stored: [StreamLine]) async throws {
        // The python3 on PATH, where pip installs for the user.
        let env = URL(fileURLWithPath: "/usr/bin/env")
        guard (try? await ChildProcess.run(env, ["python3", "--version"]))?.status == 0 else {
            print("StreamEndToEndTests: consumer example skipped: python3 is not installed")
            return
        }
        let probe = try await ChildProcess.run(env, ["python3", "-c", "import nats, pandas"])
        guard probe.status == 0 else {
            print(
                "StreamEndToEndTests: consumer example skipped: nats-py or pandas is missing (pip install nats-py pandas)"
            )
            return
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Docs/examples/stream_consumer.py")
        let csv = directory + "/consumed.csv"
        let run = try await ChildProcess.run(
            env,
            [
                "python3", script.path, "--server", "nats://127.0.0.1:\(port)", "--token", natsToken, "--idle", "3",
                "--csv", csv,
            ],
            timeout: .seconds(120))
        try #require(run.status == 0, "\(run.stderr)")
        struct Summary: Decodable {
            var messages: Int
            var readings: Int
            var duplicates_dropped: Int
        }
        let summary = try JSONDecoder().decode(Summary.self, from: Data(run.stdout.utf8))
        #expect(summary.messages == messages)
        #expect(summary.readings == stored.count)
        #expect(summary.duplicates_dropped == 0)
        // The CSV holds each reading once: compare (device, series, timestamp, value bits).
        struct Row: Hashable {
            var device: String
            var key: String
            var timestamp: Int64
            var bits: UInt64
        }
        let text = try String(contentsOfFile: csv, encoding: .utf8)
        // Python's csv module ends rows with CRLF.
        let rows = text.split(whereSeparator: \.isNewline).dropFirst().compactMap { line -> Row? in
            // device,series_key,timestamp,value; series keys of the real data hold no comma or quote.
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == 4, let timestamp = Int64(fields[2]), let value = Double(fields[3]) else { return nil }
            return Row(device: String(fields[0]), key: String(fields[1]), timestamp: timestamp, bits: value.bitPattern)
        }
        #expect(rows.count == stored.count)
        let expected = stored.compactMap { line -> Row? in
            guard let space = line.line.lastIndex(of: " "), let equals = line.line[..<space].lastIndex(of: "="),
                let timestamp = Int64(line.line[line.line.index(after: space)...]),
                let value = Double(line.line[line.line.index(after: equals)..<space])
            else { return nil }
            return Row(
                device: line.device, key: String(line.line[..<equals]), timestamp: timestamp, bits: value.bitPattern)
        }
        // As multisets: the real data repeats a few (series, time, value) under other sequence numbers.
        let matches =
            Dictionary(rows.map { ($0, 1) }, uniquingKeysWith: +)
            == Dictionary(expected.map { ($0, 1) }, uniquingKeysWith: +)
        #expect(matches, "the consumer's CSV holds other readings than the collector stored")
    }
}
