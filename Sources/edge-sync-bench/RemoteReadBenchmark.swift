import CloudCollector
import EdgeSyncCodec
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import PrometheusRemoteWrite

/// Issue 22's read path: Prometheus remote read (`POST /api/v1/read`) from a collector database
/// holding known data, against the CSV export (`GET /v1/readings?format=csv`) of the same series
/// in the same run. Two datasets: N readings of one series, and S series × M readings. The
/// collector runs in this process (its remote read sample limit raised to the dataset's size).
enum RemoteReadBenchmark: BenchmarkScenario {
    static let name = "remote-read"
    static let summary =
        "query: Prometheus remote read samples/s (1 series × N, S series × M) vs the CSV export, same data"

    static func run(_ options: BenchmarkOptions) async throws {
        let single = SpoolBenchmark.intOption(options, "--readings") ?? 1_000_000
        let seriesCount = SpoolBenchmark.intOption(options, "--series") ?? 1000
        let perSeries = SpoolBenchmark.intOption(options, "--per-series") ?? 1000
        var table = TextTable("dataset", "method", "samples", "seconds", "samples/s", "answer MB", "peak RSS MB")
        for (label, series, readings) in [
            ("1 series × \(single)", 1, single), ("\(seriesCount) series × \(perSeries)", seriesCount, perSeries),
        ] {
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("remote-read-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            print("remote-read: storing \(label) …")
            try fill(
                databasePath: directory + "/" + CollectorSchema.databaseFileName, series: series, readings: readings)
            var configuration = CollectorService.Configuration(dataDirectory: directory)
            configuration.port = 0
            configuration.operatorToken = QueryBenchmark.operatorToken
            configuration.prometheus.maximumSamples = series * readings
            configuration.prometheus.maximumSeries = series
            configuration.query.maximumReadingLimit = max(readings, 1000)
            let service = try CollectorService(configuration: configuration)
            let serving = Task { try await service.run() }
            defer { service.shutdown() }
            let port = try await service.localAddress.port

            // Remote read of everything: one request, as Prometheus would send for `{__name__=~"bench.*"}`.
            let request = ReadRequest(queries: [
                .init(
                    startTimestamp: 0, endTimestamp: .max,
                    matchers: [.init("__name__", .regexMatch, "bench_.*"), .init("device", .equal, "bench-gateway")])
            ])
            for round in 0..<2 {
                let start = ContinuousClock.now
                let response = try await onDedicatedThread {
                    let client = BlockingHTTPClient(port: port)
                    defer { client.close() }
                    return try client.post(
                        PrometheusEndpoint.readPath, body: request.snappyEncoded(),
                        headers: [
                            ("Authorization", "Bearer \(QueryBenchmark.operatorToken)"),
                            ("Content-Encoding", "snappy"), ("Content-Type", "application/x-protobuf"),
                        ])
                }
                let seconds = SpoolBenchmark.seconds(ContinuousClock.now - start)
                guard response.status == 200 else {
                    throw BenchmarkError(
                        "remote read: \(response.status) \(String(decoding: response.body, as: UTF8.self))")
                }
                let message = try Snappy.decompress(response.body, maximumDecodedBytes: 1 << 31)
                let decoded = try ReadResponse.decode(protobuf: message)
                let samples = decoded.results.first?.reduce(0) { $0 + $1.samples.count } ?? 0
                guard samples == series * readings else {
                    throw BenchmarkError("remote read returned \(samples) of \(series * readings) samples")
                }
                table.append(
                    label, "remote read\(round == 0 ? " (cold)" : "")", String(samples),
                    SpoolBenchmark.format(seconds, 2),
                    SpoolBenchmark.grouped(Double(samples) / seconds),
                    SpoolBenchmark.format(Double(response.body.count) / 1_048_576, 1),
                    SpoolBenchmark.format(ReplayBenchmark.peakResidentMegabytes(pid: getpid()), 0))
            }
            // Baseline: the CSV export of the same readings, series by series.
            let start = ContinuousClock.now
            var rows = 0
            var bytes = 0
            for index in 0..<series {
                let key = seriesKey(index).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
                let target = "/v1/readings?device=bench-gateway&series=\(key)&format=csv&limit=\(max(readings, 1000))"
                let received = try await onDedicatedThread {
                    try StreamingCount.get(port: port, target: target, token: QueryBenchmark.operatorToken)
                }
                rows += received.lines - 1
                bytes += received.bytes
            }
            let seconds = SpoolBenchmark.seconds(ContinuousClock.now - start)
            guard rows == series * readings else {
                throw BenchmarkError("CSV returned \(rows) of \(series * readings)")
            }
            table.append(
                label, "CSV export (baseline)", String(rows), SpoolBenchmark.format(seconds, 2),
                SpoolBenchmark.grouped(Double(rows) / seconds), SpoolBenchmark.format(Double(bytes) / 1_048_576, 1),
                SpoolBenchmark.format(ReplayBenchmark.peakResidentMegabytes(pid: getpid()), 0))
            service.shutdown()
            try await serving.value
        }
        print(table.render())
        print("\n(seconds: request sent to whole answer received; peak RSS is this process's, collector included)")
    }

    static func seriesKey(_ index: Int) -> String { "bench_\(index),site=bench value" }

    /// One stream, `series` series of `readings` readings each, one per second, 100,000 per transaction.
    static func fill(databasePath: String, series: Int, readings: Int) throws {
        var configuration = SQLiteReadingStore.Configuration()
        configuration.synchronous = .normal
        let store = try SQLiteReadingStore(path: databasePath, configuration: configuration)
        let start: Int64 = 1_700_000_000_000_000_000
        let keys = (0..<series).map(seriesKey)
        var sequence: UInt64 = 1
        var index = 0
        let total = series * readings
        while index < total {
            let count = min(100_000, total - index)
            // Time-major: every series gets its reading of second t before any gets t + 1, as a
            // gateway sends them.
            let batch = Batch(
                device: "bench-gateway", stream: 42, firstSequence: sequence, seriesKeys: keys,
                readings: (index..<index + count).map { position in
                    Reading(
                        series: position % series, timestamp: start + Int64(position / series) * 1_000_000_000,
                        value: Double(position % 4000) / 100 - 10)
                }, sentAt: start)
            _ = try store.store([batch], receivedAt: start)
            sequence += UInt64(count)
            index += count
        }
    }
}
