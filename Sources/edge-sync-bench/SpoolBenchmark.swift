import EdgeAgent
import EdgeSyncCodec
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Glibc

/// `spool`: the edge spool under N concurrent producers writing 100 real readings at a time with
/// fsync `full`, against one row per reading through the same SQLite layer; p99 acknowledgement at a
/// paced 100,000 readings/s; and the peak RSS of `edge-agent import` over 10 million readings.
enum SpoolBenchmark: BenchmarkScenario {
    static let name = "spool"
    static let summary = "spool: durable readings/s with N producers, ack p50/p99, bytes/reading, import RSS"

    static let writeSize = 100

    /// One 100-reading write of real data, with its own series keys.
    struct Write: Sendable {
        var keys: [String]
        var readings: [Reading]
    }

    static func run(_ options: BenchmarkOptions) async throws {
        let datasets = try RealDataset.fileNames.map {
            try RealDataset.load(options.dataDirectory.appendingPathComponent($0))
        }
        let writes = datasets.flatMap { dataset in
            dataset.batches(of: writeSize).map { Write(keys: $0.seriesKeys, readings: $0.readings) }
        }
        let total = intOption(options, "--readings") ?? 3_000_000
        let producerCounts = intOption(options, "--producers").map { [$0] } ?? [1, 16, 64, 256]
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("edge-sync-bench-spool-\(getpid())")
            .path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        print("spool: \(total) real readings per run in writes of \(writeSize), fsync full, files under \(scratch)\n")

        var table = TextTable(
            "store", "producers", "readings/s", "ack p50 ms", "ack p99 ms", "bytes/reading on disk", "of which WAL KiB",
            "after checkpoint B/reading",
            "payload B/reading", "chunks")
        var bestChunkRate = 0.0
        for producers in producerCounts {
            let directory = scratch + "/chunks-\(producers)"
            let result = try await measureSpool(
                writes: writes, total: total, producers: producers, directory: directory)
            bestChunkRate = max(bestChunkRate, result.rate)
            table.append(
                "spool (encoded chunks)", "\(producers)", grouped(result.rate), format(result.p50, 2),
                format(result.p99, 2),
                format(result.bytesPerReading, 2), "\(result.walBytes / 1024)",
                format(result.checkpointedPerReading, 2),
                format(result.payloadPerReading, 2), "\(result.commits)")
            try? FileManager.default.removeItem(atPath: directory)
        }
        let baseline = try measureRows(writes: writes, total: total, directory: scratch + "/rows")
        table.append(
            "row per reading (baseline)", "1 writer, 10,000-row transactions", grouped(baseline.rate), "-", "-",
            format(baseline.bytesPerReading, 2), "\(baseline.walBytes / 1024)",
            format(baseline.checkpointedPerReading, 2), "-",
            "\(baseline.commits) commits")
        print(table.render())
        print(
            "\nspool / row baseline: \(format(bestChunkRate / baseline.rate, 1))× (target ≥ 2×, ≥ 1,000,000 readings/s)\n"
        )

        // The same spool twice: a fresh file (its WAL still growing, each growth costing a slower
        // fsync) and then at steady state, when the WAL is reused in place.
        let pacedDirectory = scratch + "/paced"
        let fresh = try await measurePaced(
            writes: writes, readingsPerSecond: 100_000, seconds: 5, directory: pacedDirectory)
        let steady = try await measurePaced(
            writes: writes, readingsPerSecond: 100_000, seconds: 5, directory: pacedDirectory)
        try? FileManager.default.removeItem(atPath: pacedDirectory)
        var pacedTable = TextTable(
            "offered load", "spool", "producers", "achieved readings/s", "ack p50 ms", "ack p99 ms", "ack max ms")
        for (label, paced) in [("fresh file, first 5 s", fresh), ("same file, next 5 s", steady)] {
            pacedTable.append(
                "100,000 readings/s", label, "10 × 100 readings every 10 ms", grouped(paced.rate), format(paced.p50, 2),
                format(paced.p99, 2), format(paced.max, 2))
        }
        print(pacedTable.render())
        print("\n(target: p99 ≤ 5 ms)\n")

        let importReadings = intOption(options, "--import-readings") ?? 10_000_000
        if let agent = edgeAgentBinary() {
            let imported = try importRSS(
                agent: agent, datasets: datasets, readings: importReadings, directory: scratch + "/import")
            var importTable = TextTable(
                "edge-agent import", "readings", "seconds", "readings/s", "peak RSS MB", "bytes/reading on disk")
            importTable.append(
                "line protocol on stdin", grouped(Double(importReadings)), format(imported.seconds, 1),
                grouped(Double(importReadings) / imported.seconds), format(imported.peakMegabytes, 1),
                format(imported.bytesPerReading, 2))
            print(importTable.render())
            print("\n(target: peak RSS ≤ 64 MB)")
        } else {
            print("edge-agent import RSS: skipped, build the edge-agent product beside edge-sync-bench first")
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        print("\nbenchmark process peak RSS (holds the datasets): \(format(Double(usage.ru_maxrss) / 1024, 1)) MB")
    }

    struct SpoolResult {
        var rate: Double
        var p50: Double
        var p99: Double
        var max: Double = 0
        var bytesPerReading: Double
        var payloadPerReading: Double = 0
        var checkpointedPerReading: Double = 0
        /// The `-wal` file when the run ended, part of "bytes/reading on disk".
        var walBytes: Int64 = 0
        var commits: Int
    }

    static func measureSpool(writes: [Write], total: Int, producers: Int, directory: String) async throws -> SpoolResult
    {
        let spool = try await Spool.open(Spool.Configuration(dataDirectory: directory, device: "bench-gateway"))
        let perProducer = max(1, total / writeSize / producers)
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for producer in 0..<producers {
                group.addTask {
                    var own: [Double] = []
                    own.reserveCapacity(perProducer)
                    for index in 0..<perProducer {
                        let write = writes[(producer + index * producers) % writes.count]
                        let sent = ContinuousClock.now
                        _ = try await spool.append(seriesKeys: write.keys, readings: write.readings)
                        own.append(milliseconds(ContinuousClock.now - sent))
                    }
                    return own
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }.sorted()
        }
        let elapsed = seconds(ContinuousClock.now - start)
        // What the disk holds the moment the last producer has its answer: the WAL as it is, not
        // checkpointed first.
        let status = try await spool.status()
        let walBytes = SQLiteDatabase.fileSizes(ofDatabaseAt: Spool.databasePath(in: directory)).wal
        let readings = Double(latencies.count * writeSize)
        try await spool.checkpoint()
        let checkpointed = try await spool.status().spoolFileBytes
        return SpoolResult(
            rate: readings / elapsed, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99),
            bytesPerReading: Double(status.spoolFileBytes) / readings,
            payloadPerReading: Double(status.queuedBytes) / readings,
            checkpointedPerReading: Double(checkpointed) / readings, walBytes: walBytes,
            commits: Int(status.queuedChunks))
    }

    static func measurePaced(writes: [Write], readingsPerSecond: Int, seconds duration: Int, directory: String)
        async throws
        -> SpoolResult
    {
        let spool = try await Spool.open(Spool.Configuration(dataDirectory: directory, device: "bench-gateway"))
        let producers = 10
        let interval = Duration.nanoseconds(Int64(1e9) * Int64(producers * writeSize) / Int64(readingsPerSecond))
        let rounds = Int(Duration.seconds(duration) / interval)
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for producer in 0..<producers {
                group.addTask {
                    var own: [Double] = []
                    // Producers spread evenly over the interval, as independent sensors would be.
                    var deadline = start + interval * Double(producer) / Double(producers)
                    for round in 0..<rounds {
                        try await Task.sleep(until: deadline, clock: .continuous)
                        let write = writes[(producer + round * producers) % writes.count]
                        let sent = ContinuousClock.now
                        _ = try await spool.append(seriesKeys: write.keys, readings: write.readings)
                        own.append(milliseconds(ContinuousClock.now - sent))
                        deadline += interval
                    }
                    return own
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }.sorted()
        }
        let elapsed = seconds(ContinuousClock.now - start)
        return SpoolResult(
            rate: Double(latencies.count * writeSize) / elapsed, p50: percentile(latencies, 0.5),
            p99: percentile(latencies, 0.99), max: latencies.last ?? 0, bytesPerReading: 0, commits: 0)
    }

    /// The baseline: `rows(seq, series, timestamp, value)`, one row per reading, 10,000 per transaction.
    static func measureRows(writes: [Write], total: Int, directory: String) throws -> SpoolResult {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/rows.sqlite"
        let database = try SQLiteDatabase(path: path)
        try database.execute(
            """
            CREATE TABLE series(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
            CREATE TABLE rows(seq INTEGER PRIMARY KEY, series INTEGER NOT NULL, timestamp INTEGER NOT NULL, value REAL NOT NULL);
            """)
        var seriesIDs: [String: Int64] = [:]
        var seq: Int64 = 0
        var commits = 0
        let start = ContinuousClock.now
        var index = 0
        while seq < Int64(total) {
            try database.transaction(.immediate) { db throws in
                let insert = try db.statement("INSERT INTO rows(seq, series, timestamp, value) VALUES (?1, ?2, ?3, ?4)")
                let addSeries = try db.statement("INSERT INTO series(key) VALUES (?1)")
                for _ in 0..<(10_000 / writeSize) {
                    let write = writes[index % writes.count]
                    index += 1
                    let ids = try write.keys.map { key -> Int64 in
                        if let id = seriesIDs[key] { return id }
                        try addSeries.bind(key, at: 1)
                        try addSeries.run()
                        seriesIDs[key] = db.lastInsertRowID
                        return db.lastInsertRowID
                    }
                    for reading in write.readings {
                        seq += 1
                        try insert.bind(seq, at: 1)
                        try insert.bind(ids[reading.series], at: 2)
                        try insert.bind(reading.timestamp, at: 3)
                        try insert.bind(reading.value, at: 4)
                        try insert.run()
                    }
                }
            }
            commits += 1
        }
        let elapsed = seconds(ContinuousClock.now - start)
        let sizes = SQLiteDatabase.fileSizes(ofDatabaseAt: path)
        let bytes = sizes.total
        try database.checkpoint(.truncate)
        let checkpointed = SQLiteDatabase.fileSizes(ofDatabaseAt: path).total
        return SpoolResult(
            rate: Double(seq) / elapsed, p50: 0, p99: 0, bytesPerReading: Double(bytes) / Double(seq),
            checkpointedPerReading: Double(checkpointed) / Double(seq), walBytes: sizes.wal, commits: commits)
    }

    /// Runs `edge-agent import -` with `readings` lines of real data on stdin and reads its peak RSS.
    static func importRSS(agent: String, datasets: [RealDataset], readings: Int, directory: String) throws
        -> (seconds: Double, peakMegabytes: Double, bytesPerReading: Double)
    {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // posix_spawn rather than Process: Process reaps its child itself, and wait4 needs to.
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw BenchmarkError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[0], STDIN_FILENO)
        posix_spawn_file_actions_addclose(&actions, pipeEnds[1])
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)
        let argv = [agent, "import", "--data-dir", directory, "--device", "bench-gateway", "-"]
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var pid: pid_t = 0
        let start = ContinuousClock.now
        guard posix_spawn(&pid, agent, &actions, nil, &cArguments, environ) == 0 else {
            throw BenchmarkError("cannot start \(agent)")
        }
        close(pipeEnds[0])
        let input = FileHandle(fileDescriptor: pipeEnds[1], closeOnDealloc: false)
        let lines = datasets.flatMap { dataset in
            dataset.readings.map { reading in
                let key = dataset.seriesKeys[reading.series]
                let field = key.dropFirst(dataset.name.count + 1).replacingOccurrences(of: " ", with: "\\ ")
                return "\(dataset.name) \(field)=\(reading.value) "
            }
        }
        let timestamps = datasets.flatMap { $0.readings.map(\.timestamp) }
        var written = 0
        var chunk = ""
        while written < readings {
            let index = written % lines.count
            // Later passes over the data move forward in time, as a long-running gateway would.
            let pass = Int64(written / lines.count)
            chunk += lines[index] + String(timestamps[index] + pass * 86_400_000_000_000 * 365) + "\n"
            written += 1
            if chunk.utf8.count > 1 << 20 || written == readings {
                input.write(Data(chunk.utf8))
                chunk = ""
            }
        }
        close(pipeEnds[1])
        var status: Int32 = 0
        var usage = rusage()
        guard wait4(pid, &status, 0, &usage) == pid else {
            throw BenchmarkError("wait4 failed for edge-agent import")
        }
        let elapsed = seconds(ContinuousClock.now - start)
        guard status == 0 else { throw BenchmarkError("edge-agent import exited with status \(status)") }
        let bytes = SQLiteDatabase.fileSizes(ofDatabaseAt: Spool.databasePath(in: directory)).total
        return (elapsed, Double(usage.ru_maxrss) / 1024, Double(bytes) / Double(readings))
    }

    static func edgeAgentBinary() -> String? {
        let path = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "edge-agent"
        ).path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    static func intOption(_ options: BenchmarkOptions, _ name: String) -> Int? {
        guard let flag = options.arguments.firstIndex(of: name), flag + 1 < options.arguments.count else { return nil }
        return Int(options.arguments[flag + 1].replacingOccurrences(of: "_", with: ""))
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    static func milliseconds(_ duration: Duration) -> Double { seconds(duration) * 1000 }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func format(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    static func grouped(_ value: Double) -> String {
        let formatter = NumberFormatter()
        formatter.numberStyle = .decimal
        formatter.maximumFractionDigits = 0
        return formatter.string(from: NSNumber(value: value)) ?? String(Int(value))
    }
}
