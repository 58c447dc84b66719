import CloudCollector
import EdgeSyncCodec
import EdgeSyncSQLite
import Foundation

/// Issue 8's export: a collector database holding 10 million readings of one series (filled through
/// the store, not timed as export), the real `cloud-collector` binary serving it, and one
/// `GET /v1/readings?format=csv` streaming all of it to a client that counts rows as they arrive.
/// Reports readings/s and the collector's peak RSS, which must not grow with the export.
enum QueryBenchmark: BenchmarkScenario {
    static let name = "query"
    static let summary = "export: 10 M readings of one series as CSV from cloud-collector (readings/s, peak RSS)"

    static let operatorToken = "bench-operator-token-0123456789"
    static let seriesKey = "temperature,site=bench celsius"

    static func run(_ options: BenchmarkOptions) async throws {
        let readings = SpoolBenchmark.intOption(options, "--readings") ?? 10_000_000
        IngestBenchmark.dropsQueryIndex = options.arguments.contains("--without-query-index")
        let formatIndex = options.arguments.firstIndex(of: "--format")
        let format = formatIndex.flatMap { $0 + 1 < options.arguments.count ? options.arguments[$0 + 1] : nil } ?? "csv"
        let collector = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("cloud-collector").path
        guard FileManager.default.isExecutableFile(atPath: collector) else {
            throw BenchmarkError(
                "\(collector) is missing: build it first (swift build -c release --product cloud-collector)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("query-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)

        print("query: storing \(readings) readings of one series through the store …")
        let fillStart = ContinuousClock.now
        try fill(databasePath: directory + "/" + CollectorSchema.databaseFileName, readings: readings)
        let fillSeconds = SpoolBenchmark.seconds(ContinuousClock.now - fillStart)
        if options.arguments.contains("--fill-only") {
            print("fill: \(SpoolBenchmark.grouped(Double(readings) / fillSeconds)) readings/s")
            return
        }
        let databaseBytes = SQLiteDatabase.fileSizes(
            ofDatabaseAt: directory + "/" + CollectorSchema.databaseFileName
        ).total

        var table = TextTable(
            "window bound", "readings", "format", "fill readings/s", "seconds", "readings/s", "MB/s", "database",
            "collector RSS idle", "collector peak RSS")
        // Baseline in the same run: the same database with every series' block span set to the
        // maximum, which makes each window scan every block entry after its start, as schema 3 did.
        for (label, span) in [("max_block_span (schema 4)", nil), ("none: unbounded scan (schema 3, baseline)", Int64.max)] {
            if let span {
                try SQLiteDatabase(path: directory + "/" + CollectorSchema.databaseFileName)
                    .execute("UPDATE series SET max_block_span = \(span)")
            }
            // One request returns at most the query API's limit (10 M): a larger series is exported
            // from its start, which is where an unbounded window scan reads the most block entries.
            let exported = min(readings, QueryEndpoint.Configuration().maximumReadingLimit)
            let run = try export(collector: collector, directory: directory, format: format, readings: exported)
            table.append(
                label, String(run.rows), format, SpoolBenchmark.grouped(Double(readings) / fillSeconds),
                SpoolBenchmark.format(run.seconds, 2), SpoolBenchmark.grouped(Double(run.rows) / run.seconds),
                SpoolBenchmark.format(Double(run.bytes) / run.seconds / 1_048_576, 1),
                SpoolBenchmark.format(Double(databaseBytes) / 1_048_576, 0) + " MB",
                SpoolBenchmark.format(run.idleRSS, 1) + " MB", SpoolBenchmark.format(run.peakRSS, 1) + " MB")
            guard run.rows == exported else { throw BenchmarkError("received \(run.rows) of \(exported) readings") }
        }
        print(table.render())
        print("\n(1 MB = 2^20 bytes; peak RSS is the collector's VmHWM after the export)")
    }

    /// Starts the real collector on `directory`, streams the whole series once, stops it.
    static func export(collector: String, directory: String, format: String, readings: Int) throws
        -> (rows: Int, bytes: Int, seconds: Double, idleRSS: Double, peakRSS: Double)
    {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: collector)
        server.arguments = ["serve", "--listen", "127.0.0.1:0", "--data-dir", directory]
        server.environment = ProcessInfo.processInfo.environment.merging(
            ["CLOUD_COLLECTOR_OPERATOR_TOKEN": operatorToken]) { _, new in new }
        let serverErrors = Pipe()
        server.standardError = serverErrors
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        let port = try ReplayBenchmark.listeningPort(serverErrors.fileHandleForReading)
        let idleRSS = ReplayBenchmark.peakResidentMegabytes(pid: server.processIdentifier)

        let series = seriesKey.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? seriesKey
        let target = "/v1/readings?device=bench-gateway&series=\(series)&format=\(format)&limit=\(readings)"
        print("query: GET \(target) …")
        let start = ContinuousClock.now
        let received = try StreamingCount.get(port: port, target: target, token: operatorToken)
        let elapsed = SpoolBenchmark.seconds(ContinuousClock.now - start)
        let peakRSS = ReplayBenchmark.peakResidentMegabytes(pid: server.processIdentifier)
        server.terminate()
        server.waitUntilExit()
        // CSV has a header line, JSON one line before and one after the readings.
        let rows = received.lines - (format == "csv" ? 1 : (format == "json" ? 2 : 0))
        return (rows, received.bytes, elapsed, idleRSS, peakRSS)
    }

    /// One stream, one series, a reading per second with decimal values, 100,000 per transaction.
    static func fill(databasePath: String, readings: Int) throws {
        var configuration = SQLiteReadingStore.Configuration()
        configuration.synchronous = .normal
        configuration.maintainsQueryIndex = !IngestBenchmark.dropsQueryIndex
        let store = try SQLiteReadingStore(path: databasePath, configuration: configuration)
        let start: Int64 = 1_700_000_000_000_000_000
        var stored = 0
        while stored < readings {
            let count = min(100_000, readings - stored)
            let batch = Batch(
                device: "bench-gateway", stream: 42, firstSequence: UInt64(stored + 1), seriesKeys: [seriesKey],
                readings: (stored..<stored + count).map { index in
                    Reading(
                        series: 0, timestamp: start + Int64(index) * 1_000_000_000,
                        value: Double(index % 4000) / 100 - 10
                    )
                }, sentAt: start)
            stored += try store.store([batch], receivedAt: start).outcomes[0].accepted
        }
    }
}

/// A GET whose chunked body is counted (bytes and lines) as it arrives and never kept.
enum StreamingCount {
    static func get(port: Int, target: String, token: String) throws -> (bytes: Int, lines: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw BenchmarkError("socket: errno \(errno)") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw BenchmarkError("connect: errno \(errno)") }
        let request = Array(
            "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n"
                .utf8)
        guard request.withUnsafeBytes({ send(descriptor, $0.baseAddress, $0.count, 0) }) == request.count else {
            throw BenchmarkError("send failed")
        }

        var buffer = [UInt8](repeating: 0, count: 1 << 18)
        var start = 0
        var end = 0
        func fill() throws {
            if start > 0 {
                buffer.replaceSubrange(0..<end - start, with: buffer[start..<end])
                end -= start
                start = 0
            }
            let count = buffer.withUnsafeMutableBytes { raw in
                recv(descriptor, raw.baseAddress.map { $0 + end }, raw.count - end, 0)
            }
            guard count > 0 else { throw BenchmarkError("connection closed early") }
            end += count
        }
        func line() throws -> String {
            while true {
                if let newline = buffer[start..<end].firstIndex(of: 0x0A) {
                    let text = String(decoding: buffer[start..<newline], as: UTF8.self)
                    start = newline + 1
                    return text.hasSuffix("\r") ? String(text.dropLast()) : text
                }
                try fill()
            }
        }
        let status = try line()
        guard status.hasPrefix("HTTP/1.1 200") else { throw BenchmarkError("answer: \(status)") }
        var chunked = false
        while true {
            let header = try line()
            if header.isEmpty { break }
            if header.lowercased() == "transfer-encoding: chunked" { chunked = true }
        }
        guard chunked else { throw BenchmarkError("the answer is not chunked") }
        var bytes = 0
        var lines = 0
        while true {
            guard let size = Int(try line(), radix: 16) else { throw BenchmarkError("bad chunk size") }
            if size == 0 { break }
            var remaining = size
            while remaining > 0 {
                if start == end { try fill() }
                let take = min(remaining, end - start)
                for byte in buffer[start..<start + take] where byte == 0x0A { lines += 1 }
                start += take
                remaining -= take
                bytes += take
            }
            _ = try line()  // the CRLF after the chunk
        }
        return (bytes, lines)
    }
}
