import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Synchronization
import Testing

@Suite(.serialized) struct ReplayTests {
    /// The collector is down while a backlog builds up; when it comes up the backlog replays
    /// (slowed by the bandwidth cap to about ten seconds, so the test is not a race against a busy
    /// machine), and readings imported during the replay are stored before the backlog has finished.
    @Test func liveReadingsOvertakeALongReplay() async throws {
        try await PairFixture.with { pair in
            let collectorDirectory = pair.collectorDirectory
            // Reserve a port for the collector: start it once and stop it, so it is down at first.
            let first = try await pair.startCollector()
            let port = first.port
            first.process.kill()
            _ = await first.process.waitForExit()
            let proxy = try FaultProxy(upstreamPort: port) { _ in .none }
            defer { proxy.stop() }

            let (text, backlog) = try realDataAsLineProtocol()
            try await pair.importLineProtocol(text, name: "backlog")
            let config = try pair.writeAgentConfig(
                """
                {"collector": {"request_timeout_seconds": 5},
                 "upload": {"batch_readings": 5000, "replay_batch_readings": 5000, "linger_ms": 20, "backoff_initial_ms": 20, "backoff_max_seconds": 1,
                            "max_send_bytes_per_second": 15000, "max_in_flight": 1,
                            "live_threshold_readings": 20000}}
                """)
            let agent = try pair.startAgent("http://127.0.0.1:\(proxy.port)", config: config)
            defer { agent.kill() }
            // The collector is down: the agent retries against it.
            _ = try await agent.waitForLine { $0.contains("event=retry") }
            let collector = try await pair.startCollector(port: port)
            defer { collector.process.kill() }
            await proxy.waitForRequests(atLeast: proxy.statistics.requests + 2)

            // Fresh readings, imported while the replay runs.
            let fresh = (0..<50).map { "live value=\($0) \(2_000_000_000_000_000_000 + Int64($0))" }.joined(
                separator: "\n")
            try await pair.importLineProtocol(fresh + "\n", name: "live")
            let liveFirst = UInt64(backlog.count + 1)

            // Each request the collector answers is a moment to look: stop when the live readings are in.
            var backlogStoredWhenLiveArrived: Int?
            for _ in 0..<200 {
                await proxy.waitForRequests(atLeast: proxy.statistics.requests + 1)
                let stored = try CollectorUnderTest.storedReadings(dataDirectory: collectorDirectory, device: "gw-1")
                if (liveFirst..<liveFirst + 50).allSatisfy({ stored.bySequence[$0] != nil }) {
                    backlogStoredWhenLiveArrived = stored.bySequence.keys.filter { $0 < liveFirst }.count
                    break
                }
            }
            let backlogStored = try #require(backlogStoredWhenLiveArrived, "the live readings never arrived")
            #expect(backlogStored < backlog.count, "live readings waited for the whole backlog")

            // Then everything arrives, exactly once.
            agent.kill(SIGTERM)
            _ = await agent.waitForExit()
            let drain = try await pair.drain(collector.url)
            #expect(drain.status == 0, "\(drain.stderr)")
            let stored = try CollectorUnderTest.storedReadings(dataDirectory: collectorDirectory, device: "gw-1")
            #expect(stored.rows == backlog.count + 50)
            #expect(stored.bySequence.count == backlog.count + 50)
        }
    }

    /// A spool too small for its backlog drops the oldest readings (policy drop-oldest); the agent
    /// tells the collector which ranges, so stored plus dropped is everything produced.
    @Test func rangesDroppedAtTheEdgeAreReportedToTheCollector() async throws {
        try await PairFixture.with { pair in
            let collectorDirectory = pair.collectorDirectory
            let collector = try await pair.startCollector()
            defer { collector.process.kill() }
            let (text, expected) = try realDataAsLineProtocol()
            let file = pair.directory + "/all.lp"
            try text.write(toFile: file, atomically: false, encoding: .utf8)
            for _ in 0..<3 {
                let imported = try await ChildProcess.run(
                    try ChildProcess.productURL("edge-agent"),
                    [
                        "import", "--data-dir", pair.spoolDirectory, "--device", "gw-1", "--max-bytes", "262144",
                        "--when-full", "drop-oldest", file,
                    ])
                #expect(imported.status == 0, "\(imported.stderr)")
            }
            let drain = try await pair.drain(collector.url)
            #expect(drain.status == 0, "\(drain.stderr)")

            var readOnly = SQLiteDatabase.Configuration()
            readOnly.isReadOnly = true
            let database = try SQLiteDatabase(path: collectorDirectory + "/collector.sqlite", configuration: readOnly)
            let dropped = try database.prepare("SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM dropped_ranges")
            _ = try dropped.step()
            let droppedCount = Int(dropped.int64(at: 0))
            let stored = try CollectorUnderTest.storedReadings(dataDirectory: collectorDirectory, device: "gw-1")
            #expect(droppedCount > 0, "the cap should have forced drops")
            #expect(stored.rows + droppedCount == expected.count * 3)
            // Nothing is both stored and reported dropped.
            let overlap = try database.prepare(
                """
                SELECT count(*) FROM readings_view r JOIN streams s ON s.stream = r.stream
                JOIN dropped_ranges d ON d.stream_ref = s.stream_ref AND r.seq BETWEEN d.first_seq AND d.last_seq
                """)
            _ = try overlap.step()
            #expect(overlap.int64(at: 0) == 0)
        }
    }
}
