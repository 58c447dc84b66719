import CloudCollector
import EdgeSyncTestSupport
import Foundation
import Testing

/// The real `edge-agent` binary against collectors of both generations.
@Suite(.serialized) struct AgentUpgradeTests {
    /// A collector older than frame runs answers 415 to them before reading the body (played here
    /// by the collector service with frame runs off, on a loopback socket): the agent says so once,
    /// sends single version 2 frames, and every reading arrives exactly once.
    @Test func theNewAgentFallsBackAtACollectorWithoutFrameRuns() async throws {
        try await PairFixture.with { pair in
            var configuration = CollectorService.Configuration(dataDirectory: pair.collectorDirectory)
            configuration.port = 0
            configuration.ingest.acceptsFrameRuns = false
            let service = try CollectorService(configuration: configuration)
            let serving = Task { try await service.run() }
            defer { service.shutdown() }
            let port = try await service.localAddress.port

            let (text, expected) = try realDataAsLineProtocol(limit: 30_000)
            try await pair.importLineProtocol(text, name: "backlog")
            let drain = try await pair.drain("http://127.0.0.1:\(port)")
            #expect(drain.status == 0, "\(drain.stderr)")
            #expect(drain.stdout.contains("drained \(expected.count) readings"), "\(drain.stdout)")
            #expect(drain.stdout.contains("single version 2 frames"), "\(drain.stdout)")
            let refusals = drain.stderr.components(separatedBy: "frame_runs_refused").count - 1
            #expect(refusals == 1, "logged once: \(drain.stderr)")
            try pair.expectExactly(expected)
            service.shutdown()
            try await serving.value
        }
    }

    /// Against the current collector the same backlog goes as stored frames, none encoded again.
    @Test func theNewAgentSendsStoredFramesToTheNewCollector() async throws {
        try await PairFixture.with { pair in
            let collector = try await pair.startCollector()
            defer { collector.process.kill() }
            let (text, expected) = try realDataAsLineProtocol(limit: 30_000)
            try await pair.importLineProtocol(text, name: "backlog")
            let drain = try await pair.drain(collector.url)
            #expect(drain.status == 0, "\(drain.stderr)")
            #expect(drain.stdout.contains("sent as stored: \(expected.count) readings (frame runs)"), "\(drain.stdout)")
            #expect(!drain.stderr.contains("frame_runs_refused"))
            try pair.expectExactly(expected)
        }
    }
}

/// Issue 18's end-to-end check on the many-series gateway log: the whole of `plaid.lp.gz` (349,431
/// readings of 1,074 series) as a backlog, drained by the real agent into the real collector.
@Suite(.serialized) struct ManySeriesBacklogTests {
    @Test func aPlaidBacklogArrivesExactlyOnceAtTheCompressedSize() async throws {
        let dataset = try RealDataset.load(RealDataset.defaultDirectory.appendingPathComponent("plaid.lp.gz"))
        var text = ""
        var expected: [ExpectedReading] = []
        expected.reserveCapacity(dataset.readings.count)
        for reading in dataset.readings {
            // Keys are `plaid,appliance=…,load=… current`: the line is the key with `=value T`.
            let key = dataset.seriesKeys[reading.series]
            text += "\(key)=\(reading.value) \(reading.timestamp)\n"
            expected.append(ExpectedReading(key: key, timestamp: reading.timestamp, valueBits: reading.value.bitPattern))
        }
        try await PairFixture.with { pair in
            let collector = try await pair.startCollector()
            defer { collector.process.kill() }
            try await pair.importLineProtocol(text, name: "plaid")
            let drain = try await pair.drain(collector.url)
            #expect(drain.status == 0, "\(drain.stderr)")
            #expect(drain.stdout.contains("drained \(expected.count) readings"), "\(drain.stdout)")
            #expect(drain.stdout.contains("sent as stored: \(expected.count) readings (frame runs)"), "\(drain.stdout)")
            // The agent's own count of request bodies, from its summary line.
            let line = drain.stdout.split(separator: "\n").first { $0.hasPrefix("bytes on the wire:") }
            let bytes = line.flatMap { $0.split(separator: " ").dropFirst(4).first }.flatMap { Double($0) }
            let perReading = try #require(bytes, "\(drain.stdout)") / Double(expected.count)
            // Version 2 needed 3.05 bytes a reading at 100,000-reading batches and 6.64 at 10,000.
            #expect(perReading <= 2.2, "bytes on the wire per reading: \(perReading)")
            try pair.expectExactly(expected)
        }
    }
}
