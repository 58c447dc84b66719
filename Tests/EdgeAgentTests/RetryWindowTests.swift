import EdgeAgent
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import HTTPCore
import Synchronization
import Testing

/// A sink whose appends wait until the test opens the gate, and fail while `failing` is set.
final class GatedSink: ReadingSink {
    private let state = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>], arrived: Int, failing: Bool)>(
        (false, [], 0, false))
    let recorder = RecordingSink()

    func append(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> SequenceRange {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state in
                state.arrived += 1
                if !state.open { state.waiting.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
        if state.withLock({ $0.failing }) { throw SpoolError(.full, "refused by the test") }
        return try await recorder.append(seriesKeys: seriesKeys, readings: readings)
    }

    var arrived: Int { state.withLock { $0.arrived } }

    func open(failing: Bool = false) {
        let waiting = state.withLock { state in
            state.open = true
            state.failing = failing
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}

/// A clock the test moves by hand.
final class ManualInstant: Sendable {
    private let base = ContinuousClock.now
    private let offset = Mutex(Duration.zero)
    func advance(_ by: Duration) { offset.withLock { $0 += by } }
    var now: ContinuousClock.Instant { base + offset.withLock { $0 } }
}

@Suite struct RetryWindowTests {
    func write(_ inputs: InputEndpoints, _ lines: String) async throws -> HTTPResponse {
        try await inputs.respond(
            to: request("POST", "/write?db=x", body: Array(lines.utf8)), context: HTTPRequestContext())
    }

    /// CGM's real rows that share a timestamp with different readings
    /// (`shared/data/CGM.csv.gz`, public domain): both are stored, in separate requests too.
    static let cgm = [
        "CGM glucose=122 1274325660000000000", "CGM glucose=124 1274325660000000000",
        "CGM isig=15.94 1274325660000000000", "CGM isig=16.14 1274325660000000000",
    ]

    @Test func aResentRequestIsStoredOnceAndDifferentValuesAtOneTimestampAreBothKept() async throws {
        let sink = RecordingSink()
        let inputs = InputEndpoints(sink: sink)
        for line in Self.cgm { #expect(try await write(inputs, line).status == .noContent) }
        #expect(sink.readings.count == 4)
        // The client lost the answers and sends everything again, as one batch.
        #expect(try await write(inputs, Self.cgm.joined(separator: "\n")).status == .noContent)
        #expect(sink.readings.count == 4 && sink.appends.count == 4)
        #expect(inputs.statistics.retriedReadings.load(ordering: .relaxed) == 4)
        // A retry that carries new readings too stores only those.
        let mixed = Self.cgm[0] + "\nCGM glucose=125 1274325960000000000"
        #expect(try await write(inputs, mixed).status == .noContent)
        #expect(sink.appends.last?.map(\.value) == [125])
        // The same value bits only: -0.0 is not 0.0.
        _ = try await write(inputs, "z v=0 1")
        _ = try await write(inputs, "z v=-0.0 1")
        #expect(sink.readings.filter { $0.seriesKey == "z v" }.count == 2)
        // Identical readings inside one request are the producer's own; both are kept.
        _ = try await write(inputs, "d v=1 1\nd v=1 1")
        #expect(sink.readings.filter { $0.seriesKey == "d v" }.count == 2)
    }

    @Test func aRetryWhileTheFirstAttemptIsStillBeingWrittenWaitsForItsOutcome() async throws {
        for failing in [false, true] {
            let sink = GatedSink()
            let inputs = InputEndpoints(sink: sink)
            let first = Task { try await write(inputs, "m v=1 1\nm v=2 2") }
            while sink.arrived == 0 { await Task.yield() }
            let retry = Task { try await write(inputs, "m v=1 1\nm v=2 2") }
            // The retry waits in the window; it does not reach the sink while the first is in flight.
            while inputs.retryWindow?.waitingWrites != 1 { await Task.yield() }
            #expect(sink.arrived == 1)
            sink.open(failing: failing)
            let answers = (try await first.value.status, try await retry.value.status)
            if failing {
                // The first attempt failed, so its readings are not remembered: the retry tries again
                // (and fails too here, since the sink still refuses).
                #expect(answers == (.serviceUnavailable, .serviceUnavailable) && sink.arrived == 2)
            } else {
                #expect(answers == (.noContent, .noContent))
                #expect(sink.recorder.readings.count == 2 && sink.arrived == 1)
            }
        }
    }

    @Test func theWindowForgetsByAgeAndByCount() async throws {
        let clock = ManualInstant()
        var configuration = RetryWindow.Configuration()
        configuration.maximumAge = .seconds(60)
        configuration.maximumEntries = 3
        let window = RetryWindow(configuration: configuration, now: { clock.now })
        func offer(_ lines: [String]) async -> Int {
            var parser = LineProtocolParser()
            var block = ReadingBlock()
            for line in lines {
                try? parser.parse(ArraySlice(line.utf8), lineNumber: 1, defaultTimestamp: 0, into: &block)
            }
            let admission = await window.admit(&block)
            window.finish(admission, stored: true)
            return block.count
        }
        #expect(await offer(["a v=1 1", "a v=2 2"]) == 2)
        #expect(await offer(["a v=1 1"]) == 0)
        clock.advance(.seconds(61))
        #expect(await offer(["a v=1 1"]) == 1)
        #expect(await offer(["b v=1 1", "b v=2 2", "b v=3 3"]) == 3)
        // Three remembered at most: "a v=1 1" was pushed out.
        #expect(window.rememberedCount == 3)
        #expect(await offer(["a v=1 1", "b v=3 3"]) == 1)
    }

    @Test func theWindowCanBeTurnedOff() async throws {
        var configuration = InputEndpoints.Configuration()
        configuration.retryWindow = nil
        let sink = RecordingSink()
        let inputs = InputEndpoints(configuration: configuration, sink: sink)
        _ = try await write(inputs, "m v=1 1")
        _ = try await write(inputs, "m v=1 1")
        #expect(sink.readings.count == 2)
    }
}
