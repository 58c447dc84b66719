import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import Synchronization
import Testing

@testable import EdgeAgent

@Suite struct UploaderTests {
    func makeUploader(
        source: MemorySource,
        collector: MemoryCollector,
        clock: ImmediateClock = ImmediateClock(),
        configure: (inout Uploader.Configuration) -> Void = { _ in }
    ) -> Uploader {
        var configuration = Uploader.Configuration()
        configuration.maximumBatchReadings = 1000
        configure(&configuration)
        return Uploader(
            configuration: configuration, source: source, transport: collector, clock: clock,
            wallClock: { 1_700_000_000_000_000_000 }, random: SeededRandom(seed: 3))
    }

    /// Every reading the source held is stored exactly once, with its key and value.
    func expectExactlyOnce(_ collector: MemoryCollector, expected: Int, source: MemorySource) {
        let state = collector.state.withLock { $0 }
        #expect(state.received.ranges == (expected > 0 ? [SequenceRange(1, UInt64(expected))] : []))
        #expect(state.stored.count == expected)
        for sequence in [UInt64(1), UInt64(expected / 2), UInt64(expected)] where sequence > 0 {
            #expect(state.stored[sequence]?.value == Double(sequence % 1000) / 10)
            #expect(state.storedKeys[sequence] == "sensor\(sequence % 3).value")
        }
        #expect(source.queuedCount == 0)
    }

    @Test func drainsABacklogInFullBatchesWithSeveralInFlight() async throws {
        let source = MemorySource(readings: 25_500)
        let collector = MemoryCollector()
        let statistics = try await makeUploader(source: source, collector: collector).run(.untilEmpty)
        expectExactlyOnce(collector, expected: 25_500, source: source)
        #expect(statistics.readingsAcknowledged == 25_500)
        #expect(statistics.batchesAcknowledged == 26)
        #expect(statistics.readingsDuplicate == 0)
        #expect(collector.state.withLock { $0.maximumConcurrent } > 1)
        #expect(collector.state.withLock { $0.maximumConcurrent } <= 4)
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func everyFaultStillEndsExactlyOnce(seed: UInt64) async throws {
        let source = MemorySource(readings: 12_345)
        let random = Mutex(SeededRandom(seed: seed))
        let collector = MemoryCollector { _, _ in
            let roll = random.withLock { Int.random(in: 0..<10, using: &$0) }
            switch roll {
            case 0: return .respond(.success(UploadResponse(status: 500)))
            case 1: return .respond(.success(UploadResponse(status: 503, retryAfter: .seconds(2))))
            case 2: return .respond(.failure(UploadTransportError("connection reset")))
            case 3: return .loseAcknowledgement
            case 4: return .respond(.success(UploadResponse(status: 200, body: Array("not json".utf8))))
            default: return nil
            }
        }
        let statistics = try await makeUploader(source: source, collector: collector).run(.untilEmpty)
        expectExactlyOnce(collector, expected: 12_345, source: source)
        #expect(statistics.retries.values.reduce(0, +) > 0)
        // Resent batches after a lost acknowledgement are duplicates, never stored twice; the edge
        // hears of those whose acknowledgement arrived.
        #expect(statistics.readingsDuplicate <= Int64(collector.state.withLock { $0.duplicates }))
    }

    /// The collector throttles from the first request on: until it accepts one, only that one batch
    /// is ever in flight, and every wait is at least its Retry-After.
    @Test func throttlingNeverAddsConcurrencyAndHonoursRetryAfter() async throws {
        let source = MemorySource(readings: 20_000)
        let clock = ImmediateClock()
        let collector = MemoryCollector { request, _ in
            request <= 8 ? .respond(.success(UploadResponse(status: 429, retryAfter: .seconds(30)))) : nil
        }
        try await makeUploader(source: source, collector: collector, clock: clock).run(.untilEmpty)
        expectExactlyOnce(collector, expected: 20_000, source: source)
        #expect(collector.state.withLock { $0.newBatchesDuringThrottle } == 0)
        #expect(collector.state.withLock { Set($0.sentRanges.prefix(9)) } == [SequenceRange(1, 1000)])
        #expect(clock.sleeps.filter { $0 >= .seconds(30) }.count == 8)
    }

    @Test func a413SplitsUntilBatchesFit() async throws {
        let source = MemorySource(readings: 5000)
        let collector = MemoryCollector(maximumReadingsPerBatch: 300)
        let statistics = try await makeUploader(source: source, collector: collector).run(.untilEmpty)
        expectExactlyOnce(collector, expected: 5000, source: source)
        #expect(statistics.splits >= 5)
    }

    @Test func a400QuarantinesThatBatchAndTheQueueMovesOn() async throws {
        let source = MemorySource(readings: 3000)
        let collector = MemoryCollector { _, range in
            range.contains(1500)
                ? .respond(
                    .success(
                        UploadResponse(
                            status: 400, body: Array(#"{"error":"malformed","message":"checksum mismatch"}"#.utf8))))
                : nil
        }
        let statistics = try await makeUploader(source: source, collector: collector).run(.untilEmpty)
        let quarantined = source.state.withLock { $0.quarantined }
        #expect(quarantined.count == 1)
        #expect(quarantined.first?.0 == SequenceRange(1001, 2000))
        #expect(quarantined.first?.1.contains("checksum mismatch") == true)
        #expect(statistics.readingsQuarantined == 1000)
        #expect(collector.state.withLock { $0.stored.count } == 2000)
        #expect(source.queuedCount == 0)
    }

    @Test(arguments: [401, 403])
    func anAuthFailureHaltsAndKeepsEveryReading(status: Int) async throws {
        let source = MemorySource(readings: 4000)
        let collector = MemoryCollector { _, _ in .respond(.success(UploadResponse(status: status))) }
        let statistics = try await makeUploader(source: source, collector: collector).run(.untilEmpty)
        #expect(statistics.haltReason?.contains("HTTP \(status)") == true)
        #expect(source.queuedCount == 4000)
        #expect(source.state.withLock { $0.acknowledgeCalls } == 0)
        // Only the first window's worth of requests went out before the halt.
        #expect(collector.state.withLock { $0.requests } <= 4)
    }

    /// A refused certificate halts before any frame byte leaves: nothing counts as sent.
    @Test func anUntrustedCollectorHaltsWithNoBytesCountedAsSent() async throws {
        let source = MemorySource(readings: 2000)
        let collector = MemoryCollector { _, _ in
            .respond(.failure(UploadTransportError("SSL peer certificate was not OK", isUntrustedCollector: true)))
        }
        let statistics = try await makeUploader(source: source, collector: collector).run(.untilEmpty)
        #expect(statistics.haltReason != nil)
        #expect(statistics.bytesSent == 0)
        #expect(source.queuedCount == 2000)
        // A 500 did carry the frame: those bytes count.
        let failing = MemoryCollector { request, _ in
            request == 1 ? .respond(.success(UploadResponse(status: 500))) : nil
        }
        let sent = try await makeUploader(source: MemorySource(readings: 10), collector: failing).run(.untilEmpty)
        #expect(sent.bytesSent > 0)
    }

    @Test func theLiveLaneSendsFreshReadingsBeforeTheBacklogEnds() async throws {
        let source = MemorySource(readings: 200_000)
        let collector = MemoryCollector()
        try await makeUploader(source: source, collector: collector) {
            $0.liveThreshold = 50_000
            $0.liveEvery = 4
        }.run(.untilEmpty)
        expectExactlyOnce(collector, expected: 200_000, source: source)
        let sent = collector.state.withLock { $0.sentRanges }
        let newest = sent.firstIndex { $0.contains(200_000) }
        #expect(newest != nil && newest! < 8, "the newest reading went out in batch \(newest ?? -1) of \(sent.count)")
    }

    @Test func droppedRangesAreReportedOnce() async throws {
        let source = MemorySource(readings: 10)
        source.state.withLock { $0.dropped = [SequenceRange(1, 99)] }
        let collector = MemoryCollector()
        let uploader = makeUploader(source: source, collector: collector)
        try await uploader.run(.untilEmpty)
        // The report goes out after the first acknowledgement, on its own task.
        while await uploader.statistics.droppedRangesReported == 0 { await Task.yield() }
        let reports = collector.state.withLock { $0.droppedReports }
        #expect(reports == [DroppedRangesReport(device: "gw-1", stream: 0xFEED, dropped: [SequenceRange(1, 99)])])
        #expect(try await source.unreportedDroppedRanges().isEmpty)
    }

    /// Found by the reliability soak's accounting: `drain` could exit while the report of dropped
    /// ranges was still on its own task, and never reported drops when nothing was left to upload.
    @Test(arguments: [0, 2500])
    func aDrainReportsDroppedRangesBeforeItReturns(readings: Int) async throws {
        let source = MemorySource(readings: readings)
        source.state.withLock { $0.dropped = [SequenceRange(1, 99)] }
        let collector = MemoryCollector()
        let statistics = try await makeUploader(source: source, collector: collector).run(.untilEmpty)
        // No waiting: the report is in before run returns.
        let reports = collector.state.withLock { $0.droppedReports }
        #expect(reports == [DroppedRangesReport(device: "gw-1", stream: 0xFEED, dropped: [SequenceRange(1, 99)])])
        #expect(statistics.droppedRangesReported == 1)
        #expect(try await source.unreportedDroppedRanges().isEmpty)
    }

    static let ruleCounts = [
        ProcessingRuleCounts(rule: "range", type: "validate", counts: ProcessingCounts(dropped: 3, flagged: 1)),
        ProcessingRuleCounts(rule: "steady", type: "deadband", counts: ProcessingCounts(reduced: 40)),
    ]

    @Test func processingCountsAreReportedWhenTheyChangeAndADrainEndsWithThem() async throws {
        let source = MemorySource(readings: 2500)
        source.state.withLock { $0.processing = Self.ruleCounts }
        let collector = MemoryCollector()
        let uploader = makeUploader(source: source, collector: collector)
        try await uploader.run(.untilEmpty)
        var reports = collector.state.withLock { $0.processingReports }
        #expect(reports.count == 1, "three acknowledgements, one report: the totals did not change")
        #expect(reports.first?.device == "gw-1" && reports.first?.stream.value == 0xFEED)
        #expect(reports.first?.rules.map(\.rule) == ["range", "steady"])
        #expect(reports.first?.rules.map(\.dropped) == [3, 0])
        #expect(reports.first?.rules.map(\.reduced) == [0, 40])

        source.state.withLock { $0.processing[0].counts.dropped = 5 }
        try await uploader.run(.untilEmpty)
        reports = collector.state.withLock { $0.processingReports }
        #expect(reports.map { $0.rules[0].dropped } == [3, 5], "changed totals go out at the end of the drain")
    }

    @Test func aCollectorWithoutTheEndpointIsAskedOnceAndTheDrainStillSucceeds() async throws {
        let source = MemorySource(readings: 2500)
        source.state.withLock { $0.processing = Self.ruleCounts }
        let collector = MemoryCollector()
        collector.state.withLock { $0.processingStatus = 404 }
        let uploader = makeUploader(source: source, collector: collector)
        let statistics = try await uploader.run(.untilEmpty)
        #expect(source.queuedCount == 0, "every reading acknowledged")
        #expect(statistics.lastError == nil, "404 means an older collector, not an error")
        source.state.withLock { $0.processing[0].counts.dropped = 9 }
        source.append(10)
        try await uploader.run(.untilEmpty)
        #expect(collector.state.withLock { $0.processingReports.count } == 1, "not asked again")
    }

    @Test func cancellationStopsBetweenBatchesAndKeepsTheRest() async throws {
        let source = MemorySource(readings: 50_000)
        let gate = AsyncStream.makeStream(of: Void.self)
        let collector = MemoryCollector { request, _ in
            if request == 3 { gate.continuation.yield() }
            return nil
        }
        let uploader = makeUploader(source: source, collector: collector)
        let run = Task { try await uploader.run(.continuous) }
        for await _ in gate.stream { break }
        run.cancel()
        let statistics = try await run.value
        let stored = collector.state.withLock { $0.stored.count }
        #expect(Int64(stored) == statistics.readingsAcknowledged)
        #expect(source.queuedCount == 50_000 - stored)
        #expect(source.queuedCount > 0)
    }

    // MARK: Encode once

    /// Stored frames go out as they are, in frame runs, with the clock in the header; nothing
    /// is decoded or encoded again.
    @Test func storedFramesGoOutAsTheyAreWithTheClockInAHeader() async throws {
        let source = MemorySource(readings: 5000)
        let collector = MemoryCollector()
        let statistics = try await makeUploader(source: source, collector: collector).run(.untilEmpty)
        expectExactlyOnce(collector, expected: 5000, source: source)
        #expect(statistics.readingsSentAsStored == 5000)
        #expect(!statistics.sendsSingleFrames)
        let state = collector.state.withLock { $0 }
        #expect(state.contentTypes.allSatisfy { $0 == FrameRun.mediaType })
        #expect(state.sentAtHeaders.allSatisfy { $0 == "1700000000000000000" })
    }

    /// A collector older than frame runs answers 415: the uploader says so once, then sends every
    /// batch as one version 2 frame (clock inside and in the header), and delivers exactly once.
    @Test func a415ToFrameRunsFallsBackToVersion2FramesOnce() async throws {
        let source = MemorySource(readings: 7000)
        let collector = MemoryCollector(acceptsFrameRuns: false)
        let events = Mutex<[String]>([])
        let uploader = makeUploader(source: source, collector: collector)
        await uploader.onEvent { event in
            if case .fellBackToSingleFrames(let reason) = event { events.withLock { $0.append(reason) } }
        }
        let statistics = try await uploader.run(.untilEmpty)
        expectExactlyOnce(collector, expected: 7000, source: source)
        #expect(statistics.sendsSingleFrames)
        #expect(statistics.readingsSentAsStored == 0)
        #expect(statistics.readingsQuarantined == 0)
        #expect(events.withLock { $0 } == ["not a frame"])
        let state = collector.state.withLock { $0 }
        // Up to a window of runs were in flight when the first 415 came back; none after.
        let runs = state.contentTypes.filter { $0 == FrameRun.mediaType }.count
        #expect(runs >= 1 && runs <= 4)
        #expect(state.contentTypes.filter { $0 == FrameHeader.mediaType }.count == 7)
    }

    /// Batch sizing by lane: a backlog goes out in replay-sized batches, a caught-up queue in
    /// live-sized ones.
    @Test func aBacklogGoesOutInReplaySizedBatches() async throws {
        let source = MemorySource(readings: 60_000)
        let collector = MemoryCollector()
        try await makeUploader(source: source, collector: collector) {
            $0.liveThreshold = 10_000
            $0.liveEvery = 1000
            $0.replayBatchReadings = 20_000
        }.run(.untilEmpty)
        expectExactlyOnce(collector, expected: 60_000, source: source)
        let sizes = collector.state.withLock { $0.sentRanges.map(\.count) }
        // 60,000 queued: 20,000, 20,000; then 20,000 left (above the threshold): 20,000.
        #expect(sizes.first == 20_000)
        #expect(sizes.max() == 20_000)
        let small = MemorySource(readings: 5000)
        let caughtUp = MemoryCollector()
        try await makeUploader(source: small, collector: caughtUp) { $0.replayBatchReadings = 20_000 }.run(.untilEmpty)
        #expect(caughtUp.state.withLock { $0.sentRanges.map(\.count) }.allSatisfy { $0 <= 1000 })
    }

    /// A body over the byte limit is split at a frame boundary: the halves are still stored bytes.
    @Test func anOversizedRunSplitsAtAFrameBoundary() async throws {
        let source = MemorySource(readings: 4000)
        let collector = MemoryCollector()
        let frame = try #require(
            try await source.frames(in: SequenceRange(1, 1000), maximumReadings: 1000, maximumBytes: .max)?.frames.first)
        let statistics = try await makeUploader(source: source, collector: collector) {
            $0.maximumBatchBytes = frame.bytes.count * 5 / 2
        }.run(.untilEmpty)
        expectExactlyOnce(collector, expected: 4000, source: source)
        #expect(statistics.splits >= 4)
        #expect(statistics.readingsSentAsStored == 4000)
        #expect(collector.state.withLock { $0.sentRanges.allSatisfy { $0.count <= 500 && $0.count % 250 == 0 } }, "split before sending, at frame boundaries")
    }

    /// A collector (or link) that cannot take a replay batch within the request timeout: every
    /// request of more than 5,000 readings times out. The backlog still drains, in halves down to the
    /// live size; throttling (429 with Retry-After) and refused connections never make batches smaller.
    /// A backlog lane from 1,000 queued readings, with replay batches of 20,000 and no live batches.
    static func replaySized(_ configuration: inout Uploader.Configuration) {
        configuration.liveThreshold = 1000
        configuration.liveEvery = 1000
        configuration.replayBatchReadings = 20_000
    }

    @Test func aReplayBatchThatTimesOutGoesAgainInHalves() async throws {
        let source = MemorySource(readings: 40_000)
        let collector = MemoryCollector { _, range in
            range.count > 5000
                ? .respond(.failure(UploadTransportError("Operation timed out after 5000 ms", isTimeout: true))) : nil
        }
        let statistics = try await makeUploader(source: source, collector: collector, configure: Self.replaySized).run(.untilEmpty)
        expectExactlyOnce(collector, expected: 40_000, source: source)
        #expect(statistics.splits >= 4)
        let sizes = collector.state.withLock { $0.sentRanges.map(\.count) }
        #expect(sizes.first == 20_000)

        let throttled = MemorySource(readings: 40_000)
        let busy = MemoryCollector { request, _ in
            request % 2 == 1 ? .respond(.success(UploadResponse(status: 429, retryAfter: .seconds(1)))) : nil
        }
        let calm = try await makeUploader(source: throttled, collector: busy, configure: Self.replaySized).run(.untilEmpty)
        expectExactlyOnce(busy, expected: 40_000, source: throttled)
        #expect(calm.splits == 0)

        let offline = MemorySource(readings: 40_000)
        let down = MemoryCollector { request, _ in
            request <= 6 ? .respond(.failure(UploadTransportError("Couldn't connect to server"))) : nil
        }
        let waited = try await makeUploader(source: offline, collector: down, configure: Self.replaySized).run(.untilEmpty)
        expectExactlyOnce(down, expected: 40_000, source: offline)
        #expect(waited.splits == 0)
    }
}
