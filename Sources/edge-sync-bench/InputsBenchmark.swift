import EdgeAgent
import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation
import HTTPCore
import OpenTelemetryMetrics

/// The edge agent's inputs: the line protocol parser alone on one core (against a String-splitting
/// baseline in the same run), and line protocol over HTTP from concurrent keep-alive clients (wrk)
/// into a spool with fsync `full`, counting only readings that were answered 204 and are durable.
enum InputsBenchmark: BenchmarkScenario {
    static let name = "inputs"
    static let summary =
        "line protocol parser lines/s (one core); HTTP line protocol, OTLP and MQTT QoS 1 → spool (fsync full) readings/s"

    static func run(_ options: BenchmarkOptions) async throws {
        let seconds = options.integer("--seconds") ?? 10
        let linesPerRequest = options.integer("--lines") ?? 5_000
        let datasets = try RealDataset.loadAll(from: options.dataDirectory)
        let lines = lineProtocol(datasets)
        print("inputs: \(lines.count) lines of real data as line protocol (one field per line), \(ProcessInfo.processInfo.activeProcessorCount) cores")

        var parserTable = TextTable("parser", "lines", "seconds", "lines/s", "× baseline")
        let text = Array(lines.joined(separator: "\n").utf8)
        let baseline = measure(seconds: 3) { splittingBaseline(text) }
        let fast = measure(seconds: 3) { parse(text) }
        parserTable.append(
            "String split + Double() (baseline)", String(lines.count), String(format: "%.2f", baseline.seconds),
            rate(Double(lines.count) * baseline.rounds / baseline.seconds), "1.0")
        parserTable.append(
            "LineProtocolParser", String(lines.count), String(format: "%.2f", fast.seconds),
            rate(Double(lines.count) * fast.rounds / fast.seconds),
            String(format: "%.1f", (fast.rounds / fast.seconds) / (baseline.rounds / baseline.seconds)))
        print(parserTable.render())

        var httpTable = TextTable(
            "load", "connections", "requests/s", "readings/s durable", "p50", "p99", "spool check", "agent RSS")
        // Eight different bodies of `linesPerRequest` readings each, cycled by wrk.
        let slices = (0..<8).map { index in
            let start = (index * linesPerRequest) % max(1, lines.count - linesPerRequest)
            return start..<start + linesPerRequest
        }
        let plain = slices.map { Array(lines[$0].joined(separator: "\n").utf8) }
        // OTLP against line protocol of the same points, both gzip, in the same run.
        let otlp = slices.map { Gzip.compress(otlpRequest(datasets, readings: $0).encoded()) }
        let lineProtocol = HTTPLoad(path: "/write?db=bench", bodies: plain)
        let lineProtocolGzip = HTTPLoad(
            path: "/write?db=bench", bodies: plain.map { Gzip.compress($0) }, encoding: "gzip")
        let otlpGzip = HTTPLoad(
            path: "/v1/metrics", bodies: otlp, contentType: "application/x-protobuf", encoding: "gzip")
        // The per-spool series limit checks every write's series: measured off and on in the same run.
        let defaultMaxSeries = Spool.Configuration(dataDirectory: "", device: "").maxSeries
        let loads: [(name: String, load: HTTPLoad, connections: [Int], maxSeries: Int?)] = [
            ("POST /write, \(linesPerRequest) lines, gzip no, spool.max_series off", lineProtocol, [4], nil),
            ("POST /write, \(linesPerRequest) lines, gzip no", lineProtocol, [4, 16], defaultMaxSeries),
            ("POST /write, \(linesPerRequest) lines, gzip (baseline)", lineProtocolGzip, [4], defaultMaxSeries),
            ("POST /v1/metrics, \(linesPerRequest) points, gzip protobuf", otlpGzip, [4], defaultMaxSeries),
        ]
        for (name, load, connectionCounts, maxSeries) in loads {
            for connections in connectionCounts {
                let result = try await httpLoad(
                    load, readingsPerRequest: linesPerRequest, connections: connections, seconds: seconds,
                    maxSeries: maxSeries)
                httpTable.append(
                    name, String(connections), String(format: "%.0f", result.requestsPerSecond),
                    rate(result.requestsPerSecond * Double(linesPerRequest)), String(format: "%.1f ms", result.p50),
                    String(format: "%.1f ms", result.p99), result.check,
                    String(format: "%.1f MB", BenchmarkProcess.residentMegabytes()))
            }
        }
        let otlpBytes = otlp.map(\.count).reduce(0, +) / otlp.count
        print("OTLP bodies: \(otlpBytes) bytes gzip protobuf per \(linesPerRequest) points")
        print(httpTable.render())
        print("fsync full; wrk -t1 is the load generator on the same 2 cores; 1 MB = 2^20 bytes")
        try await MQTTInputBenchmark.run(options, values: datasets.flatMap { $0.readings.map(\.value) })
    }

    /// One line per reading: `CGM glucose=5.4 1269…` (the form Telegraf and client libraries send).
    static func lineProtocol(_ datasets: [RealDataset]) -> [String] {
        var lines: [String] = []
        for dataset in datasets {
            for reading in dataset.readings {
                let field = dataset.seriesKeys[reading.series].dropFirst(dataset.name.count + 1)
                    .replacingOccurrences(of: " ", with: "\\ ")
                lines.append("\(dataset.name),source=shared \(field)=\(reading.value) \(reading.timestamp)")
            }
        }
        return lines
    }

    /// What an OpenTelemetry SDK or Collector batch looks like: one resource (service and host), one
    /// scope, a gauge per real series with its points, each point carrying an attribute.
    static func otlpRequest(_ datasets: [RealDataset], readings range: Range<Int>) -> MetricsRequest {
        var metrics: [MetricsRequest.Metric] = []
        var index = 0
        for dataset in datasets {
            var points: [Int: [MetricsRequest.NumberPoint]] = [:]
            for reading in dataset.readings {
                defer { index += 1 }
                guard range.contains(index) else { continue }
                points[reading.series, default: []].append(
                    .init(
                        attributes: [.init("source", "shared")], time: UInt64(bitPattern: reading.timestamp),
                        value: .double(reading.value)))
            }
            for (series, seriesPoints) in points.sorted(by: { $0.key < $1.key }) {
                let name = dataset.name + "." + dataset.seriesKeys[series].dropFirst(dataset.name.count + 1)
                metrics.append(.init(name: name, data: .gauge(seriesPoints)))
            }
        }
        return MetricsRequest(resources: [
            .init(
                attributes: [
                    .init("service.name", "gateway-sensors"), .init("host.name", "gw-17"),
                    .init("telemetry.sdk.language", "python"),
                ],
                scopes: [.init(name: "edge.sensors", version: "1.0", metrics: metrics)])
        ])
    }

    private static func parse(_ text: [UInt8]) -> Int {
        var parser = LineProtocolParser()
        var block = ReadingBlock()
        var count = 0
        text.withUnsafeBufferPointer { buffer in
            var start = 0
            // Blocks of about 10,000 lines, as a request body would be.
            while start < buffer.count {
                var end = min(buffer.count, start + 500_000)
                while end < buffer.count, buffer[end] != 0x0A { end += 1 }
                _ = try? parser.parseLines(
                    UnsafeBufferPointer(rebasing: buffer[start..<end]), defaultTimestamp: 0, into: &block)
                count += block.count
                block.removeAll()
                start = end + 1
            }
        }
        return count
    }

    /// What a first attempt in Swift looks like: split into Strings, parse with the standard library.
    private static func splittingBaseline(_ text: [UInt8]) -> Int {
        var count = 0
        var keys: [String: Int] = [:]
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let equals = parts[1].firstIndex(of: "="),
                let value = Double(parts[1][parts[1].index(after: equals)...]), let timestamp = Int64(parts[2])
            else { continue }
            let key = String(parts[0]) + " " + String(parts[1][..<equals])
            keys[key, default: 0] += 1
            if value.isFinite && timestamp != 0 { count += 1 }
        }
        return count
    }

    private static func measure(seconds: Double, _ body: () -> Int) -> (rounds: Double, seconds: Double) {
        let start = ContinuousClock.now
        var rounds = 0.0
        var sink = 0
        repeat {
            sink &+= body()
            rounds += 1
        } while (ContinuousClock.now - start) < .seconds(seconds)
        if sink == -1 { print(sink) }
        let elapsed = ContinuousClock.now - start
        return (rounds, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    struct LoadResult {
        var requestsPerSecond: Double
        var p50: Double
        var p99: Double
        var check: String
    }

    /// What wrk posts: bodies cycled in turn to one path.
    struct HTTPLoad {
        var path: String
        var bodies: [[UInt8]]
        var contentType = "text/plain"
        var encoding: String?
    }

    /// Serves the inputs on a fresh spool (behind `rules` when there are any) and drives them with
    /// wrk, each request a different body.
    static func httpLoad(
        _ load: HTTPLoad, readingsPerRequest: Int, connections: Int, seconds: Int, maxSeries: Int?,
        rules: [ProcessingRule] = []
    ) async throws -> LoadResult
    {
        guard let wrk = BenchmarkProcess.executable("wrk") else {
            throw BenchmarkError("the inputs benchmark needs wrk (Debian package wrk)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inputs-bench-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        var spoolConfiguration = Spool.Configuration(dataDirectory: directory.path, device: "bench")
        spoolConfiguration.fsync = .full
        spoolConfiguration.maxSeries = maxSeries
        let spool = try await Spool.open(spoolConfiguration)
        // wrk cycles eight bodies: with the retry window on, every repeat would be dropped as a retry.
        var inputs = InputEndpoints.Configuration()
        inputs.retryWindow = nil
        let processing =
            rules.isEmpty
            ? nil : ProcessingSink(rules: rules, capacity: maxSeries ?? AgentService.defaultRuleSeries, inner: spool)
        let endpoints = InputEndpoints(configuration: inputs, sink: processing ?? spool)
        var configuration = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        configuration.limits.maxBodyBytes = 32 << 20
        let server = HTTPServer(configuration: configuration, responder: endpoints)
        let serving = Task { try await server.run() }
        let address = try await server.localAddress

        let output = try await runWrk(
            wrk, load, connections: connections, seconds: seconds, address: "\(address)", directory: directory)
        server.shutdown(grace: .seconds(5))
        try await serving.value

        let (rate, completed, failed) = try wrkCounts(output)
        // Every 204 is a durable append: the spool must hold at least that many readings (requests
        // cut off when wrk stopped may have been stored without their answer being counted).
        let queued = try await spool.status().queuedReadings
        let answered = Int64(completed - failed) * Int64(readingsPerRequest)
        let check = queued >= answered && failed == 0 ? "ok (\(queued) ≥ \(answered))" : "FAILED (\(queued) < \(answered), \(Int(failed)) non-2xx)"
        return LoadResult(
            requestsPerSecond: rate, p50: BenchmarkProcess.latency(percentile: "50%", in: output) ?? 0,
            p99: BenchmarkProcess.latency(percentile: "99%", in: output) ?? 0, check: check)
    }

    /// Drives `address` with wrk for `seconds`, each request the next of `load.bodies` (written to
    /// files in `directory` for the script to read); returns wrk's output.
    static func runWrk(
        _ wrk: String, _ load: HTTPLoad, connections: Int, seconds: Int, address: String, directory: URL
    ) async throws -> String {
        var bodies: [String] = []
        for (index, body) in load.bodies.enumerated() {
            let path = directory.appendingPathComponent("body-\(index)")
            try Data(body).write(to: path)
            bodies.append(path.path)
        }
        var headers = #"["Content-Type"] = "\#(load.contentType)""#
        if let encoding = load.encoding { headers += #", ["Content-Encoding"] = "\#(encoding)""# }
        let script = directory.appendingPathComponent("inputs.lua")
        try """
            local bodies = {}
            for _, path in ipairs({\(bodies.map { "\"\($0)\"" }.joined(separator: ", "))}) do
              local file = io.open(path, "rb"); bodies[#bodies + 1] = file:read("*a"); file:close()
            end
            local counter = 0
            request = function()
              counter = counter + 1
              return wrk.format("POST", "\(load.path)", {\(headers)}, bodies[counter % #bodies + 1])
            end
            done = function(summary, latency, requests)
              io.write(string.format("completed %d non2xx %d\\n", summary.requests, summary.errors.status))
            end
            """.write(to: script, atomically: false, encoding: .utf8)
        return try await BenchmarkProcess.run(
            wrk, ["-t1", "-c\(connections)", "-d\(seconds)s", "--latency", "-s", script.path, "http://\(address)"])
    }

    /// Requests per second, requests completed and non-2xx answers from `runWrk`'s output.
    static func wrkCounts(_ output: String) throws -> (rate: Double, completed: Double, failed: Double) {
        guard let rate = BenchmarkProcess.number(after: "Requests/sec:", in: output),
            let completed = BenchmarkProcess.number(after: "completed", in: output),
            let failed = BenchmarkProcess.number(after: "non2xx", in: output)
        else { throw BenchmarkError("could not read wrk output:\n\(output)") }
        return (rate, completed, failed)
    }

    static func rate(_ perSecond: Double) -> String {
        perSecond >= 1e6 ? String(format: "%.2f M", perSecond / 1e6) : String(format: "%.0f k", perSecond / 1e3)
    }
}

extension BenchmarkOptions {
    /// The integer after `flag`, if given.
    func integer(_ flag: String) -> Int? {
        guard let index = arguments.firstIndex(of: flag), index + 1 < arguments.count else { return nil }
        return Int(arguments[index + 1])
    }
}
