import CloudCollector
import Dispatch
import EdgeSyncCodec
import EdgeSyncProtocol
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
