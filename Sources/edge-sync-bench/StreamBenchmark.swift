import CloudCollector
import EdgeSyncCodec
import EdgeSyncLogging
import EdgeSyncTestSupport
import Foundation
import NATSJetStream

/// Issue 24: what the downstream stream costs. The collector's SQLite store takes the real
/// datasets in 10,000-reading batches without and with the outbox (interleaved, same run), then a
/// relay drains the outbox (one frame per stored range, decision 0025) into a real
/// `nats-server -js` on loopback, turning each frame into per-measurement line-protocol messages.
enum StreamBenchmark: BenchmarkScenario {
    static let name = "stream"
    static let summary = "collector ingest with and without the stream outbox, relay drain into nats-server -js"

    static func run(_ options: BenchmarkOptions) async throws {
        guard let natsServer = BenchmarkProcess.executable("nats-server") ?? ["/usr/sbin/nats-server"].first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        }) else {
            throw BenchmarkError("the stream benchmark needs nats-server (apt-get install -y nats-server)")
        }
        let rounds = SpoolBenchmark.intOption(options, "--rounds") ?? 3
        let datasets = try RealDataset.loadAll(from: options.dataDirectory)
        // One stream per dataset, as one gateway each.
        let batches = datasets.enumerated().flatMap { index, dataset in
            dataset.batches(of: 10_000, stream: 0x5EED_0000_0000_0001 + UInt64(index))
        }
        let readings = batches.reduce(0) { $0 + $1.readings.count }
        print("stream: \(readings) real readings (\(datasets.map(\.name).joined(separator: ", "))) in batches of 10,000, \(rounds) interleaved rounds\n")

        var ingest = TextTable("round", "outbox", "ingest readings/s", "database+WAL bytes/reading", "outbox bytes/reading")
        var ratios: [Double] = []
        // Seconds of ingest per mode over all rounds: the ratio of the sums is steadier than any round.
        var totalSeconds: [Bool: Double] = [:]
        var drain = TextTable(
            "round", "outbox rows", "messages", "drain readings/s", "drain messages/s", "stream bytes/reading")
        for round in 1...rounds {
            var rates: [Bool: Double] = [:]
            for withOutbox in [false, true] {
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stream-bench-\(UUID().uuidString)").path
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: directory) }
                let path = directory + "/collector.sqlite"
                let gauge = StreamOutboxGauge()
                var configuration = SQLiteReadingStore.Configuration()
                if withOutbox { configuration.streamOutbox = StreamOutboxSettings(gauge: gauge) }
                let store = try SQLiteReadingStore(path: path, configuration: configuration)
                let started = ContinuousClock.now
                for batch in batches { _ = try store.store([batch], receivedAt: 1) }
                let seconds = (ContinuousClock.now - started).seconds
                rates[withOutbox] = Double(readings) / seconds
                totalSeconds[withOutbox, default: 0] += seconds
                let files = ["", "-wal"].map { (try? FileManager.default.attributesOfItem(atPath: path + $0)[.size] as? Int) ?? 0 }
                ingest.append(
                    String(round), withOutbox ? "on" : "off", SpoolBenchmark.grouped(Double(readings) / seconds),
                    SpoolBenchmark.format(Double(files.reduce(0, +)) / Double(readings), 2),
                    withOutbox ? SpoolBenchmark.format(Double(gauge.bytes) / Double(readings), 2) : "-")
                guard withOutbox else { continue }

                // Drain into a real server.
                let port = try freeLoopbackPort()
                let server = Process()
                server.executableURL = URL(fileURLWithPath: natsServer)
                server.arguments = ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", directory + "/js"]
                server.standardOutput = FileHandle.nullDevice
                server.standardError = FileHandle.nullDevice
                try server.run()
                defer {
                    server.terminate()
                    server.waitUntilExit()
                }
                try await waitForPort(port)
                let rows = gauge.messages
                let relay = StreamRelay(
                    gauge: gauge, reader: { try SQLiteStreamOutbox.Reader(path: path) },
                    publisher: {
                        JetStreamPublisher(
                            .init(
                                client: .init(host: "127.0.0.1", port: port, options: .init(name: "bench", version: "0")),
                                stream: .init(name: "EDGESYNC", subjects: ["edgesync.>"])))
                    }, logger: Logger(label: "bench") { print($0.logfmt()) })
                let drainStart = ContinuousClock.now
                relay.start()
                while relay.counters.publishedReadings < readings {
                    if relay.counters.failures > 20 { throw BenchmarkError("the relay keeps failing: \(relay.counters)") }
                    try await Task.sleep(for: .milliseconds(5))
                }
                let drainSeconds = (ContinuousClock.now - drainStart).seconds
                relay.stop()
                let client = try JetStreamClient(.init(host: "127.0.0.1", port: port, options: .init(name: "check", version: "0")))
                let state = try client.streamState("EDGESYNC")
                let messages = relay.counters.published
                drain.append(
                    String(round), String(rows), String(messages), SpoolBenchmark.grouped(Double(readings) / drainSeconds),
                    SpoolBenchmark.grouped(Double(messages) / drainSeconds),
                    SpoolBenchmark.format(Double(state?.bytes ?? 0) / Double(readings), 2))
            }
            if let off = rates[false], let on = rates[true] { ratios.append(on / off) }
        }
        print(ingest.render())
        print("\noutbox on / off ingest rate per round: " + ratios.map { SpoolBenchmark.format($0, 2) }.joined(separator: ", "))
        if let off = totalSeconds[false], let on = totalSeconds[true] {
            print("outbox on / off ingest rate over all rounds: " + SpoolBenchmark.format(off / on, 2))
        }
        print("\n" + drain.render())
        print("\nstream bytes/reading: JetStream's own accounting of the stream (line-protocol payloads, headers, subjects)")
    }

    private static func waitForPort(_ port: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if (try? JetStreamClient(.init(host: "127.0.0.1", port: port, options: .init(name: "probe", version: "0")))) != nil {
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchmarkError("nats-server did not listen on \(port) within 10 s")
    }
}

extension Duration {
    fileprivate var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
