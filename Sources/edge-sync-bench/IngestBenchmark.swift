import CloudCollector
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Synchronization

/// The collector under ingest load: 16 simulated gateways on loopback post real-data batches of
/// 10,000 readings over keep-alive connections; then the same batches again (all duplicates). In the
/// same run, for comparison: the collector's store without HTTP, and the same readings stored with
/// `INSERT OR IGNORE` into a table keyed by (device, stream, seq).
enum IngestBenchmark: BenchmarkScenario {
    static let name = "ingest"
    static let summary =
        "collector: 16 gateways posting 10,000-reading batches (readings/s, p99), duplicates, INSERT OR IGNORE baseline"

    struct Options {
        var gateways = 16
        var batchesPerGateway = 60
        var batchSize = 10_000
        var synchronousModes: [SQLiteDatabase.Configuration.Synchronous] = [.normal, .full]
        var storage = SQLiteReadingStore.Configuration()
        var skipsHTTP = false
    }

    nonisolated(unsafe) static var storage = SQLiteReadingStore.Configuration()
    /// `--without-query-index`: store without writing `series_blocks` (the query index of schema 3),
    /// to measure what the index costs ingest in one binary under the same load.
    nonisolated(unsafe) static var dropsQueryIndex = false

    static func run(_ benchmarkOptions: BenchmarkOptions) async throws {
        var options = Options()
        let arguments = benchmarkOptions.arguments
        if let flag = arguments.firstIndex(of: "--batches"), flag + 1 < arguments.count,
            let value = Int(arguments[flag + 1])
        {
            options.batchesPerGateway = value
        }
        if let flag = arguments.firstIndex(of: "--gateways"), flag + 1 < arguments.count,
            let value = Int(arguments[flag + 1])
        {
            options.gateways = value
        }
        if let flag = arguments.firstIndex(of: "--sync"), flag + 1 < arguments.count {
            options.synchronousModes = arguments[flag + 1].split(separator: ",").compactMap {
                SQLiteDatabase.Configuration.Synchronous(rawValue: $0.uppercased())
            }
        }

        if let flag = arguments.firstIndex(of: "--page-size"), flag + 1 < arguments.count,
            let value = Int(arguments[flag + 1])
        {
            options.storage.pageSize = value
        }
        if let flag = arguments.firstIndex(of: "--checkpoint-pages"), flag + 1 < arguments.count,
            let value = Int(arguments[flag + 1])
        {
            options.storage.walAutocheckpointPages = value
        }
        if let flag = arguments.firstIndex(of: "--cache-kib"), flag + 1 < arguments.count,
            let value = Int(arguments[flag + 1])
        {
            options.storage.cacheKiB = value
        }
        options.skipsHTTP = arguments.contains("--store-only")
        options.storage.checkpointsInBackground = !arguments.contains("--inline-checkpoints")
        storage = options.storage
        dropsQueryIndex = arguments.contains("--without-query-index")
        let roundsByIndex = arguments.contains("--rounds-by-index")
        if dropsQueryIndex { print("without the query index (series_blocks not written)") }

        let (datasets, workloads) = try makeWorkloads(
            benchmarkOptions, gateways: options.gateways, batchesPerGateway: options.batchesPerGateway,
            batchSize: options.batchSize, roundsByIndex: roundsByIndex)
        let encoder = BatchEncoder()
        let frames = try workloads.map { try $0.map { try encoder.encode($0) } }
        let totalReadings = options.gateways * options.batchesPerGateway * options.batchSize
        let frameBytes = frames.joined().reduce(0) { $0 + $1.count }
        print(
            "ingest: \(options.gateways) gateways × \(options.batchesPerGateway) batches × \(options.batchSize) readings = \(totalReadings) readings, \(frameBytes / 1024) KiB of frames (real data: \(datasets.map(\.name).joined(separator: ", ")))\n"
        )

        var table = TextTable(
            "run", "synchronous", "readings/s", "per CPU-s", "batches/s", "p50 batch", "p99 batch", "vs baseline")
        var baselineRates: [SQLiteDatabase.Configuration.Synchronous: Double] = [:]
        for mode in options.synchronousModes {
            var cpu = processCPUSeconds()
            let baseline = try withTemporaryDirectory(prefix: "ingest-bench") { directory in
                try insertOrIgnoreBaseline(workloads, path: directory + "/baseline.sqlite", synchronous: mode)
            }
            let baselineCPU = Double(totalReadings) / (processCPUSeconds() - cpu)
            baselineRates[mode] = baseline
            cpu = processCPUSeconds()
            let direct = try withTemporaryDirectory(prefix: "ingest-bench") { directory in
                try storeDirect(workloads, path: directory + "/direct.sqlite", synchronous: mode)
            }
            let directCPU = Double(totalReadings) / (processCPUSeconds() - cpu)
            let ratio = { (rate: Double) in String(format: "%.1f×", rate / baseline) }
            table.append(
                "INSERT OR IGNORE (device, stream, seq), no HTTP", mode.rawValue, rate(baseline), rate(baselineCPU),
                "-", "-", "-", "1.0×")
            table.append(
                "collector store, no HTTP", mode.rawValue, rate(direct), rate(directCPU), "-", "-", "-", ratio(direct))
            if options.skipsHTTP { continue }
            let (fresh, duplicate) = try await withTemporaryDirectory(prefix: "ingest-bench") { directory in
                try await overHTTP(frames, readings: totalReadings, directory: directory, synchronous: mode)
            }
            table.append(
                "collector, 16 gateways over HTTP: new", mode.rawValue, rate(fresh.readingsPerSecond), "-",
                String(format: "%.0f", fresh.batchesPerSecond), milliseconds(fresh.p50), milliseconds(fresh.p99),
                ratio(fresh.readingsPerSecond))
            table.append(
                "collector, 16 gateways over HTTP: all duplicates", mode.rawValue, rate(duplicate.readingsPerSecond),
                "-",
                String(format: "%.0f", duplicate.batchesPerSecond), milliseconds(duplicate.p50),
                milliseconds(duplicate.p99), "-")
        }
        print(table.render())
    }

    /// Every gateway's batches: real datasets cut into `batchSize` templates that each gateway
    /// cycles through with its own device, stream and sequence numbers, shifting timestamps each
    /// round so rows differ.
    static func makeWorkloads(
        _ benchmarkOptions: BenchmarkOptions, gateways: Int, batchesPerGateway: Int, batchSize: Int,
        roundsByIndex: Bool = false
    ) throws -> (datasets: [RealDataset], workloads: [[Batch]]) {
        let datasets: [RealDataset]
        do {
            datasets = try RealDataset.loadAll(from: benchmarkOptions.dataDirectory)
        } catch {
            throw BenchmarkError("real datasets not found in \(benchmarkOptions.dataDirectory.path): \(error)")
        }
        // Templates: every dataset cut into batches of `batchSize`; each gateway cycles through them,
        // shifting timestamps each round so rows differ.
        let templates = datasets.flatMap { $0.batches(of: batchSize) }.filter {
            $0.readings.count == batchSize
        }
        guard !templates.isEmpty else {
            throw BenchmarkError("no full batch of \(batchSize) readings in the data")
        }
        var workloads: [[Batch]] = []
        for gateway in 0..<gateways {
            var batches: [Batch] = []
            for index in 0..<batchesPerGateway {
                var batch = templates[(gateway + index) % templates.count]
                batch.device = "gateway-\(gateway)"
                batch.stream = 0xB0B0_0000_0000_0000 + UInt64(gateway)
                batch.firstSequence = UInt64(index * batchSize + 1)
                // A new round starts each time this gateway wraps around to the first template, so
                // each of its series moves forward in time as a real gateway's do (`--rounds-by-index`:
                // the earlier workload, where gateways 1… wrap to older readings within a round and
                // index inserts land mid-series).
                let round = roundsByIndex ? index / templates.count : (gateway + index) / templates.count
                let shift = Int64(round) * 86_400_000_000_000 * 400
                for position in batch.readings.indices { batch.readings[position].timestamp += shift }
                batches.append(batch)
            }
            workloads.append(batches)
        }
        return (datasets, workloads)
    }

    struct LoadResult {
        var readingsPerSecond: Double
        var batchesPerSecond: Double
        var p50: Double
        var p99: Double
    }

    /// Readings per second of the same readings through `INSERT OR IGNORE` keyed by (device, stream, seq),
    /// one transaction per batch, prepared statement reused.
    static func insertOrIgnoreBaseline(
        _ workloads: [[Batch]], path: String, synchronous: SQLiteDatabase.Configuration.Synchronous
    ) throws -> Double {
        var configuration = SQLiteDatabase.Configuration()
        configuration.synchronous = synchronous
        let database = try SQLiteDatabase(path: path, configuration: configuration)
        try database.execute("PRAGMA cache_size = -65536")
        try database.execute(
            """
            CREATE TABLE readings (device TEXT NOT NULL, stream INTEGER NOT NULL, seq INTEGER NOT NULL,
                series_key TEXT NOT NULL, timestamp INTEGER NOT NULL, value REAL,
                PRIMARY KEY (device, stream, seq))
            """)
        let start = ContinuousClock.now
        var stored = 0
        for round in 0..<(workloads.first?.count ?? 0) {
            for batches in workloads {
                let batch = batches[round]
                try database.transaction(.immediate) { db in
                    let insert = try db.statement(
                        "INSERT OR IGNORE INTO readings (device, stream, seq, series_key, timestamp, value) VALUES (?, ?, ?, ?, ?, ?)"
                    )
                    for (index, reading) in batch.readings.enumerated() {
                        try insert.bind(batch.device, at: 1)
                        try insert.bind(Int64(bitPattern: batch.stream), at: 2)
                        try insert.bind(Int64(batch.firstSequence) + Int64(index), at: 3)
                        try insert.bind(batch.seriesKeys[reading.series], at: 4)
                        try insert.bind(reading.timestamp, at: 5)
                        try insert.bind(reading.value, at: 6)
                        try insert.step()
                        insert.reset()
                    }
                }
                stored += batch.readings.count
            }
        }
        return Double(stored) / seconds(since: start)
    }

    /// The collector's store without HTTP, one batch per transaction as the slowest case of the writer.
    static func storeDirect(_ workloads: [[Batch]], path: String, synchronous: SQLiteDatabase.Configuration.Synchronous)
        throws -> Double
    {
        var configuration = storage
        configuration.synchronous = synchronous
        configuration.maintainsQueryIndex = !dropsQueryIndex
        let store = try SQLiteReadingStore(path: path, configuration: configuration)
        let start = ContinuousClock.now
        var stored = 0
        for round in 0..<(workloads.first?.count ?? 0) {
            for batches in workloads {
                stored += try store.store([batches[round]], receivedAt: 0).outcomes[0].accepted
            }
        }
        return Double(stored) / seconds(since: start)
    }

    /// The whole collector in this process; 16 client threads, one keep-alive connection each.
    static func overHTTP(
        _ frames: [[[UInt8]]], readings: Int, directory: String, synchronous: SQLiteDatabase.Configuration.Synchronous
    ) async throws -> (LoadResult, LoadResult) {
        var configuration = CollectorService.Configuration(dataDirectory: directory)
        configuration.port = 0
        configuration.storage = storage
        configuration.storage.synchronous = synchronous
        configuration.storage.maintainsQueryIndex = !dropsQueryIndex
        let service = try CollectorService(configuration: configuration)
        let database = try SQLiteDatabase(path: configuration.databasePath)
        var tokens: [String] = []
        for gateway in frames.indices {
            tokens.append(try TokenStore.add(device: "gateway-\(gateway)", in: database, now: 0).text)
        }
        let serving = Task { try await service.run() }
        let port = try await service.localAddress.port
        let fresh = try await load(frames, tokens: tokens, port: port, readings: readings)
        let walPath = configuration.databasePath + "-wal"
        let walBytes = (try? FileManager.default.attributesOfItem(atPath: walPath)[.size] as? Int) ?? 0
        print("after the new readings (\(synchronous.rawValue)): WAL file \(walBytes >> 20) MiB")
        let duplicate = try await load(frames, tokens: tokens, port: port, readings: readings)
        service.shutdown()
        try await serving.value
        let check = try SQLiteDatabase(path: configuration.databasePath)
        let count = try check.prepare("SELECT count(*) FROM readings")
        _ = try count.step()
        guard count.int64(at: 0) == Int64(readings) else {
            throw BenchmarkError("stored \(count.int64(at: 0)) readings, expected \(readings)")
        }
        return (fresh, duplicate)
    }

    static func load(_ frames: [[[UInt8]]], tokens: [String], port: Int, readings: Int) async throws -> LoadResult {
        try await load(frames, tokens: tokens, ports: frames.map { _ in port }, readings: readings)
    }

    /// Gateway `g` posts its frames to `ports[g]` on a keep-alive connection of its own thread.
    static func load(_ frames: [[[UInt8]]], tokens: [String], ports: [Int], readings: Int) async throws -> LoadResult {
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for (gateway, mine) in frames.enumerated() {
                let token = tokens[gateway]
                let port = ports[gateway]
                group.addTask {
                    try await onDedicatedThread {
                        let client = BlockingHTTPClient(port: port)
                        var latencies: [Double] = []
                        for frame in mine {
                            while true {
                                let sent = ContinuousClock.now
                                let response = try client.post(
                                    ProtocolPath.batches, body: frame,
                                    headers: [
                                        ("Authorization", "Bearer \(token)"), ("Content-Type", FrameHeader.mediaType),
                                    ])
                                if response.status == 503 { continue }  // backpressure: retry at once
                                guard response.status == 200 else {
                                    throw BenchmarkError("status \(response.status): \(response.text)")
                                }
                                latencies.append(seconds(since: sent))
                                break
                            }
                        }
                        return latencies
                    }
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all.sorted()
        }
        let elapsed = seconds(since: start)
        func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        return LoadResult(
            readingsPerSecond: Double(readings) / elapsed, batchesPerSecond: Double(latencies.count) / elapsed,
            p50: percentile(0.5), p99: percentile(0.99))
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// CPU time (user + system, every thread) of this process: less sensitive than wall-clock time
    /// to other processes on a shared machine, so variants can be compared by readings per CPU-second.
    static func processCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    static func rate(_ value: Double) -> String {
        value >= 1e6 ? String(format: "%.2f M", value / 1e6) : String(format: "%.0f k", value / 1e3)
    }

    static func milliseconds(_ value: Double) -> String { String(format: "%.1f ms", value * 1000) }
}
