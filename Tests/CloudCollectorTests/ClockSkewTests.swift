import CloudCollector
import EdgeSyncCodec
import EdgeSyncTestSupport
import Testing

/// The smoothed clock skew of a stream (receive time − `sentAt`), with the receive times injected.
@Suite struct ClockSkewTests {
    private static let start: Int64 = 1_800_000_000_000_000_000
    private static let second: Int64 = 1_000_000_000

    /// Stores one batch of readings `first...` received at `receivedAt` from a gateway whose clock
    /// is `skewSeconds` behind (negative: ahead).
    private static func send(
        _ store: SQLiteReadingStore, first: UInt64, receivedAt: Int64, skewSeconds: Double
    ) throws {
        var batch = Fixtures.batch(first: first, count: 1)
        batch.sentAt = receivedAt - Int64(skewSeconds * 1e9)
        _ = try store.store([batch], receivedAt: receivedAt)
    }

    private static func skewSeconds(_ path: String) async throws -> Double? {
        let facts = try await SQLiteReadingQueries(databasePath: path).streams()
        return try #require(facts.first).skewNanoseconds.map { $0 / 1e9 }
    }

    /// Issue 17: after a gateway's clock was set right (from 1.1e6 s ahead), the figure stayed at
    /// −1.1e6 s long after the samples said 0.0006 s. Batches every 5 s for three minutes must
    /// bring it within a second (the per-batch weight of 0.2 alone would leave 357 s).
    @Test func theFigureFollowsACorrectedClockWithinMinutes() async throws {
        try await withTemporaryDirectory(prefix: "skew") { directory in
            let path = directory + "/collector.sqlite"
            let store = try SQLiteReadingStore(path: path)
            var seq: UInt64 = 1
            var now = Self.start
            for _ in 0..<60 {
                try Self.send(store, first: seq, receivedAt: now, skewSeconds: -1.1e6)
                seq += 1
                now += Self.second
            }
            let wrong = try #require(try await Self.skewSeconds(path))
            #expect(abs(wrong + 1.1e6) < 1, "settled on the wrong clock: \(wrong)")
            for _ in 0..<36 {
                now += 5 * Self.second
                try Self.send(store, first: seq, receivedAt: now, skewSeconds: 0.0006)
                seq += 1
            }
            let corrected = try #require(try await Self.skewSeconds(path))
            #expect(abs(corrected) < 1, "three minutes after the correction: \(corrected) s")
        }
    }

    /// Batches close together still average: one odd sample 250 ms after the last moves the
    /// figure by the smallest weight (0.2), not to itself.
    @Test func closeSamplesAreStillSmoothed() async throws {
        try await withTemporaryDirectory(prefix: "skew") { directory in
            let path = directory + "/collector.sqlite"
            let store = try SQLiteReadingStore(path: path)
            try Self.send(store, first: 1, receivedAt: Self.start, skewSeconds: 2)
            try Self.send(store, first: 2, receivedAt: Self.start + Self.second / 4, skewSeconds: 12)
            let skew = try #require(try await Self.skewSeconds(path))
            // 1 - exp(-0.025) is below the floor of 0.2: 2 + 0.2 × (12 - 2) = 4.
            #expect(abs(skew - 4) < 1e-6, "\(skew)")
        }
    }
}
