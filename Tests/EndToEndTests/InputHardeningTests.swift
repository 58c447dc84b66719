import EdgeAgent
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import Glibc
import Testing

/// A real `edge-agent run` under the attacks of issue 17: a local process holding every connection
/// the listener allows, and concurrent gzip bombs.
@Suite(.serialized) struct InputHardeningTests {
    /// An agent serving HTTP inputs with `settings` (JSON members of `inputs.http`), uploading to
    /// `collectorURL`.
    private static func startAgent(_ pair: PairFixture, collectorURL: String, settings: String) async throws
        -> AgentUnderTest
    {
        let config = try pair.writeAgentConfig(
            #"{"inputs": {"http": {"listen": "127.0.0.1:0", \#(settings)}}}"#)
        return try await AgentUnderTest.start(
            pair, collectorURL: collectorURL, arguments: ["--config", config], inputs: ["http"])
    }

    @Test func idleConnectionsHeldAtTheCapDoNotLockOutAProducer() async throws {
        let cap = 16
        try await PairFixture.with { pair in
            let collector = try await pair.startCollector()
            defer { collector.process.kill() }
            let agent = try await Self.startAgent(
                pair, collectorURL: collector.url, settings: #""max_connections": 16"#)
            defer { agent.process.kill() }
            let port = try #require(agent.ports["http"])
            // The cap's worth of connections held open by one process: most after one request
            // (idle keep-alive), a few that never sent a byte.
            let held = try await onDedicatedThread {
                try (0..<cap).map { index in try Self.connect(port: port, pinging: index >= 4) }
            }
            defer { held.forEach { Glibc.close($0) } }

            let response = try await onDedicatedThread {
                try BlockingHTTPClient(port: port, timeoutSeconds: 10).post(
                    "/write?db=edge", body: Array("hold,gw=1 value=42 1700000000000000000\n".utf8))
            }
            #expect(response.status == 204, "\(response.text)")
            let expected = ExpectedReading(
                key: LineProtocolSeriesKey.make(measurement: "hold", tags: [("gw", "1")], field: "value"),
                timestamp: 1_700_000_000_000_000_000, valueBits: Double(42).bitPattern)
            try await expectDelivered([expected], pair: pair, agent: agent, collectorURL: collector.url)
        }
    }

    /// Eight concurrent 1 GiB gzip bodies to `/write`, each refused with 413, with the agent's peak
    /// resident memory (VmHWM) at most 64 MB. A bound, not a timing.
    @Test func concurrentGzipBombsAreRefusedWithinSixtyFourMegabytes() async throws {
        // 1,024 gzip members of 1 MiB of zeros: 1 GiB inflated, about 1 MB on the wire.
        let member = Gzip.compress([UInt8](repeating: 0, count: 1 << 20), level: 9)
        var bomb: [UInt8] = []
        bomb.reserveCapacity(member.count * 1024)
        for _ in 0..<1024 { bomb += member }
        let body = bomb
        try await PairFixture.with { pair in
            // No collector: uploads fail and retry, which is beside the point here.
            let agent = try await Self.startAgent(
                pair, collectorURL: "http://127.0.0.1:9", settings: #""max_connections": 64"#)
            defer { agent.process.kill() }
            let port = try #require(agent.ports["http"])
            let warm = try await onDedicatedThread {
                try BlockingHTTPClient(port: port, timeoutSeconds: 30).post(
                    "/write?db=edge", body: Array("warm value=1\n".utf8))
            }
            #expect(warm.status == 204)
            let before = ProcessStatus.kilobytes("VmHWM", pid: agent.process.processIdentifier) ?? 0
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await onDedicatedThread {
                            try BlockingHTTPClient(port: port, timeoutSeconds: 120).post(
                                "/write?db=edge", body: body, headers: [("Content-Encoding", "gzip")]
                            ).status
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses == [Int](repeating: 413, count: 8))
            let peak = try #require(ProcessStatus.kilobytes("VmHWM", pid: agent.process.processIdentifier))
            let after = ProcessStatus.kilobytes("VmRSS", pid: agent.process.processIdentifier) ?? 0
            print("gzip bombs: agent VmHWM \(before) kB before, \(peak) kB peak; VmRSS \(after) kB after")
            #expect(peak <= 64 * 1024, "agent peak RSS \(peak) kB under eight 1 GiB gzip bombs")
        }
    }

    /// One request of 100,000 distinct series (6 MB of line protocol) is refused once it passes
    /// the default 10,000 with a 413 naming `inputs.http.max_series_per_request`, and costs the
    /// agent little: the issue measured 33 to 90 MB for it, kept at 84.5 MB.
    @Test func aRequestOfAHundredThousandNewSeriesIsRefusedCheaply() async throws {
        let body = Array(
            (0..<100_000).map { "cpu,host=h\($0),region=r\($0 % 7) usage=\($0).5 1700000000000000000\n" }.joined().utf8)
        try await PairFixture.with { pair in
            let agent = try await Self.startAgent(
                pair, collectorURL: "http://127.0.0.1:9", settings: #""max_connections": 64"#)
            defer { agent.process.kill() }
            let port = try #require(agent.ports["http"])
            let before = ProcessStatus.kilobytes("VmRSS", pid: agent.process.processIdentifier) ?? 0
            let response = try await onDedicatedThread {
                try BlockingHTTPClient(port: port, timeoutSeconds: 60).post("/write?db=edge", body: body)
            }
            #expect(response.status == 413)
            #expect(response.text.contains("inputs.http.max_series_per_request"), "\(response.text)")
            let peak = try #require(ProcessStatus.kilobytes("VmHWM", pid: agent.process.processIdentifier))
            print("100,000 series: agent VmRSS \(before) kB before, VmHWM \(peak) kB")
            #expect(peak <= before + 16 * 1024, "peak \(peak) kB from \(before) kB")
        }
    }

    /// A TCP connection to the agent, left open: after one `GET /ping` answered 204 (idle keep-alive)
    /// when `pinging`, else without a byte sent.
    private static func connect(port: Int, pinging: Bool) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ChildProcess.Failure("socket failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            throw ChildProcess.Failure("connect to 127.0.0.1:\(port) failed: errno \(errno)")
        }
        guard pinging else { return fd }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // A 204 has no body: the response ends with its head.
        while sent == request.count, !response.ends(with: Array("\r\n\r\n".utf8)) {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            response += buffer[0..<count]
        }
        guard response.starts(with: Array("HTTP/1.1 204".utf8)), response.ends(with: Array("\r\n\r\n".utf8)) else {
            Glibc.close(fd)
            throw ChildProcess.Failure("ping failed: \(String(decoding: response, as: UTF8.self))")
        }
        return fd
    }
}

extension Array where Element == UInt8 {
    fileprivate func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
