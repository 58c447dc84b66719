import CloudCollector
import EdgeSyncCodec
import EdgeSyncPostgres
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import Synchronization
import Testing

/// Runs `body` with the URL of a new database on the test process's PostgreSQL server, or prints
/// why it is skipped when PostgreSQL is not installed.
func withPostgresDatabase(_ body: (String) async throws -> Void) async throws {
    guard let server = try await PostgresTestServer.sharedOrSkip() else { return }
    try await body(try await server.makeDatabase())
}

extension Fixtures {
    /// Everything in `readings_view` of a PostgreSQL database.
    static func storedReadings(postgresURL url: String) throws -> [StoredReading] {
        let connection = try PostgresConnection(url: url)
        let rows = try connection.query(
            "SELECT device, stream, seq, series_key, timestamp, value, value_bits FROM readings_view")
        return try (0..<rows.count).map { row in
            let bits =
                try rows.int64(row, 6).map { UInt64(bitPattern: $0) } ?? (try rows.double(row, 5) ?? .nan).bitPattern
            return StoredReading(
                device: rows.string(row, 0) ?? "", stream: UInt64(rows.string(row, 1) ?? "") ?? 0,
                seq: UInt64(try rows.requiredInt64(row, 2)), seriesKey: rows.string(row, 3) ?? "",
                timestamp: try rows.requiredInt64(row, 4), valueBits: bits)
        }.sorted { ($0.device, $0.stream, $0.seq) < ($1.device, $1.stream, $1.seq) }
    }
}

/// The PostgreSQL store on its own, against a real server: the same exactly-once contract as the
/// SQLite store, across several store instances (collectors) writing one database at once.
@Suite(.serialized) struct PostgresStoreTests {
    private func store(_ url: String) throws -> PostgresReadingStore {
        try PostgresReadingStore(session: PostgresSession.Configuration(url: url))
    }

    @Test func repeatsOverlapsAndGapsAreStoredExactlyOnce() async throws {
        try await withPostgresDatabase { url in
            let store = try store(url)
            let batches = [
                Fixtures.batch(first: 1, count: 100),
                Fixtures.batch(first: 1, count: 100),  // the same again
                Fixtures.batch(first: 51, count: 100),  // half new
                Fixtures.batch(first: 201, count: 50),  // leaves a gap 151...200
                Fixtures.batch(first: 120, count: 120),  // fills the gap, overlaps both sides
            ]
            let outcomes = try batches.map { try store.store([$0], receivedAt: 0).outcomes[0] }
            #expect(outcomes.map(\.accepted) == [100, 0, 50, 50, 50])
            #expect(outcomes.map(\.duplicates) == [0, 100, 50, 0, 70])
            #expect(try Fixtures.storedReadings(postgresURL: url) == Fixtures.expected(batches))
            let key = StreamKey(device: "gateway-1", stream: batches[0].stream)
            #expect(try store.receivedRanges(of: key).ranges == [SequenceRange(1, 250)])

            // One group with a thousand gaps, then one batch over all of it.
            let odd = (0..<500).map { Fixtures.batch(stream: 7, first: UInt64(2 * $0 + 1), count: 1) }
            #expect(try store.store(odd, receivedAt: 0).outcomes.allSatisfy { $0.accepted == 1 })
            let all = Fixtures.batch(stream: 7, first: 1, count: 1000)
            #expect(try store.store([all], receivedAt: 0).outcomes == [StoreOutcome(accepted: 500, duplicates: 500)])
            #expect(try store.receivedRanges(of: StreamKey(device: "gateway-1", stream: 7)).ranges == [SequenceRange(1, 1000)])
            #expect(try Fixtures.storedReadings(postgresURL: url) == Fixtures.expected(batches + [all]))
        }
    }

    @Test func awkwardValuesKeepTheirExactBits() async throws {
        try await withPostgresDatabase { url in
            let awkward: [Double] = [
                -0.0, 0.0, .nan, -Double.nan, Double(bitPattern: 0x7FF0_0000_0000_0001),
                Double(bitPattern: 0xFFF8_DEAD_BEEF_0042), .infinity, -.infinity, .leastNonzeroMagnitude,
                .greatestFiniteMagnitude, 0.1, -1e-300, 21.5,
            ]
            for format in PostgresCopyFormat.allCases {
                var configuration = PostgresReadingStore.Configuration()
                configuration.copyFormat = format
                let store = try PostgresReadingStore(
                    session: PostgresSession.Configuration(url: url), configuration: configuration)
                let stream: UInt64 = format == .binary ? 1 : 2
                let batch = Batch(
                    device: "d", stream: stream, firstSequence: 1, seriesKeys: ["x"],
                    readings: awkward.enumerated().map { Reading(series: 0, timestamp: Int64($0.offset), value: $0.element) })
                _ = try store.store([batch], receivedAt: 0)
                let stored = try Fixtures.storedReadings(postgresURL: url).filter { $0.stream == stream }
                #expect(stored.map(\.valueBits) == awkward.map(\.bitPattern), "COPY format \(format)")
            }
        }
    }

    /// Three stores (three collectors) take overlapping batches of the same streams from three
    /// threads at once: each reading is stored once, and the outcomes add up.
    @Test func concurrentCollectorsOnTheSameStreamsStoreEachReadingOnce() async throws {
        try await withPostgresDatabase { url in
            let stores = try (0..<3).map { _ in try store(url) }
            let streams: [UInt64] = [11, 12, 13, 14]
            // Every collector gets every batch of every stream, in a different order.
            let batches = streams.flatMap { stream in
                (0..<40).map { Fixtures.batch(device: "gw-\(stream % 2)", stream: stream, first: UInt64($0 * 90 + 1), count: 120) }
            }
            let accepted = Mutex(0)
            let failures = Mutex<[String]>([])
            let bodies = stores.enumerated().map { index, store -> @Sendable () -> Void in
                let box = UncheckedBox(store)
                var order = batches
                var random = SeededRandom(seed: UInt64(index + 1))
                order.shuffle(using: &random)
                let mine = order
                return {
                    let order = mine
                    do {
                        var offset = 0
                        while offset < order.count {
                            let group = Array(order[offset..<min(order.count, offset + 5)])
                            let commit = try box.value.store(group, receivedAt: 0)
                            accepted.withLock { $0 += commit.outcomes.reduce(0) { $0 + $1.accepted } }
                            offset += 5
                        }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
            }
            await ThreadGroup(bodies).wait()
            #expect(failures.withLock { $0 } == [])
            let expected = Fixtures.expected(batches)
            #expect(accepted.withLock { $0 } == expected.count)
            #expect(try Fixtures.storedReadings(postgresURL: url) == expected)
        }
    }

    /// Review: the range cache is keyed by the per-row `streams.version` counter, which goes back
    /// when the database does (a failover to an asynchronous standby that lost the last commits, a
    /// restore). Ops docs say collectors need no restart then. Here collector A's last commit is
    /// lost (modelled by undoing it in SQL), B then brings the stream back to A's cached version
    /// with other ranges, and a retried batch sent to A is stored a second time.
    @Test func aDatabaseThatWentBackDoesNotMakeACachedCollectorStoreTwice() async throws {
        try await withPostgresDatabase { url in
            let a = try store(url)
            let b = try store(url)
            let first = Fixtures.batch(first: 1, count: 100)
            let lost = Fixtures.batch(first: 101, count: 100)
            let next = Fixtures.batch(first: 201, count: 100)
            _ = try a.store([first], receivedAt: 0)  // version 1
            _ = try a.store([lost], receivedAt: 0)  // version 2, cached by A
            // The new primary never saw A's second commit.
            let admin = try PostgresConnection(url: url)
            try admin.execute(
                """
                DELETE FROM readings WHERE seq > 100;
                DELETE FROM received_ranges;
                INSERT INTO received_ranges SELECT stream_ref, 1, 100 FROM streams;
                UPDATE streams SET version = 1
                """)
            _ = try b.store([next], receivedAt: 0)  // version 2 again, other ranges
            // The edge retries `next` (its answer was lost) and the balancer picks A.
            let retried = try a.store([next], receivedAt: 0).outcomes[0]
            #expect(retried.duplicates == 100)
            #expect(try admin.query("SELECT count(*) FROM readings WHERE seq > 200").int64(0, 0) == 100)
        }
    }

    /// The writer's connection is cut (a restart, a failover): the next commit comes from a new
    /// connection with every cache dropped, and says so, so the ingest writer drops its own.
    @Test func aReconnectedWriterForgetsWhatItCached() async throws {
        try await withPostgresDatabase { url in
            var session = PostgresSession.Configuration(url: url)
            session.applicationName = "writer-under-test"
            session.retryInterval = .zero
            let store = try PostgresReadingStore(session: session)
            #expect(try store.store([Fixtures.batch(first: 1, count: 10)], receivedAt: 0).forgetsEarlierRanges == false)
            let admin = try PostgresConnection(url: url)
            try admin.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                ["writer-under-test"])
            #expect {
                _ = try store.store([Fixtures.batch(first: 11, count: 10)], receivedAt: 0)
            } throws: { error in
                (error as? PostgresError)?.isUnavailable == true
            }
            let after = try store.store([Fixtures.batch(first: 11, count: 10)], receivedAt: 0)
            #expect(after.forgetsEarlierRanges)
            #expect(after.outcomes == [StoreOutcome(accepted: 10, duplicates: 0)])
            #expect(store.connectCount == 2)
        }
    }

    /// Another session holds the stream's row lock (a frozen collector): the writer gives up after
    /// its lock timeout with an error the collector answers 503 for, and stores nothing.
    @Test func aStreamLockedElsewhereTimesOutAsUnavailable() async throws {
        try await withPostgresDatabase { url in
            var configuration = PostgresReadingStore.Configuration()
            configuration.lockTimeout = .milliseconds(300)
            let store = try PostgresReadingStore(session: PostgresSession.Configuration(url: url), configuration: configuration)
            _ = try store.store([Fixtures.batch(first: 1, count: 10)], receivedAt: 0)
            let holder = try PostgresConnection(url: url)
            try holder.execute("BEGIN; SELECT * FROM streams FOR UPDATE")
            #expect {
                _ = try store.store([Fixtures.batch(first: 11, count: 10)], receivedAt: 0)
            } throws: { error in
                (error as? PostgresError)?.sqlState == "55P03" && (error as? PostgresError)?.isUnavailable == true
            }
            try holder.execute("ROLLBACK")
            #expect(try store.store([Fixtures.batch(first: 11, count: 10)], receivedAt: 0).outcomes[0].accepted == 10)
        }
    }

    @Test func collectorsStartingTogetherCreateTheSchemaOnce() async throws {
        try await withPostgresDatabase { url in
            let results = await withTaskGroup(of: String?.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        do {
                            _ = try PostgresReadingStore(session: PostgresSession.Configuration(url: url))
                            return nil
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                return await group.reduce(into: [String?]()) { $0.append($1) }
            }
            #expect(results.compactMap { $0 } == [])
            let connection = try PostgresConnection(url: url)
            #expect(try connection.query("SELECT version FROM collector_schema").int64(0, 0) == PostgresSchema.version)
            #expect(try connection.query("SELECT count(*) FROM collector_schema").int64(0, 0) == 1)
        }
    }

    @Test func aNewerSchemaIsRefusedByName() async throws {
        try await withPostgresDatabase { url in
            _ = try store(url)
            try PostgresConnection(url: url).execute("UPDATE collector_schema SET version = 99")
            #expect {
                _ = try store(url)
            } throws: { error in
                "\(error)".contains("schema version 99")
            }
        }
    }

    /// PostgreSQL text cannot hold U+0000: a series key with one is refused with a clear error
    /// and nothing of its group is stored (SQLite stores such keys; the codec allows them).
    @Test func aNulInASeriesKeyFailsTheGroupCleanly() async throws {
        try await withPostgresDatabase { url in
            let store = try store(url)
            let bad = Batch(
                device: "d", stream: 1, firstSequence: 1, seriesKeys: ["a\u{0}b"],
                readings: [Reading(series: 0, timestamp: 1, value: 1)])
            let good = Fixtures.batch(device: "d", stream: 2, first: 1, count: 10)
            #expect {
                _ = try store.store([good, bad], receivedAt: 0)
            } throws: { error in
                "\(error)".contains("NUL")
            }
            #expect(try Fixtures.storedReadings(postgresURL: url) == [])
            #expect(try store.store([good], receivedAt: 0).outcomes == [StoreOutcome(accepted: 10, duplicates: 0)])
        }
    }

    /// Series keys are bytes: "é" precomposed and decomposed are two series, in one group or two.
    @Test func canonicallyEquivalentKeysAreTwoSeries() async throws {
        try await withPostgresDatabase { url in
            let store = try store(url)
            let keys = ["caf\u{e9} v", "cafe\u{301} v"]
            let both = Batch(
                device: "gw", stream: 1, firstSequence: 1, seriesKeys: keys,
                readings: [Reading(series: 0, timestamp: 1, value: 1), Reading(series: 1, timestamp: 2, value: 2)])
            let later = Batch(
                device: "gw", stream: 1, firstSequence: 3, seriesKeys: [keys[1]],
                readings: [Reading(series: 0, timestamp: 3, value: 3)])
            _ = try store.store([both], receivedAt: 0)
            _ = try store.store([later], receivedAt: 0)
            let stored = try Fixtures.storedReadings(postgresURL: url)
            #expect(stored.map { Array($0.seriesKey.utf8) } == [keys[0], keys[1], keys[1]].map { Array($0.utf8) })
        }
    }

    @Test func droppedRangesAreRecordedOnce() async throws {
        try await withPostgresDatabase { url in
            let store = try store(url)
            let report = DroppedRangesReport(
                device: "d", stream: 5, dropped: [SequenceRange(1, 10), SequenceRange(20, 30)])
            try store.recordDropped(report, device: "d", receivedAt: 1)
            try store.recordDropped(report, device: "d", receivedAt: 2)
            let rows = try PostgresConnection(url: url).query(
                "SELECT first_seq, last_seq FROM dropped_ranges ORDER BY first_seq")
            #expect(rows.count == 2)
            #expect(try rows.int64(1, 0) == 20)
        }
    }
}

/// Holds a non-Sendable value for a thread that is its only user.
private final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Starts threads and awaits all of them.
private final class ThreadGroup: Sendable {
    private let remaining: Mutex<(count: Int, waiter: CheckedContinuation<Void, Never>?)>

    init(_ bodies: [@Sendable () -> Void]) {
        remaining = Mutex((bodies.count, nil))
        for body in bodies {
            Thread { [self] in
                body()
                finishOne()
            }.start()
        }
    }

    private func finishOne() {
        let waiter = remaining.withLock { state -> CheckedContinuation<Void, Never>? in
            state.count -= 1
            return state.count == 0 ? state.waiter : nil
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let done = remaining.withLock { state -> Bool in
                if state.count == 0 { return true }
                state.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
    }
}
