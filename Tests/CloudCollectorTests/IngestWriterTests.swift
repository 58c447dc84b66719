import CloudCollector
import Dispatch
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Synchronization
import Testing

/// A store that blocks in `store` until the test lets it go, so the writer's queue can be filled
/// deterministically.
private final class GatedStore: ReadingStore, @unchecked Sendable {
    // `entered` and `release` are semaphores (thread-safe); `groups` is touched only on the writer's queue
    // and read by the test after the writer is closed.
    let entered = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    var groups: [[Batch]] = []

    func store(_ batches: [Batch], receivedAt: Int64) throws -> StoreCommit {
        groups.append(batches)
        entered.signal()
        release.wait()
        return StoreCommit(
            outcomes: batches.map { StoreOutcome(accepted: $0.readings.count, duplicates: 0) }, committedRanges: [:])
    }
    func recordDropped(_ report: DroppedRangesReport, device: String, receivedAt: Int64) throws {}
    func receivedRanges(of stream: StreamKey) throws -> SequenceRangeSet { SequenceRangeSet() }
}

struct IngestWriterTests {
    @Test func fullQueueRefusesAtOnceAndWaitingBatchesCommitTogether() async throws {
        let store = GatedStore()
        var configuration = IngestWriter.Configuration()
        configuration.maximumQueuedReadings = 250
        let writer = IngestWriter(store: store, configuration: configuration)

        let first = Task { try await writer.submit(Fixtures.batch(first: 1, count: 100)) }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                store.entered.wait()  // the writer is inside the first transaction
                continuation.resume()
            }
        }
        // Two batches fit in the queue behind it...
        let second = Task { try await writer.submit(Fixtures.batch(first: 101, count: 100)) }
        let third = Task { try await writer.submit(Fixtures.batch(first: 201, count: 100)) }
        // Wait (yielding, no timers) until both wait in the queue; then one more does not fit.
        var spins = 0
        while writer.queuedReadings < 200, spins < 1_000_000 {
            await Task.yield()
            spins += 1
        }
        #expect(writer.queuedReadings == 200)
        await #expect(throws: IngestWriter.IngestRejection.queueFull) {
            try await writer.submit(Fixtures.batch(first: 1001, count: 100))
        }
        store.release.signal()
        store.release.signal()
        store.release.signal()
        #expect(try await first.value.accepted == 100)
        #expect(try await second.value.accepted == 100)
        #expect(try await third.value.accepted == 100)
        await writer.close()
        // The two that waited were committed in one transaction.
        #expect(store.groups.map(\.count) == [1, 2])
        await #expect(throws: IngestWriter.IngestRejection.closed) {
            try await writer.submit(Fixtures.batch(first: 5000, count: 1))
        }
    }
}

/// Wraps the real store and holds the first transaction until the test releases it.
private final class HeldStore: ReadingStore, @unchecked Sendable {
    // `inner` is used only on the writer's queue; the semaphores are thread-safe.
    let inner: SQLiteReadingStore
    let entered = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)

    init(_ inner: SQLiteReadingStore) { self.inner = inner }

    func store(_ batches: [Batch], receivedAt: Int64) throws -> StoreCommit {
        entered.signal()
        release.wait()
        return try inner.store(batches, receivedAt: receivedAt)
    }
    func recordDropped(_ report: DroppedRangesReport, device: String, receivedAt: Int64) throws {
        try inner.recordDropped(report, device: device, receivedAt: receivedAt)
    }
    func receivedRanges(of stream: StreamKey) throws -> SequenceRangeSet { try inner.receivedRanges(of: stream) }
}

/// Holds the `HeldStore` the service made, for the test to reach.
private final class StoreSlot: @unchecked Sendable {
    // Written once by the factory during `CollectorService.init`, read by the test afterwards.
    var store: HeldStore?
}

struct GracefulShutdownTests {
    /// A shutdown that begins while a batch is inside its transaction lets it commit and answers 200.
    @Test func shutdownLetsTheInFlightBatchCommit() async throws {
        try await withTemporaryDirectory(prefix: "collector-shutdown") { directory in
            var configuration = CollectorService.Configuration(dataDirectory: directory)
            configuration.port = 0
            let slot = StoreSlot()
            let service = try CollectorService(
                configuration: configuration,
                makeStore: { configuration, logger in
                    let store = HeldStore(try SQLiteReadingStore(path: configuration.databasePath, logger: logger))
                    slot.store = store
                    return store
                })
            let held = try #require(slot.store)
            let token = try TokenStore.add(
                device: "gateway-1", in: try SQLiteDatabase(path: configuration.databasePath), now: 0)
            let serving = Task { try await service.run() }
            let port = try await service.localAddress.port
            let batch = Fixtures.batch(first: 1, count: 5000)
            let frame = try BatchEncoder().encode(batch)
            let response = Task {
                try await onDedicatedThread {
                    try BlockingHTTPClient(port: port).post(
                        ProtocolPath.batches, body: frame, headers: [("Authorization", "Bearer \(token.text)")])
                }
            }
            try await onDedicatedThread { held.entered.wait() }  // the batch is in its transaction
            service.shutdown()
            held.release.signal()
            let answer = try await response.value
            #expect(answer.status == 200)
            try await serving.value
            #expect(try Fixtures.storedReadings(databasePath: configuration.databasePath) == Fixtures.expected([batch]))
        }
    }
}
