import CloudCollector
import EdgeSyncCodec
import EdgeSyncPostgres
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation

/// The collector on PostgreSQL (issue 9): a throwaway server from Debian's binaries on loopback
/// (commits durable: fsync and synchronous_commit on), 16 simulated gateways posting real-data
/// batches of 10,000 readings to one collector and to two collectors sharing the database. In the
/// same run, for comparison: the same readings COPYed into an unindexed table on one connection
/// (what PostgreSQL itself can take), the store without HTTP in both COPY formats, and the embedded
/// SQLite collector over HTTP.
enum PostgresIngestBenchmark: BenchmarkScenario {
    static let name = "ingest-pg"
    static let summary =
        "collector on PostgreSQL: 16 gateways into 1 and 2 collectors (readings/s), COPY formats, raw COPY and SQLite baselines"

    static func run(_ benchmarkOptions: BenchmarkOptions) async throws {
        let arguments = benchmarkOptions.arguments
        var batchesPerGateway = 20
        if let flag = arguments.firstIndex(of: "--batches"), flag + 1 < arguments.count,
            let value = Int(arguments[flag + 1])
        {
            batchesPerGateway = value
        }
        let gateways = 16
        let batchSize = 10_000
        let (datasets, workloads) = try IngestBenchmark.makeWorkloads(
            benchmarkOptions, gateways: gateways, batchesPerGateway: batchesPerGateway, batchSize: batchSize)
        let frames = try workloads.map { try $0.map { try BatchEncoder().encode($0) } }
        let total = gateways * batchesPerGateway * batchSize
        print(
            "ingest-pg: \(gateways) gateways × \(batchesPerGateway) batches × \(batchSize) readings = \(total) readings (real data: \(datasets.map(\.name).joined(separator: ", ")))"
        )
        let server = try await PostgresTestServer.make(settings: .bulkLoad)
        defer { Task { await server.destroy() } }
        print("PostgreSQL: \(try await server.psql("SHOW server_version")) on loopback, fsync on, synchronous_commit on\n")

        var table = TextTable("run", "readings/s", "vs raw COPY", "p50 batch", "p99 batch")
        let raw = try await server.withDatabase(prefix: "raw") { try rawCopy(workloads, url: $0) }
        table.append("raw COPY, unindexed table, 1 connection (ceiling)", IngestBenchmark.rate(raw), "1.00×", "-", "-")
        func ratio(_ rate: Double) -> String { String(format: "%.2f×", rate / raw) }

        for format in PostgresCopyFormat.allCases {
            let rate = try await server.withDatabase(prefix: "direct") {
                try storeDirect(workloads, url: $0, format: format)
            }
            table.append("collector store, no HTTP, COPY \(format.rawValue), 1 batch/transaction", IngestBenchmark.rate(rate), ratio(rate), "-", "-")
        }
        for collectors in [1, 2] {
            let result = try await server.withDatabase(prefix: "http") {
                try await overHTTP(frames, readings: total, url: $0, collectors: collectors)
            }
            table.append(
                "\(collectors) collector\(collectors == 1 ? "" : "s") on PostgreSQL, 16 gateways over HTTP",
                IngestBenchmark.rate(result.readingsPerSecond), ratio(result.readingsPerSecond),
                IngestBenchmark.milliseconds(result.p50), IngestBenchmark.milliseconds(result.p99))
        }
        let sqlite = try await withTemporaryDirectory(prefix: "ingest-pg") { directory in
            try await IngestBenchmark.overHTTP(frames, readings: total, directory: directory, synchronous: .normal).0
        }
        table.append(
            "baseline: 1 collector on embedded SQLite (synchronous normal), over HTTP",
            IngestBenchmark.rate(sqlite.readingsPerSecond), ratio(sqlite.readingsPerSecond),
            IngestBenchmark.milliseconds(sqlite.p50), IngestBenchmark.milliseconds(sqlite.p99))
        print(table.render())
    }

    /// The same rows COPYed (binary) into a table without keys or indexes, one COPY per batch in its
    /// own transaction, from one connection: PostgreSQL's own ceiling on this machine.
    static func rawCopy(_ workloads: [[Batch]], url: String) throws -> Double {
        let connection = try PostgresConnection(url: url)
        try connection.execute(
            """
            CREATE TABLE readings (device text, stream bigint, seq bigint, series bigint, timestamp bigint,
                                   value double precision)
            """)
        let start = ContinuousClock.now
        var copied = 0
        for round in 0..<(workloads.first?.count ?? 0) {
            for batches in workloads {
                let batch = batches[round]
                try connection.transaction { connection in
                    copied += try connection.copy(
                        "COPY readings (stream, seq, series, timestamp, value) FROM STDIN (FORMAT binary)", format: .binary
                    ) { writer in
                        for (index, reading) in batch.readings.enumerated() {
                            try writer.startRow(fields: 5)
                            writer.append(Int64(bitPattern: batch.stream))
                            writer.append(Int64(batch.firstSequence) + Int64(index))
                            writer.append(Int64(reading.series))
                            writer.append(reading.timestamp)
                            writer.append(reading.value)
                        }
                    }
                }
            }
        }
        return Double(copied) / IngestBenchmark.seconds(since: start)
    }

    /// The collector's store without HTTP: one batch per transaction, the writer's slowest case.
    static func storeDirect(_ workloads: [[Batch]], url: String, format: PostgresCopyFormat) throws -> Double {
        var configuration = PostgresReadingStore.Configuration()
        configuration.copyFormat = format
        let store = try PostgresReadingStore(session: PostgresSession.Configuration(url: url), configuration: configuration)
        let start = ContinuousClock.now
        var stored = 0
        for round in 0..<(workloads.first?.count ?? 0) {
            for batches in workloads {
                stored += try store.store([batches[round]], receivedAt: 0).outcomes[0].accepted
            }
        }
        return Double(stored) / IngestBenchmark.seconds(since: start)
    }

    /// `collectors` collectors in this process on one database; gateway g posts to collector g % n.
    static func overHTTP(_ frames: [[[UInt8]]], readings: Int, url: String, collectors: Int)
        async throws -> IngestBenchmark.LoadResult
    {
        var services: [CollectorService] = []
        var serving: [Task<Void, any Error>] = []
        var ports: [Int] = []
        for _ in 0..<collectors {
            var configuration = CollectorService.Configuration(dataDirectory: "")
            configuration.port = 0
            configuration.postgresURL = url
            let service = try CollectorService(configuration: configuration)
            services.append(service)
            serving.append(Task { try await service.run() })
            ports.append(try await service.localAddress.port)
        }
        let connection = try PostgresConnection(url: url)
        let tokens = try frames.indices.map { gateway in
            try PostgresTokenStore.add(device: "gateway-\(gateway)", in: connection, now: 0).text
        }
        let result = try await IngestBenchmark.load(
            frames, tokens: tokens, ports: frames.indices.map { ports[$0 % collectors] }, readings: readings)
        for service in services { service.shutdown() }
        for task in serving { try await task.value }
        let stored = try connection.query("SELECT count(*) FROM readings").requiredInt64(0, 0)
        guard stored == Int64(readings) else {
            throw BenchmarkError("stored \(stored) readings, expected \(readings)")
        }
        return result
    }
}
