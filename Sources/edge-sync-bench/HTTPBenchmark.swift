import Foundation
import Glibc
import HTTPCore

/// The HTTP core under load: small and large POSTs over keep-alive, and the memory cost of idle
/// connections. The server runs in this process; the load generator is wrk (a separate process) when
/// installed, else a built-in blocking client, so RSS is the server's own (plus, for the idle test,
/// this process's small array of client descriptors).
enum HTTPBenchmark: BenchmarkScenario {
    static let name = "http"
    static let summary = "HTTP server: 1 KiB and 256 KiB POSTs (req/s, p50/p99), RSS with 10,000 idle connections"

    private struct LoadResult {
        var requestsPerSecond: Double
        var p50: Double  // milliseconds
        var p99: Double
        var generator: String
    }

    static func run(_ options: BenchmarkOptions) async throws {
        var seconds = 10
        if let flag = options.arguments.firstIndex(of: "--seconds"), flag + 1 < options.arguments.count,
            let value = Int(options.arguments[flag + 1])
        {
            seconds = value
        }
        let idleCount = 10_000
        try raiseDescriptorLimit(to: idleCount + 1024)
        if let flag = options.arguments.firstIndex(of: "--hold-connections"), flag + 2 < options.arguments.count {
            try await holdConnectionsAsChild(
                host: options.arguments[flag + 1], port: Int(options.arguments[flag + 2]) ?? 0, count: idleCount)
            return
        }

        let responder = HTTPClosureResponder { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            return HTTPResponse(text: "ok \(body.count)")
        }
        var configuration = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        configuration.maxConnections = idleCount + 1000
        configuration.limits.maxBodyBytes = 1 << 20
        configuration.runsHandlersOnEventLoop = options.arguments.contains("--handlers-on-loop")
        if let flag = options.arguments.firstIndex(of: "--loops"), flag + 1 < options.arguments.count {
            configuration.eventLoopCount = Int(options.arguments[flag + 1]) ?? 1
        }
        let server = HTTPServer(configuration: configuration, responder: responder)
        let serving = Task { try await server.run() }
        let address = try await server.localAddress
        let baseline = BenchmarkProcess.residentMegabytes()

        var table = TextTable(
            "load", "connections", "requests/s", "p50", "p99", "server CPU µs/request", "server RSS", "generator")
        var scenarios: [(label: String, bodySize: Int, connections: Int)] = [
            ("POST 1 KiB", 1024, 64),
            ("POST 256 KiB", 256 * 1024, 16),
        ]
        // `--small-only` runs just the first load, for profiling.
        let smallOnly = options.arguments.contains("--small-only")
        // wrk threads: one by default, leaving the second core to the server.
        var wrkThreads = 1
        if let flag = options.arguments.firstIndex(of: "--wrk-threads"), flag + 1 < options.arguments.count {
            wrkThreads = Int(options.arguments[flag + 1]) ?? 1
        }
        if smallOnly { scenarios = [scenarios[0]] }
        for scenario in scenarios {
            // CPU time this process (the server) spends per request: unlike requests/s it hardly
            // depends on what else shares the cores, so it compares builds on a busy machine.
            let cpuBefore = processCPUSeconds()
            let result = try await load(
                address: address, bodySize: scenario.bodySize, connections: scenario.connections, seconds: seconds,
                wrkThreads: wrkThreads)
            let cpuPerRequest = (processCPUSeconds() - cpuBefore) / (result.requestsPerSecond * Double(seconds))
            table.append(
                scenario.label, String(scenario.connections), String(format: "%.0f", result.requestsPerSecond),
                String(format: "%.2f ms", result.p50), String(format: "%.2f ms", result.p99),
                String(format: "%.1f", cpuPerRequest * 1e6),
                String(format: "%.1f MB", BenchmarkProcess.residentMegabytes()),
                result.generator)
        }

        if !smallOnly {
            let idle = try await holdIdleConnections(address: address, count: idleCount)
            table.append(
                "idle keep-alive", String(idle.count), "-", "-", "-", "-",
                String(format: "%.1f MB", idle.residentMegabytes), "built-in")
            idle.close()
        }

        server.shutdown(grace: .seconds(1))
        try await serving.value
        print(table.render())
        print("server RSS before load: \(String(format: "%.1f", baseline)) MB; 1 MB = 2^20 bytes")
    }

    /// User plus system CPU time of this process so far.
    private static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    // MARK: - Load generation

    private static func load(
        address: HTTPServer.Address, bodySize: Int, connections: Int, seconds: Int, wrkThreads: Int
    ) async throws -> LoadResult {
        if let wrk = BenchmarkProcess.executable("wrk") {
            return try await runWrk(
                wrk, address: address, bodySize: bodySize, connections: connections, seconds: seconds,
                wrkThreads: wrkThreads)
        }
        return try await runBuiltIn(address: address, bodySize: bodySize, connections: connections, seconds: seconds)
    }

    private static func runWrk(
        _ wrk: String, address: HTTPServer.Address, bodySize: Int, connections: Int, seconds: Int, wrkThreads: Int
    ) async throws -> LoadResult {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edge-sync-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("post.lua")
        try """
        wrk.method = "POST"
        wrk.body = string.rep("x", \(bodySize))
        wrk.headers["Content-Type"] = "application/octet-stream"
        """.write(to: script, atomically: true, encoding: .utf8)
        let arguments = [
            "-t\(wrkThreads)", "-c\(connections)", "-d\(seconds)s", "--latency", "-s", script.path,
            "http://\(address)/ingest",
        ]
        let output = try await BenchmarkProcess.run(wrk, arguments)
        guard let rate = BenchmarkProcess.number(after: "Requests/sec:", in: output),
            let p50 = BenchmarkProcess.latency(percentile: "50%", in: output),
            let p99 = BenchmarkProcess.latency(percentile: "99%", in: output)
        else { throw BenchmarkError("could not read wrk output:\n\(output)") }
        if output.contains("Non-2xx") || output.contains("Socket errors") {
            FileHandle.standardError.write(Data("wrk reported errors:\n\(output)\n".utf8))
        }
        return LoadResult(requestsPerSecond: rate, p50: p50, p99: p99, generator: "wrk -t\(wrkThreads)")
    }

    /// One blocking thread per connection, each sending POSTs back to back and timing every response.
    private static func runBuiltIn(address: HTTPServer.Address, bodySize: Int, connections: Int, seconds: Int)
        async throws -> LoadResult
    {
        let request =
            Array(
                "POST /ingest HTTP/1.1\r\nHost: bench\r\nContent-Length: \(bodySize)\r\n\r\n".utf8)
            + [UInt8](repeating: 0x78, count: bodySize)
        let deadline = Date().addingTimeInterval(Double(seconds))
        let started = Date()
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for _ in 0..<connections {
                group.addTask {
                    try await BenchmarkProcess.onThread {
                        let client = try BlockingClient(address: address)
                        var samples: [Double] = []
                        while Date() < deadline {
                            let begin = DispatchTime.now().uptimeNanoseconds
                            try client.send(request)
                            try client.readResponse()
                            samples.append(Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e6)
                        }
                        return samples
                    }
                }
            }
            var all: [Double] = []
            for try await samples in group { all += samples }
            return all.sorted()
        }
        let elapsed = Date().timeIntervalSince(started)
        guard !latencies.isEmpty else { throw BenchmarkError("built-in client completed no requests") }
        func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        return LoadResult(
            requestsPerSecond: Double(latencies.count) / elapsed, p50: percentile(0.50), p99: percentile(0.99),
            generator: "built-in")
    }

    // MARK: - Idle connections

    private struct IdleConnections {
        var count: Int
        var residentMegabytes: Double
        var holder: Process
        var input: Pipe

        func close() {
            try? input.fileHandleForWriting.close()
            holder.waitUntilExit()
        }
    }

    /// Has a child process (this executable with `--hold-connections`) open `count` keep-alive
    /// connections, then measures this process's RSS. The clients live in another process because
    /// both ends of 10,000 connections would not fit one process's descriptor limit, and so that the
    /// RSS is the server's alone.
    private static func holdIdleConnections(address: HTTPServer.Address, count: Int) async throws -> IdleConnections {
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        holder.arguments = ["http", "--hold-connections", address.host, String(address.port)]
        let output = Pipe()
        let input = Pipe()
        holder.standardOutput = output
        holder.standardInput = input
        try holder.run()
        let line = try await BenchmarkProcess.onThread { () -> String in
            var collected = Data()
            while !collected.contains(0x0A) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                collected += chunk
            }
            return String(decoding: collected, as: UTF8.self)
        }
        guard line.hasPrefix("ready"), let opened = Int(line.dropFirst(6).prefix { $0.isNumber }) else {
            throw BenchmarkError("connection holder failed: \(line)")
        }
        return IdleConnections(
            count: opened, residentMegabytes: BenchmarkProcess.residentMegabytes(), holder: holder, input: input)
    }

    /// The child side: open the connections, make one request on each, report, wait for stdin to close.
    private static func holdConnectionsAsChild(host: String, port: Int, count: Int) async throws {
        let address = HTTPServer.Address(host: host, port: port)
        let descriptors = try await BenchmarkProcess.onThread {
            var open: [Int32] = []
            open.reserveCapacity(count)
            let request = Array("GET /idle HTTP/1.1\r\nHost: bench\r\n\r\n".utf8)
            for _ in 0..<count {
                let client = try BlockingClient(address: address)
                try client.send(request)
                try client.readResponse()
                open.append(client.release())
            }
            return open
        }
        FileHandle.standardOutput.write(Data("ready \(descriptors.count)\n".utf8))
        _ = FileHandle.standardInput.readDataToEndOfFile()
        descriptors.forEach { _ = Glibc.close($0) }
    }

    // MARK: - System

    private static func raiseDescriptorLimit(to wanted: Int) throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur >= rlim_t(wanted) { return }
        guard limit.rlim_max >= rlim_t(wanted) else {
            throw BenchmarkError("the open-file hard limit \(limit.rlim_max) is below \(wanted); raise it (ulimit -Hn)")
        }
        limit.rlim_cur = rlim_t(wanted)
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            throw BenchmarkError(
                "cannot raise the open-file limit to \(wanted) (errno \(errno)); try `ulimit -n \(wanted)`")
        }
    }

}

/// A minimal blocking HTTP/1.1 client for the benchmark: Content-Length responses only.
private final class BlockingClient {
    private var fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    init(address: HTTPServer.Address) throws {
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = in_port_t(UInt16(address.port).bigEndian)
        inet_pton(AF_INET, address.host, &target.sin_addr)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchmarkError("socket: errno \(errno)") }
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        let result = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let error = errno
            Glibc.close(fd)
            fd = -1
            throw BenchmarkError("connect: errno \(error)")
        }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Hands the descriptor to the caller, who closes it.
    func release() -> Int32 {
        defer { fd = -1 }
        return fd
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw BenchmarkError("send: errno \(errno)") }
            offset += sent
        }
    }

    /// Reads one response with a Content-Length body and discards it.
    func readResponse() throws {
        var received: [UInt8] = []
        var needed: Int?
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { throw BenchmarkError("connection closed by server") }
            received += buffer[0..<count]
            if needed == nil, let end = headEnd(received) {
                let head = String(decoding: received[..<end], as: UTF8.self).lowercased()
                guard head.hasPrefix("http/1.1 200") else { throw BenchmarkError("unexpected response: \(head)") }
                let length =
                    head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                needed = end + 4 + length
            }
            if let needed, received.count >= needed { return }
        }
    }

    private func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }
}
