import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Synchronization
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
            let middle = try #require(try await spool.frames(in: SequenceRange(11, 20), maximumReadings: 1000, maximumBytes: 1 << 20))
            let decoded = try middle.decoded()
            #expect(decoded.firstSequence == 11)
            #expect(decoded.readings.count == 10)
            #expect(decoded.readings.first?.value == 10)
            #expect(middle.storedReadings == 0, "a cut through a chunk is encoded again")
            try await spool.acknowledge([SequenceRange(1, 50)])
            #expect(try await spool.frames(in: SequenceRange(1, 50), maximumReadings: 1000, maximumBytes: 1 << 20) == nil)
            let after = try #require(try await spool.frames(in: SequenceRange(1, 60), maximumReadings: 1000, maximumBytes: 1 << 20))
            #expect(after.range == SequenceRange(51, 60))
            #expect(try after.decoded().readings.count == 10)
        }
    }

    /// Whole chunks go out as the bytes stored, several to a run, as far as the limits allow; the
    /// run ends at a chunk boundary rather than cut the next chunk.
    @Test func wholeChunksAreHandedOutAsStored() async throws {
        try await withTemporaryDirectory { directory in
            let spool = try await Spool.open(spoolConfiguration(directory))
            for round in 0..<5 { _ = try await spool.append(readings(100, from: round * 100)) }
            let stored = try await spool.allStoredBatches().map(\.batch)
            #expect(stored.count == 5)
            let run = try #require(try await spool.frames(in: SequenceRange(1, 500), maximumReadings: 350, maximumBytes: 1 << 20))
            #expect(run.range == SequenceRange(1, 300))
            #expect(run.frames.count == 3 && run.storedReadings == 300)
            for (frame, batch) in zip(run.frames, stored) {
                #expect(frame.bytes == (try BatchEncoder().encode(batch)), "the stored bytes, not a new encoding")
            }
            let small = try #require(try await spool.frames(in: SequenceRange(1, 500), maximumReadings: 1000, maximumBytes: 1))
            #expect(small.frames.count == 1, "the byte limit ends the run after its first frame")
            // A whole first chunk goes as stored even past maximumReadings; only a range that cuts a
            // chunk makes a new encoding of the part.
            let whole = try #require(try await spool.frames(in: SequenceRange(1, 500), maximumReadings: 50, maximumBytes: 1 << 20))
            #expect(whole.range == SequenceRange(1, 100) && whole.storedReadings == 100)
            let cut = try #require(try await spool.frames(in: SequenceRange(1, 50), maximumReadings: 50, maximumBytes: 1 << 20))
            #expect(cut.range == SequenceRange(1, 50) && cut.storedReadings == 0)
        }
    }

    /// A stored chunk whose bytes were damaged on disk is caught by its checksum before it is
    /// sent, quarantined, and the run continues after it.
    @Test func aDamagedStoredChunkIsQuarantinedNotSent() async throws {
        try await withTemporaryDirectory { directory in
            var configuration = spoolConfiguration(directory)
            let messages = Mutex<[String]>([])
            configuration.onDamagedFile = { message in messages.withLock { $0.append(message) } }
            let spool = try await Spool.open(configuration)
            for round in 0..<3 { _ = try await spool.append(readings(100, from: round * 100)) }
            try await spool.run("damaging") { store in
                try store.database.execute(
                    "UPDATE chunks SET payload = substr(payload, 1, length(payload) - 4) || x'00000000' WHERE first_seq = 1")
            }
            let run = try #require(try await spool.frames(in: SequenceRange(1, 300), maximumReadings: 1000, maximumBytes: 1 << 20))
            #expect(run.range == SequenceRange(101, 300))
            #expect(try await spool.status().quarantinedReadings == 100)
            #expect(messages.withLock { $0.count } == 1)
        }
    }

    /// A spool the previous release wrote (its chunks are version 2 frames): the new agent opens it
    /// and uploads every reading exactly once, still as the stored bytes.
    @Test func aSpoolOfThePreviousReleaseIsReadAndUploaded() async throws {
        try await withTemporaryDirectory { directory in
            let spool = try await Spool.open(spoolConfiguration(directory))
            for round in 0..<6 {
                _ = try await spool.append(
                    (0..<400).map { IncomingReading(seriesKey: "s\($0 % 7)", timestamp: Int64(round * 400 + $0), value: Double($0) / 8) })
            }
            let expected = try await storedReadings(spool)
            // Rewrite every chunk as the previous release stored it: version 2, sentAt 0.
            try await spool.run("writing version 2 chunks") { store in
                var chunks: [(UInt64, [UInt8])] = []
                try store.forEachChunk { row, decoded in
                    chunks.append((row.first, try BatchEncoder(options: EncodingOptions(version: .v2)).encode(try decoded.get())))
                }
                let update = try store.database.prepare("UPDATE chunks SET payload = ?2, bytes = ?3 WHERE first_seq = ?1")
                for (first, payload) in chunks {
                    try update.bind(Int64(first), at: 1)
                    try update.bind(bytes: payload, at: 2)
                    try update.bind(payload.count, at: 3)
                    try update.run()
                    update.reset()
                }
            }
            let reopened = try await Spool.open(spoolConfiguration(directory))
            let versions = try await reopened.run("reading versions") { store in
                let select = try store.database.prepare("SELECT payload FROM chunks")
                var versions: Set<UInt8> = []
                while try select.step() { versions.insert(select.blob(at: 0)[4]) }
                return versions
            }
            #expect(versions == [2])
            #expect(try await storedReadings(reopened).map(\.seq) == expected.map(\.seq))
            let collector = MemoryCollector()
            let uploader = Uploader(source: reopened, transport: collector, clock: ImmediateClock(), wallClock: { 5 })
            let statistics = try await uploader.run(.untilEmpty)
            #expect(statistics.readingsAcknowledged == 2400)
            #expect(statistics.readingsSentAsStored == 2400)
            let state = collector.state.withLock { $0 }
            #expect(state.received.ranges == [SequenceRange(1, 2400)])
            for reading in expected {
                #expect(state.stored[reading.seq]?.value == reading.value)
                #expect(state.storedKeys[reading.seq] == reading.key)
            }
            #expect(try await reopened.status().queuedReadings == 0)
        }
    }
}
