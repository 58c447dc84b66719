import EdgeSyncTestSupport
import Foundation
import Synchronization
import Testing

/// The promise of the product, checked with both real binaries on loopback: every reading an edge
/// agent acknowledged arrives at the collector exactly once.
@Suite(.serialized) struct ExactlyOnceTests {
    @Test func realDataDrainsExactlyOnce() async throws {
        try await PairFixture.with { pair in
            let collector = try await pair.startCollector()
            defer { collector.process.kill() }
            let (text, expected) = try realDataAsLineProtocol()
            try await pair.importLineProtocol(text, name: "all")

            let drain = try await pair.drain(collector.url)
            #expect(drain.status == 0, "\(drain.stderr)")
            #expect(drain.stdout.contains("drained \(expected.count) readings"), "\(drain.stdout)")
            try pair.expectExactly(expected)

            // A second drain finds nothing to send and sends nothing twice.
            let again = try await pair.drain(collector.url)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stdout.contains("drained 0 readings"))
            try pair.expectExactly(expected)
        }
    }

    @Test func aWrongTokenStopsTheDrainAndKeepsEveryReading() async throws {
        try await PairFixture.with { pair in
            let collector = try await pair.startCollector()
            defer { collector.process.kill() }
            let (text, expected) = try realDataAsLineProtocol(limit: 5000)
            try await pair.importLineProtocol(text, name: "some")
            let drain = try await pair.drain(collector.url, token: "not-the-token")
            #expect(drain.status == 77)
            #expect(drain.stderr.contains("refused device gw-1"), "\(drain.stderr)")
            #expect(!drain.stderr.contains("not-the-token"), "the token must never be printed")
            let status = try await ChildProcess.run(
                try ChildProcess.productURL("edge-agent"), ["status", "--data-dir", pair.spoolDirectory, "--json"])
            #expect(status.stdout.contains("\"queued_readings\":\(expected.count)"), "\(status.stdout)")
        }
    }

    /// Faults between the pair (resets, stalls, 500s, 503s, answers lost after the commit) while
    /// both processes are SIGKILLed and restarted, with fresh readings imported during the run.
    @Test func faultsAndCrashesStillGiveExactlyOnce() async throws {
        try await PairFixture.with { pair in
            var collector = try await pair.startCollector()
            let faultsOn = Mutex(true)
            let random = Mutex(SeededRandom(seed: 2026))
            let proxy = try FaultProxy(upstreamPort: collector.port, stallDuration: .seconds(3)) { _ in
                guard faultsOn.withLock({ $0 }) else { return .none }
                let roll = random.withLock { Int.random(in: 0..<20, using: &$0) }
                switch roll {
                case 0, 1: return .resetBeforeForwarding
                case 2: return .stall
                case 3, 4: return .internalServerError
                case 5, 6: return .serviceUnavailable
                case 7, 8, 9: return .loseAnswer
                default: return .none
                }
            }
            defer { proxy.stop() }
            let config = try pair.writeAgentConfig(
                """
                {"collector": {"request_timeout_seconds": 1, "connect_timeout_seconds": 1},
                 "upload": {"batch_readings": 2000, "replay_batch_readings": 2000, "linger_ms": 20, "backoff_initial_ms": 20, "backoff_max_seconds": 1}}
                """)
            let proxyURL = "http://127.0.0.1:\(proxy.port)"
            let (text, expected) = try realDataAsLineProtocol()
            let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
            let firstPart = lines.prefix(lines.count * 2 / 3).joined(separator: "\n") + "\n"
            let secondPart = lines.dropFirst(lines.count * 2 / 3).joined(separator: "\n") + "\n"
            try await pair.importLineProtocol(firstPart, name: "first")

            var agent = try pair.startAgent(proxyURL, config: config)
            var seen = 0
            for round in 0..<3 {
                seen += 8
                await proxy.waitForRequests(atLeast: seen)
                agent.kill()
                _ = await agent.waitForExit()
                agent = try pair.startAgent(proxyURL, config: config)
                if round == 1 {
                    // Fresh readings arrive while the backlog is still replaying.
                    try await pair.importLineProtocol(secondPart, name: "second")
                }
                seen += 8
                await proxy.waitForRequests(atLeast: seen)
                collector.process.kill()
                _ = await collector.process.waitForExit()
                collector = try await pair.startCollector(port: collector.port)
            }
            _ = try await agent.waitForLine { $0.contains("event=started") }
            agent.kill(SIGTERM)
            #expect(await agent.waitForExit() == 0, "SIGTERM is a clean stop")
            faultsOn.withLock { $0 = false }

            let drain = try await pair.drain(proxyURL, extraArguments: ["--config", config])
            #expect(drain.status == 0, "\(drain.stderr)")
            collector.process.kill()
            try pair.expectExactly(expected)
            let faults = proxy.statistics.faults
            #expect(faults[.loseAnswer, default: 0] > 0, "\(faults)")
            #expect(faults.filter { $0.key != .none }.values.reduce(0, +) >= 10, "\(faults)")
        }
    }
}
