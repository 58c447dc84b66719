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

    /// How the readings end up: rows, blocks as ingest writes them, or blocks after the
    /// background merge of small blocks has come to rest.
    enum Variant: String, CaseIterable {
        case rows
        case blocks
        case merged = "blocks, merged"
    }

    /// One measured combination.
    struct Case: Hashable {
        var data: String
        var batchReadings: Int
        var variant: Variant
    }

    struct Measurement {
        var readings = 0
        var blocks = 0
        /// Database + WAL files after the checkpoint.
        var bytes: Int64 = 0
        /// The same without the database's free pages (freed by merges, reused by later ingest).
        var usedBytes: Int64 = 0
        var wireBytes = 0
        /// Ingest readings/s, or for `merged` readings merged per second of merging.
        var rates: [Double] = []
    }

    /// What one store run measured.
    struct Stored {
        var readings: Int
        var blocks: Int
        var bytes: Int64
        var usedBytes: Int64
        var rate: Double
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
                        let measured = try store(batches, layout: layout, blockReadings: blockReadings)
                        for (variant, stored) in measured {
                            let key = Case(data: set.name, batchReadings: batchReadings, variant: variant)
                            var result = results[key] ?? Measurement()
                            if round == 1 {
                                result.readings = stored.readings
                                result.blocks = stored.blocks
                                result.bytes = stored.bytes
                                result.usedBytes = stored.usedBytes
                                let encoder = BatchEncoder()
                                result.wireBytes = try batches.reduce(0) { $0 + (try encoder.encode($1)).count }
                            } else if stored.bytes != result.bytes {
                                throw BenchmarkError("\(key): \(stored.bytes) bytes at rest, \(result.bytes) in round 1")
                            }
                            result.rates.append(stored.rate)
                            results[key] = result
                        }
                    }
                }
            }
        }

        var table = TextTable(
            "data", "batch", "layout", "readings", "blocks", "at rest B/reading", "in use B/reading",
            "net of empty schema B/reading", "wire B/reading", "readings/s (median)", "min-max")
        for set in sets {
            for batchReadings in batchSizes {
                for variant in Variant.allCases {
                    let key = Case(data: set.name, batchReadings: batchReadings, variant: variant)
                    guard let result = results[key] else { continue }
                    let readings = Double(result.readings)
                    let rates = result.rates.sorted()
                    let empty = emptyBytes[variant == .rows ? .rows : .blocks] ?? 0
                    table.append(
                        set.name, SpoolBenchmark.grouped(Double(batchReadings)), variant.rawValue,
                        String(result.readings), variant == .rows ? "-" : String(result.blocks),
                        SpoolBenchmark.format(Double(result.bytes) / readings, 2),
                        SpoolBenchmark.format(Double(result.usedBytes) / readings, 2),
                        SpoolBenchmark.format(Double(result.usedBytes - empty) / readings, 2),
                        SpoolBenchmark.format(Double(result.wireBytes) / readings, 2),
                        SpoolBenchmark.grouped(rates[rates.count / 2]),
                        SpoolBenchmark.grouped(rates[0]) + "-" + SpoolBenchmark.grouped(rates[rates.count - 1]))
                }
            }
        }
        print(table.render())
        print(
            """

            readings/s: ingest (store only, one transaction per batch); for "blocks, merged", readings merged per second
            of merging after ingest. In use: without the free pages merges leave in the file (later ingest reuses them).
            Empty schema: \(emptyBytes[.rows] ?? 0) bytes (rows), \(emptyBytes[.blocks] ?? 0) bytes (blocks). Target ≤ 3.0 B/reading at rest (issue 19).
            """)
    }

    /// Stores `batches` one transaction each into a new database, then checkpoints and truncates
    /// the WAL as a clean stop does, and checks every reading is there. For blocks, then merges
    /// small blocks until the merge comes to rest and measures again.
    static func store(_ batches: [Batch], layout: ReadingLayout, blockReadings: Int) throws -> [(Variant, Stored)] {
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
            var results = [(layout == .rows ? Variant.rows : .blocks, try measure(path, layout, readings, seconds))]
            guard layout == .blocks else { return results }
            let merging = ContinuousClock.now
            while store.performMaintenance() {}
            let mergeSeconds = SpoolBenchmark.seconds(ContinuousClock.now - merging)
            store.finishForShutdown()
            results.append((.merged, try measure(path, layout, readings, mergeSeconds)))
            return results
        }
    }

    /// Sizes and counts of the database at `path`, checking it holds `readings` readings.
    static func measure(_ path: String, _ layout: ReadingLayout, _ readings: Int, _ seconds: Double) throws -> Stored {
        let files = SQLiteDatabase.fileSizes(ofDatabaseAt: path)
        let database = try SQLiteDatabase(path: path)
        let count = try database.prepare(
            layout == .rows
                ? "SELECT count(*), 0 FROM readings"
                : "SELECT coalesce(sum(readings), 0), count(*) FROM reading_blocks")
        _ = try count.step()
        guard count.int64(at: 0) == Int64(readings) else {
            throw BenchmarkError("\(layout.rawValue): stored \(count.int64(at: 0)) of \(readings) readings")
        }
        let free = (try database.pragmaInteger("freelist_count") ?? 0) * (try database.pragmaInteger("page_size") ?? 0)
        return Stored(
            readings: readings, blocks: Int(count.int64(at: 1)), bytes: files.database + files.wal,
            usedBytes: files.database + files.wal - free, rate: Double(readings) / seconds)
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
