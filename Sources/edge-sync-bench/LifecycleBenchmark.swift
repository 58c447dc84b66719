import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation

/// Issue 18's edge targets, for the real binaries of this build against those of an earlier one
/// (`--baseline DIR`, a folder holding its `edge-agent` and `cloud-collector`), in the same run and
/// in alternating order:
///
/// - a reading's whole life in the spool: `edge-agent import` of a backlog of real line protocol
///   (fsync full), then `edge-agent drain` into that build's own collector until the spool is
///   empty; bytes written to storage by the agent (`ru_oublock` of each process, the accounting
///   behind `/proc/PID/io` `write_bytes`) per reading at enqueue and over the drain (upload,
///   deletion, checkpoints), and the agent's CPU time per uploaded reading during the drain;
/// - durable ingest: `edge-agent run` (fsync full) under wrk, `POST /write` of gzip line protocol,
///   10,000 points per request, 4 connections, counting only readings answered 204.
enum LifecycleBenchmark: BenchmarkScenario {
    static let name = "lifecycle"
    static let summary =
        "edge-agent vs a baseline build: bytes written per reading (import → drain), CPU per uploaded reading, durable POST /write"

    struct Build {
        var label: String
        var agent: String
        var collector: String
    }

    struct LifeResult {
        var readings: Int
        var enqueueBytes: Int64
        var drainBytes: Int64
        var storedBytes: Int64
        var wireBytes: Double
        var drainCPU: Double
        var drainSeconds: Double
        var stored: Int
    }

    static func run(_ options: BenchmarkOptions) async throws {
        let readings = options.integer("--readings") ?? 4_000_000
        let rounds = options.integer("--rounds") ?? 2
        let seconds = options.integer("--seconds") ?? 10
        let builds = try Self.builds(options)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lifecycle-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let datasets = try RealDataset.codecFileNames.map {
            try RealDataset.load(options.dataDirectory.appendingPathComponent($0))
        }
        let backlog = directory.appendingPathComponent("backlog.lp").path
        print("lifecycle: writing a backlog of \(readings) real readings as line protocol (not timed) …")
        try writeBacklog(datasets, readings: readings, to: backlog)
        let lines = InputsBenchmark.lineProtocol(datasets)
        let bodies = (0..<8).map { index -> [UInt8] in
            let start = (index * 10_000) % max(1, lines.count - 10_000)
            return Gzip.compress(Array(lines[start..<start + 10_000].joined(separator: "\n").utf8))
        }

        var life = TextTable(
            "round", "build", "readings", "stored B/r", "written B/r enqueue", "written B/r drain", "written B/r total",
            "wire B/r", "drain CPU µs/r", "drain readings/s", "collector stored")
        var ingest = TextTable("round", "build", "requests/s", "readings/s durable", "p99", "check")
        for round in 1...rounds {
            // Alternate which build goes first, so a trend in the machine's load favours neither.
            let order = round % 2 == 1 ? builds : builds.reversed()
            for build in order {
                let result = try await lifecycle(build, backlog: backlog, readings: readings, in: directory)
                let count = Double(result.readings)
                life.append(
                    String(round), build.label, String(result.readings),
                    SpoolBenchmark.format(Double(result.storedBytes) / count, 3),
                    SpoolBenchmark.format(Double(result.enqueueBytes) / count, 2),
                    SpoolBenchmark.format(Double(result.drainBytes) / count, 2),
                    SpoolBenchmark.format(Double(result.enqueueBytes + result.drainBytes) / count, 2),
                    SpoolBenchmark.format(result.wireBytes / count, 3),
                    SpoolBenchmark.format(result.drainCPU * 1e6 / count, 3),
                    SpoolBenchmark.grouped(count / result.drainSeconds), String(result.stored))
                let load = try await durableIngest(build, bodies: bodies, seconds: seconds, in: directory)
                ingest.append(
                    String(round), build.label, SpoolBenchmark.grouped(load.requestsPerSecond),
                    SpoolBenchmark.grouped(load.requestsPerSecond * 10_000), SpoolBenchmark.format(load.p99, 1) + " ms",
                    load.check)
            }
        }
        print("\nimport (fsync full) then drain into the build's own collector; B/r = bytes per reading\n")
        print(life.render())
        print("\nPOST /write, gzip line protocol, 10,000 points per request, 4 connections, fsync full, \(seconds) s\n")
        print(ingest.render())
    }

    /// This build's binaries, preceded by those in `--baseline DIR` when given.
    static func builds(_ options: BenchmarkOptions) throws -> [Build] {
        let current = try ReplayBenchmark.pairBinaries()
        var builds = [Build(label: "this build", agent: current.agent, collector: current.collector)]
        if let index = options.arguments.firstIndex(of: "--baseline"), index + 1 < options.arguments.count {
            let folder = URL(fileURLWithPath: options.arguments[index + 1])
            let baseline = Build(
                label: "baseline", agent: folder.appendingPathComponent("edge-agent").path,
                collector: folder.appendingPathComponent("cloud-collector").path)
            for binary in [baseline.agent, baseline.collector] where !FileManager.default.isExecutableFile(atPath: binary) {
                throw BenchmarkError("--baseline: \(binary) is missing")
            }
            builds.insert(baseline, at: 0)
        }
        return builds
    }

    /// Real readings cycled (moved a year forward per pass) as one-field line protocol.
    static func writeBacklog(_ datasets: [RealDataset], readings: Int, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else { throw BenchmarkError("cannot create \(path)") }
        defer { try? handle.close() }
        let all = datasets.flatMap { dataset in dataset.readings.map { (dataset, $0) } }
        var text = ""
        text.reserveCapacity(1 << 22)
        for index in 0..<readings {
            let (dataset, reading) = all[index % all.count]
            let pass = Int64(index / all.count)
            let key = dataset.seriesKeys[reading.series]
            let line = lineProtocolLine(key: key, dataset: dataset.name, value: reading.value)
            text += "\(line) \(reading.timestamp + pass * 365 * 86_400_000_000_000)\n"
            if text.utf8.count >= 1 << 22 {
                try handle.write(contentsOf: Data(text.utf8))
                text.removeAll(keepingCapacity: true)
            }
        }
        try handle.write(contentsOf: Data(text.utf8))
    }

    /// `measurement,tags field=value` for a series key: plaid's keys are line protocol already
    /// (`plaid,appliance=…,load=… current`), the CSV datasets' are `name field`.
    private static func lineProtocolLine(key: String, dataset: String, value: Double) -> String {
        let parts = key.split(separator: " ", maxSplits: 1)
        if parts.count == 2, parts[0] != dataset { return "\(parts[0]) \(parts[1])=\(value)" }
        let field = key.dropFirst(dataset.count + 1).replacingOccurrences(of: " ", with: "\\ ")
        return "\(dataset),source=shared \(field)=\(value)"
    }

    static func lifecycle(_ build: Build, backlog: String, readings: Int, in directory: URL) async throws -> LifeResult {
        let root = directory.appendingPathComponent("life-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let spool = root + "/spool"
        let imported = try ReplayBenchmark.spawnAndWait(
            build.agent, ["import", "--data-dir", spool, "--device", "bench-gateway", "--fsync", "full", backlog])
        guard imported.status == 0 else { throw BenchmarkError("\(build.label) edge-agent import exited with \(imported.status)") }
        let status = try ReplayBenchmark.runToCompletion(build.agent, ["status", "--data-dir", spool, "--json"])
        let storedBytes = Int64(jsonNumber("queued_bytes", in: status) ?? 0)

        let token = try ReplayBenchmark.runToCompletion(
            build.collector, ["token", "add", "--data-dir", root + "/collector", "bench-gateway"]
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        let server = try SyncsBenchmark.start(
            build.collector, ["serve", "--listen", "127.0.0.1:0", "--data-dir", root + "/collector"],
            log: root + "/collector.log")
        defer { SyncsBenchmark.stop(server) }
        let port = try SyncsBenchmark.port(inLog: root + "/collector.log")
        let start = ContinuousClock.now
        let drain = try ReplayBenchmark.spawnAndWait(
            build.agent, ["drain", "--data-dir", spool, "--collector", "http://127.0.0.1:\(port)", "--token", token])
        let elapsed = SpoolBenchmark.seconds(ContinuousClock.now - start)
        guard drain.status == 0 else { throw BenchmarkError("\(build.label) edge-agent drain exited with \(drain.status)") }
        SyncsBenchmark.stop(server)
        let wire =
            drain.stdout.split(separator: "\n").first { $0.hasPrefix("bytes on the wire:") }
            .flatMap { $0.split(separator: " ").dropFirst(4).first }.flatMap { Double($0) } ?? .nan
        let stored = try ReplayBenchmark.storedCount(root + "/collector")
        guard stored == readings else {
            throw BenchmarkError("\(build.label): the collector stored \(stored) of \(readings) readings")
        }
        return LifeResult(
            readings: readings, enqueueBytes: imported.writeBytes, drainBytes: drain.writeBytes, storedBytes: storedBytes,
            wireBytes: wire, drainCPU: drain.cpuSeconds, drainSeconds: elapsed, stored: stored)
    }

    struct IngestResult {
        var requestsPerSecond: Double
        var p99: Double
        var check: String
    }

    /// `edge-agent run` with nothing to upload to (the collector address refuses connections, so
    /// every reading stays queued), driven by wrk; the spool must hold every reading answered 204.
    static func durableIngest(_ build: Build, bodies: [[UInt8]], seconds: Int, in directory: URL) async throws
        -> IngestResult
    {
        guard let wrk = BenchmarkProcess.executable("wrk") else {
            throw BenchmarkError("the lifecycle benchmark needs wrk (Debian package wrk)")
        }
        let root = directory.appendingPathComponent("ingest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let spool = root.appendingPathComponent("spool").path
        let agent = try SyncsBenchmark.start(
            build.agent,
            [
                "run", "--data-dir", spool, "--device", "bench-gateway", "--collector", "http://127.0.0.1:9",
                "--token", "unused", "--fsync", "full", "--listen", "127.0.0.1:0", "--retry-window", "0",
            ], log: root.appendingPathComponent("agent.log").path)
        defer { SyncsBenchmark.stop(agent) }
        let port = try SyncsBenchmark.port(inLog: root.appendingPathComponent("agent.log").path)
        let output = try await InputsBenchmark.runWrk(
            wrk, InputsBenchmark.HTTPLoad(path: "/write?db=bench", bodies: bodies, encoding: "gzip"), connections: 4,
            seconds: seconds, address: "127.0.0.1:\(port)", directory: root)
        SyncsBenchmark.stop(agent)
        let (rate, completed, failed) = try InputsBenchmark.wrkCounts(output)
        let status = try ReplayBenchmark.runToCompletion(build.agent, ["status", "--data-dir", spool, "--json"])
        let queued = Int64(jsonNumber("queued_readings", in: status) ?? -1)
        let answered = Int64(completed - failed) * 10_000
        let check =
            queued >= answered && failed == 0
            ? "ok (\(queued) ≥ \(answered))" : "FAILED (\(queued) < \(answered), \(Int(failed)) non-2xx)"
        return IngestResult(
            requestsPerSecond: rate, p99: BenchmarkProcess.latency(percentile: "99%", in: output) ?? 0, check: check)
    }

    /// A top-level number of `edge-agent status --json`.
    static func jsonNumber(_ key: String, in text: String) -> Double? {
        let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        return (object?[key] as? NSNumber)?.doubleValue
    }
}
