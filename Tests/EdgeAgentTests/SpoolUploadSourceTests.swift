import EdgeSyncProtocol
import EdgeSyncTestSupport
import Testing

@testable import EdgeAgent

/// The spool as the uploader sees it, and the spool shared with a second writer (an
/// `edge-agent import` beside the running agent opens its own connection to the same file).
@Suite struct SpoolUploadSourceTests {
    func readings(_ count: Int, from start: Int) -> [IncomingReading] {
        (start..<start + count).map { IncomingReading(seriesKey: "s", timestamp: Int64($0), value: Double($0)) }
    }

    @Test func twoWritersOnOneFileNeverReuseASequenceNumber() async throws {
        try await withTemporaryDirectory { directory in
            let first = try await Spool.open(spoolConfiguration(directory))
            let second = try await Spool.open(spoolConfiguration(directory))
            var ranges: [SequenceRange] = []
            for round in 0..<20 {
                ranges.append(try await first.append(readings(7, from: round * 100)))
                ranges.append(try await second.append(readings(5, from: round * 100 + 50)))
            }
            // Every range starts right after the previous one: contiguous, no overlap.
            #expect(ranges.first?.first == 1)
            for (previous, next) in zip(ranges, ranges.dropFirst()) { #expect(next.first == previous.last + 1) }
            let stored = try await storedReadings(first)
            #expect(stored.map(\.seq) == Array(1...240))
            #expect(try await first.lastSequence() == 240)
        }
    }

    @Test func aWaitingUploaderWakesOnACommitAndOnAnotherWritersCommit() async throws {
        try await withTemporaryDirectory { directory in
            let spool = try await Spool.open(spoolConfiguration(directory))
            let other = try await Spool.open(spoolConfiguration(directory))
            async let woken: Void = spool.waitForReadings(after: 0, pollInterval: .seconds(3600))
            _ = try await spool.append(readings(1, from: 0))
            await woken  // in-process commit: signalled, no poll needed
            async let polled: Void = spool.waitForReadings(after: 1, pollInterval: .milliseconds(10))
            _ = try await other.append(readings(1, from: 1))
            await polled  // another connection's commit: found by the poll
            #expect(try await spool.lastSequence() == 2)
        }
    }

    @Test func batchInRangeStopsAtTheRangeEnd() async throws {
        try await withTemporaryDirectory { directory in
            let spool = try await Spool.open(spoolConfiguration(directory))
            _ = try await spool.append(readings(100, from: 0))
            let middle = try await spool.batch(in: SequenceRange(11, 20), maximumReadings: 1000)
            #expect(middle?.firstSequence == 11)
            #expect(middle?.readings.count == 10)
            #expect(middle?.readings.first?.value == 10)
            try await spool.acknowledge([SequenceRange(1, 50)])
            #expect(try await spool.batch(in: SequenceRange(1, 50), maximumReadings: 1000) == nil)
            let after = try await spool.batch(in: SequenceRange(1, 60), maximumReadings: 1000)
            #expect(after?.firstSequence == 51)
            #expect(after?.readings.count == 10)
        }
    }
}
