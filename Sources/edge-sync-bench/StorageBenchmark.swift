import CloudCollector
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation

/// Issue 19: the same real readings stored by the collector's SQLite store in the row layout and
/// in the column-block layout (decision 0027), in one run: bytes a reading at rest (database + WAL
/// after the checkpoint a clean stop makes) and ingest readings/s, for each of the four files of
/// `shared/data` alone and for all four in one database (one stream each), at the live and the
/// replay batch sizes. Rounds interleave the layouts so load on the machine hits both alike.
enum StorageBenchmark: BenchmarkScenario {
    static let name = "storage"
    static let summary =
        "central storage at rest: rows against column blocks on the four real datasets (bytes/reading, readings/s)"

    /// One measured combination.
    struct Case: Hashable {
        var data: String
        var batchReadings: Int
        var layout: ReadingLayout
    }

    struct Measurement {
        var readings = 0
        var blocks = 0
        var bytes: Int64 = 0
        var wireBytes = 0
        var rates: [Double] = []
    }

    static func run(_ options: BenchmarkOptions) async throws {
        let rounds = max(1, SpoolBenchmark.intOption(options, "--rounds") ?? 3)
        let blockReadings = SpoolBenchmark.intOption(options, "--block-readings") ?? 4_096
        let batchSizes = SpoolBenchmark.intOption(options, "--batch-readings").map { [$0] } ?? [10_000, 100_000]
        let datasets: [RealDataset]
        do {
            datasets = try RealDataset.codecFileNames.map {
                try RealDataset.load(options.dataDirectory.appendingPathComponent($0))
            }
        } catch {
            throw BenchmarkError("real datasets not found in \(options.dataDirectory.path): \(error)")
        }
        let total = datasets.reduce(0) { $0 + $1.readings.count }
        print(
            "storage: \(total) real readings (\(datasets.map { "\($0.name) \($0.readings.count)" }.joined(separator: ", "))), batches of \(batchSizes.map(String.init).joined(separator: " and ")), blocks of at most \(blockReadings), synchronous full, \(rounds) interleaved rounds\n"
        )

        // Each dataset alone (one stream), then all four in one database (a stream each).
        var sets: [(name: String, datasets: [Int])] = datasets.indices.map { (datasets[$0].name, [$0]) }
        sets.append(("all four", Array(datasets.indices)))
        let emptyBytes = try emptyDatabaseBytes(blockReadings: blockReadings)
        var results: [Case: Measurement] = [:]
        for round in 1...rounds {
            for set in sets {
                for batchReadings in batchSizes {
                    let batches = set.datasets.flatMap { index in
                        datasets[index].batches(of: batchReadings, stream: 0x5EED_0000_0000_0001 + UInt64(index))
                    }
                    for layout in ReadingLayout.allCases {
                        let key = Case(data: set.name, batchReadings: batchReadings, layout: layout)
                        let measured = try store(batches, layout: layout, blockReadings: blockReadings)
                        var result = results[key] ?? Measurement()
                        if round == 1 {
                            result.readings = measured.readings
                            result.blocks = measured.blocks
                            result.bytes = measured.bytes
                            let encoder = BatchEncoder()
                            result.wireBytes = try batches.reduce(0) { $0 + (try encoder.encode($1)).count }
                        } else if measured.bytes != result.bytes {
                            throw BenchmarkError("\(key): \(measured.bytes) bytes at rest, \(result.bytes) in round 1")
                        }
                        result.rates.append(measured.rate)
                        results[key] = result
                    }
                }
            }
        }

        var table = TextTable(
            "data", "batch", "layout", "readings", "blocks", "at rest B/reading", "net of empty schema B/reading",
            "wire B/reading", "ingest readings/s (median)", "min-max")
        for set in sets {
            for batchReadings in batchSizes {
                for layout in ReadingLayout.allCases {
                    let key = Case(data: set.name, batchReadings: batchReadings, layout: layout)
                    guard let result = results[key] else { continue }
                    let readings = Double(result.readings)
                    let rates = result.rates.sorted()
                    table.append(
                        set.name, SpoolBenchmark.grouped(Double(batchReadings)), layout.rawValue,
                        String(result.readings), layout == .blocks ? String(result.blocks) : "-",
                        SpoolBenchmark.format(Double(result.bytes) / readings, 2),
                        SpoolBenchmark.format(Double(result.bytes - (emptyBytes[layout] ?? 0)) / readings, 2),
                        SpoolBenchmark.format(Double(result.wireBytes) / readings, 2),
                        SpoolBenchmark.grouped(rates[rates.count / 2]),
                        SpoolBenchmark.grouped(rates[0]) + "-" + SpoolBenchmark.grouped(rates[rates.count - 1]))
                }
            }
        }
        print(table.render())
        print(
            "\nempty schema: \(emptyBytes[.rows] ?? 0) bytes (rows), \(emptyBytes[.blocks] ?? 0) bytes (blocks); target ≤ 3.0 B/reading at rest (issue 19)"
        )
    }

    /// Stores `batches` one transaction each into a new database, then checkpoints and truncates
    /// the WAL as a clean stop does, and checks every reading is there.
    static func store(_ batches: [Batch], layout: ReadingLayout, blockReadings: Int) throws
        -> (readings: Int, blocks: Int, bytes: Int64, rate: Double)
    {
        try withTemporaryDirectory(prefix: "storage-bench") { directory in
            let path = directory + "/collector.sqlite"
            var configuration = SQLiteReadingStore.Configuration()
            configuration.layout = layout
            configuration.blockReadings = blockReadings
            let store = try SQLiteReadingStore(path: path, configuration: configuration)
            let readings = batches.reduce(0) { $0 + $1.readings.count }
            let started = ContinuousClock.now
            for batch in batches { _ = try store.store([batch], receivedAt: 1) }
            let seconds = SpoolBenchmark.seconds(ContinuousClock.now - started)
            store.finishForShutdown()
            let files = SQLiteDatabase.fileSizes(ofDatabaseAt: path)
            let database = try SQLiteDatabase(path: path)
            let count = try database.prepare(
                layout == .rows
                    ? "SELECT count(*), 0 FROM readings" : "SELECT coalesce(sum(readings), 0), count(*) FROM reading_blocks")
            _ = try count.step()
            guard count.int64(at: 0) == Int64(readings) else {
                throw BenchmarkError("\(layout.rawValue): stored \(count.int64(at: 0)) of \(readings) readings")
            }
            return (readings, Int(count.int64(at: 1)), files.database + files.wal, Double(readings) / seconds)
        }
    }

    /// Bytes of a database of each layout with its schema and nothing stored, after the checkpoint.
    static func emptyDatabaseBytes(blockReadings: Int) throws -> [ReadingLayout: Int64] {
        var sizes: [ReadingLayout: Int64] = [:]
        for layout in ReadingLayout.allCases {
            sizes[layout] = try withTemporaryDirectory(prefix: "storage-bench") { directory in
                let path = directory + "/collector.sqlite"
                var configuration = SQLiteReadingStore.Configuration()
                configuration.layout = layout
                configuration.blockReadings = blockReadings
                let store = try SQLiteReadingStore(path: path, configuration: configuration)
                store.finishForShutdown()
                let files = SQLiteDatabase.fileSizes(ofDatabaseAt: path)
                return files.database + files.wal
            }
        }
        return sizes
    }
}
