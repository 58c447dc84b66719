import EdgeSyncCodec
import EdgeSyncCommandLine
import EdgeSyncLogging
import EdgeSyncTestSupport
import Foundation
import Testing

@testable import EdgeAgent

/// The timer that stores the last downsample window of a series that went quiet, with a manual
/// clock: time moves only when the test says so.
@Suite struct WindowFlusherTests {
    static let second: Int64 = 1_000_000_000
    /// A multiple of 60 s.
    static let start: Int64 = 1_699_999_980 * second

    @Test func aQuietSeriesWindowIsStoredOnceItsWidthHasPassedAndNotBefore() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            let spool = try await Spool.open(spoolConfiguration(directory))
            let clock = ManualClock()
            let rules = [
                ProcessingRule(
                    name: "minute", match: SeriesMatch(measurement: Glob("vib")),
                    action: .downsample(.init(window: 60 * Self.second, aggregates: [.max]))),
                ProcessingRule(
                    name: "hour", match: SeriesMatch(measurement: Glob("slow")),
                    action: .downsample(.init(window: 3600 * Self.second, aggregates: [.last]))),
            ]
            let processing = ProcessingSink(
                rules: rules, capacity: 100, inner: spool,
                now: {
                    let (seconds, attoseconds) = clock.now.offset.components
                    return Self.start + seconds * Self.second + attoseconds / 1_000_000_000
                })
            let interval = WindowFlusher.interval(shortestWindow: try #require(processing.shortestWindow))
            #expect(interval == .seconds(30))
            let (checks, checked) = AsyncStream<Int>.makeStream()
            var flusher = WindowFlusher(sink: processing, interval: interval, clock: clock, logger: .discard)
            flusher.onCheck = { checked.yield($0) }
            var results = checks.makeAsyncIterator()

            let readings = [(0, 1.0), (5, 7.0), (10, 3.0)].map {
                Reading(series: 0, timestamp: Self.start + $0.0 * Self.second, value: $0.1)
            }
            #expect(try await processing.appendWhole(seriesKeys: ["vib a"], readings: readings) == nil)
            #expect(
                try await processing.appendWhole(
                    seriesKeys: ["slow b"], readings: [Reading(series: 0, timestamp: Self.start, value: 42)]) == nil)

            let task = Task { await flusher.run() }
            try await waitForSleeper(clock)
            clock.advance(by: .seconds(30))
            #expect(await results.next() == 0, "30 s after its last reading the minute window is still open")
            #expect(try await storedReadings(spool).isEmpty)

            try await waitForSleeper(clock)
            clock.advance(by: .seconds(30))
            #expect(await results.next() == 1, "a minute without a reading: the window is stored")
            let stored = try await storedReadings(spool)
            #expect(stored.map(\.key) == ["vib a"])
            #expect(stored.map(\.value) == [7])
            #expect(stored.map(\.timestamp) == [Self.start + 5 * Self.second], "max at its own time")
            #expect(stored.map(\.seq) == [1])

            try await waitForSleeper(clock)
            clock.advance(by: .seconds(30))
            #expect(await results.next() == 0, "stored once; the hour window is not quiet for an hour yet")
            let counts = Dictionary(uniqueKeysWithValues: processing.counts.map { ($0.rule.name, $0.counts) })
            #expect(counts["minute"] == ProcessingCounts(reduced: 3, emitted: 1))
            #expect(counts["hour"] == ProcessingCounts(reduced: 1))

            task.cancel()
            await task.value
            #expect(try await processing.flushWindows(idle: nil) == 1, "shutdown stores the rest")
        }
    }

    @Test func theIntervalIsHalfTheShortestWindowWithinOneSecondAndOneMinute() {
        #expect(WindowFlusher.interval(shortestWindow: 10 * Self.second) == .seconds(5))
        #expect(WindowFlusher.interval(shortestWindow: Self.second / 10) == .seconds(1))
        #expect(WindowFlusher.interval(shortestWindow: 3600 * Self.second) == .seconds(60))
    }

    /// Waits until the flusher is suspended on the clock (yielding, no time-based wait).
    private func waitForSleeper(_ clock: ManualClock) async throws {
        for _ in 0..<100_000 where clock.sleeperCount == 0 { await Task.yield() }
        #expect(clock.sleeperCount == 1)
    }
}

extension WindowFlusherTests {
    /// The same through the running agent: its HTTP input, its rules, its timer on the injected clock.
    @Test func theRunningAgentStoresTheWindowOfAQuietSeriesOnItsClock() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            let clock = ManualClock()
            let now: @Sendable () -> Int64 = {
                let (seconds, attoseconds) = clock.now.offset.components
                return Self.start + seconds * Self.second + attoseconds / 1_000_000_000
            }
            var arguments = ParsedArguments()
            arguments.values = [
                "--data-dir": [directory], "--device": ["gateway-1"], "--collector": ["http://127.0.0.1:9"],
                "--token": ["unused"],
            ]
            var configuration = try AgentConfiguration(file: nil, arguments: arguments, environment: [:])
            configuration.spool.onDamagedFile = { _ in }
            configuration.inputs.http = ("127.0.0.1", 0)
            configuration.inputs.httpLimits.retryWindow = nil
            configuration.processing = [
                ProcessingRule(
                    name: "minute", match: SeriesMatch(measurement: Glob("vib")),
                    action: .downsample(.init(window: 60 * Self.second, aggregates: [.max])))
            ]
            let (ports, found) = AsyncStream<Int>.makeStream()
            let logger = Logger(label: "test") { record in
                guard record.event == "listening",
                    let address = record.fields.first(where: { $0.key == "address" })?.value.text,
                    let port = address.split(separator: ":").last.flatMap({ Int($0) })
                else { return }
                found.yield(port)
            }
            let collector = MemoryCollector()
            let service = AgentService(
                configuration: configuration, logger: logger, makeTransport: { _ in collector }, windowClock: clock,
                processingClock: now)
            let running = Task { try await service.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let body = Array("vib a=3 \(Self.start)\nvib a=8 \(Self.start + 5 * Self.second)\n".utf8)
            let answer = try await onDedicatedThread {
                try BlockingHTTPClient(port: port).post("/write?db=x", body: body)
            }
            #expect(answer.status == 204)
            #expect(try Spool.inspect(dataDirectory: directory).nextSequence == 1, "the window is open")

            for (advance, expected) in [(30, UInt64(1)), (30, 2)] {
                try await waitForSleeper(clock)
                clock.advance(by: .seconds(advance))
                // The flusher checked and sleeps again.
                for _ in 0..<1_000_000 where clock.sleeperCount == 0 { await Task.yield() }
                #expect(try Spool.inspect(dataDirectory: directory).nextSequence == expected)
            }
            running.cancel()
            _ = try await running.value
            let stored = collector.state.withLock { $0.stored }
            let spool = try await storedReadings(try await Spool.open(spoolConfiguration(directory)))
            let values = stored.values.map(\.value) + spool.map(\.value)
            #expect(values == [8], "one reading, the window's max, uploaded or still queued")
        }
    }
}
