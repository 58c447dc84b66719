import EdgeAgent
import EdgeSyncTestSupport
import Foundation
import PrometheusRemoteWrite

/// `remote-write`: how fast the edge agent turns Prometheus remote write bodies into readings, on one
/// core. The real datasets are sent as remote write requests of `max_samples_per_send` samples in
/// two shapes: as Prometheus sends them (every sample its own `TimeSeries` with 5 labels) and grouped
/// (each series once per request with all its samples, as some agents batch). Each is decoded in
/// three steps: Snappy alone, then the WriteRequest, then the mapping to spool readings (series keys,
/// milliseconds to nanoseconds). Rates are per CPU-second of the decoding thread, best of three.
enum RemoteWriteBenchmark: BenchmarkScenario {
    static let name = "remote-write"
    static let summary = "edge: Prometheus remote write body → readings, samples per CPU-second, real datasets"

    static func run(_ options: BenchmarkOptions) async throws {
        var samplesPerRequest = [500, 2_000, 10_000]
        if let flag = options.arguments.firstIndex(of: "--samples-per-request"), flag + 1 < options.arguments.count {
            samplesPerRequest = options.arguments[flag + 1].split(separator: ",").compactMap { Int($0) }
        }
        let datasets: [RealDataset]
        do {
            datasets = try RealDataset.loadAll(from: options.dataDirectory)
        } catch {
            throw BenchmarkError("real datasets not found in \(options.dataDirectory.path): \(error)")
        }
        print(
            "remote-write: decoding Prometheus remote write bodies, one thread, data from \(options.dataDirectory.path)\n"
        )
        var table = TextTable(
            "dataset", "shape", "samples/request", "requests", "protobuf B/sample", "snappy B/sample",
            "snappy M samples/CPU-s",
            "+ protobuf M samples/CPU-s", "→ readings M samples/CPU-s", "MB of body/CPU-s")
        for dataset in datasets {
            for (shape, oneSamplePerSeries) in [("Prometheus", true), ("grouped", false)] {
                for size in samplesPerRequest {
                    let requests = dataset.remoteWriteRequests(
                        samplesPerRequest: size, oneSamplePerSeries: oneSamplePerSeries)
                    let messages = requests.map { $0.protobufEncoded() }
                    let bodies = messages.map { Snappy.compress($0) }
                    let samples = dataset.readings.count
                    // Check once, outside the timing, that everything decodes to what was sent.
                    var decoded = 0
                    for (request, body) in zip(requests, bodies) {
                        guard try WriteRequest.decode(snappyBody: body) == request else {
                            throw BenchmarkError("\(dataset.name): a request did not round-trip")
                        }
                        decoded += try RemoteWriteReadings.decode(snappyBody: body).readings.count
                    }
                    guard decoded == samples else {
                        throw BenchmarkError("\(dataset.name): \(decoded) of \(samples) samples")
                    }

                    let limit = RemoteWriteLimits.default.maximumDecodedBytes
                    let snappy = try bestRate(samples: samples) {
                        for body in bodies { _ = try Snappy.decompress(body, maximumDecodedBytes: limit) }
                    }
                    let protobuf = try bestRate(samples: samples) {
                        for body in bodies { _ = try WriteRequest.decode(snappyBody: body) }
                    }
                    let readings = try bestRate(samples: samples) {
                        for body in bodies { _ = try RemoteWriteReadings.decode(snappyBody: body) }
                    }
                    let bodyBytes = bodies.reduce(0) { $0 + $1.count }
                    let messageBytes = messages.reduce(0) { $0 + $1.count }
                    table.append(
                        dataset.name, shape, "\(size)", "\(requests.count)",
                        CodecBenchmark.format(Double(messageBytes) / Double(samples), 1),
                        CodecBenchmark.format(Double(bodyBytes) / Double(samples), 1),
                        CodecBenchmark.format(snappy / 1e6, 1), CodecBenchmark.format(protobuf / 1e6, 2),
                        CodecBenchmark.format(readings / 1e6, 2),
                        CodecBenchmark.format(readings * Double(bodyBytes) / Double(samples) / 1e6, 0))
                }
            }
        }
        print(table.render())
        print(
            """

            Bodies are compressed by PrometheusRemoteWrite's own Snappy encoder (greedy, 4-byte hash);
            Prometheus' Go encoder compresses a little better, which only makes decoding cheaper.
            """)
    }

    /// Samples per CPU-second of this thread, the best of three loops of at least 0.5 CPU-seconds.
    /// CPU time rather than wall time, because the machine is shared: other work delays us but does
    /// not make our thread's work longer, except through caches, which the best of three smooths.
    static func bestRate(samples: Int, _ body: () throws -> Void) throws -> Double {
        var best = 0.0
        for _ in 0..<3 {
            let start = threadCPUSeconds()
            var rounds = 0
            repeat {
                try body()
                rounds += 1
            } while threadCPUSeconds() - start < 0.5
            best = max(best, Double(samples * rounds) / (threadCPUSeconds() - start))
        }
        return best
    }

    static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
