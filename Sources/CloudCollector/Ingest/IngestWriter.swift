import Dispatch
import EdgeSyncCodec
import EdgeSyncProtocol
import Foundation
import Synchronization

/// The single writer: owns the `ReadingStore` on a private serial queue and commits the batches
/// waiting in front of it in large transactions (group commit).
///
/// The queue in front of it is bounded by readings: a batch that does not fit is refused at once
/// with ``IngestRejection/queueFull`` (the HTTP layer answers 503 with Retry-After), so memory never
/// grows with the load. A batch whose readings are all in the committed received ranges is answered
/// without queueing: received ranges only ever grow, so what this writer has seen committed is
/// stored, whatever other collectors sharing the database have done since.
package final class IngestWriter: Sendable {
    package struct Configuration: Sendable {
        /// Readings waiting for the writer (not counting the transaction in progress).
        package var maximumQueuedReadings = 2_000_000
        /// Readings in one transaction, at most (a single larger batch still gets its own).
        package var maximumReadingsPerTransaction = 400_000

        package init() {}
    }

    package enum IngestRejection: Error, Hashable, Sendable {
        case queueFull
        case closed
    }

    private struct Pending {
        var batch: Batch
        var continuation: CheckedContinuation<StoreOutcome, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        var pendingReadings = 0
        var isDrainScheduled = false
        var isClosed = false
        /// A step of the store's background work is queued (`maintain`).
        var isMaintaining = false
        /// Received ranges known to be committed, for the duplicate fast path.
        var committed: [StreamKey: SequenceRangeSet] = [:]
    }

    /// Holds the non-Sendable store; it is touched only by blocks running on `queue`.
    private final class StoreBox: @unchecked Sendable {
        let store: any ReadingStore
        init(_ store: any ReadingStore) { self.store = store }
    }

    private let configuration: Configuration
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "cloud-collector.writer", qos: .userInitiated)
    private let box: StoreBox
    private let now: @Sendable () -> Int64

    package init(
        store: any ReadingStore, configuration: Configuration = Configuration(),
        now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1e9) }
    ) {
        self.box = StoreBox(store)
        self.configuration = configuration
        self.now = now
        // Background work left from before a restart starts without waiting for a batch.
        scheduleMaintenance()
    }

    /// Stores the batch's new readings; returns after the transaction holding them has committed.
    ///
    /// - Throws: ``IngestRejection`` when the queue is full or the writer is closed, or the store's
    ///   error when the transaction failed (nothing of the batch is then stored).
    package func submit(_ batch: Batch) async throws -> StoreOutcome {
        let count = batch.readings.count
        guard count > 0 else { return StoreOutcome(accepted: 0, duplicates: 0) }
        let range = SequenceRange(batch.firstSequence, batch.firstSequence + UInt64(count) - 1)
        let key = StreamKey(device: batch.device, stream: batch.stream)
        let isDuplicate = state.withLock { state in
            state.committed[key].map { $0.missing(from: range).isEmpty } ?? false
        }
        if isDuplicate { return StoreOutcome(accepted: 0, duplicates: count) }

        return try await withCheckedThrowingContinuation { continuation in
            let outcome: Result<Bool, IngestRejection> = state.withLock { state in
                if state.isClosed { return .failure(.closed) }
                if !state.pending.isEmpty, state.pendingReadings + count > configuration.maximumQueuedReadings {
                    return .failure(.queueFull)
                }
                state.pending.append(Pending(batch: batch, continuation: continuation))
                state.pendingReadings += count
                if state.isDrainScheduled { return .success(false) }
                state.isDrainScheduled = true
                return .success(true)
            }
            switch outcome {
            case .failure(let rejection): continuation.resume(throwing: rejection)
            case .success(true): queue.async { self.drain() }
            case .success(false): break
            }
        }
    }

    /// Readings waiting in the queue (not those in the transaction in progress); for metrics.
    package var queuedReadings: Int { state.withLock { $0.pendingReadings } }

    /// Records a dropped-ranges report through the same writer.
    package func recordDropped(_ report: DroppedRangesReport, device: String) async throws {
        let box = self.box
        let receivedAt = now()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async {
                continuation.resume(
                    with: Result { try box.store.recordDropped(report, device: device, receivedAt: receivedAt) })
            }
        }
    }

    /// Records a processing-counts report through the same writer; false when the store keeps
    /// none (the endpoint then answers 404, as a collector without the endpoint would).
    package func recordProcessing(_ report: ProcessingCountsReport, device: String) async throws -> Bool {
        let box = self.box
        let receivedAt = now()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
            queue.async {
                continuation.resume(
                    with: Result {
                        guard let store = box.store as? any ProcessingCountsStore else { return false }
                        try store.recordProcessing(report, device: device, receivedAt: receivedAt)
                        return true
                    })
            }
        }
    }

    /// Refuses new batches and returns once every queued one is committed (or failed) and the
    /// store has finished (`ReadingStore.finishForShutdown`, once).
    package func close() async {
        let first = state.withLock { state in
            defer { state.isClosed = true }
            return !state.isClosed
        }
        let box = self.box
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                // Runs after every drain already queued: no transaction follows it.
                if first { box.store.finishForShutdown() }
                continuation.resume()
            }
        }
    }

    /// Runs on `queue`: commits groups until nothing is waiting.
    private func drain() {
        while true {
            let group: [Pending] = state.withLock { state in
                guard !state.pending.isEmpty else {
                    state.isDrainScheduled = false
                    return []
                }
                var readings = 0
                var taken = 0
                for pending in state.pending {
                    if taken > 0, readings + pending.batch.readings.count > configuration.maximumReadingsPerTransaction
                    {
                        break
                    }
                    readings += pending.batch.readings.count
                    taken += 1
                }
                let group = Array(state.pending.prefix(taken))
                state.pending.removeFirst(taken)
                state.pendingReadings -= readings
                return group
            }
            if group.isEmpty {
                scheduleMaintenance()
                return
            }
            commit(group)
        }
    }

    /// Queues one step of the store's background work (merging small blocks) behind whatever is
    /// queued, unless a step is queued already.
    private func scheduleMaintenance() {
        let schedules = state.withLock { state in
            defer { state.isMaintaining = true }
            return !state.isMaintaining && !state.isClosed
        }
        if schedules { queue.async { self.maintain() } }
    }

    /// Runs on `queue`: one bounded step, only while no batch waits and the writer is open; queued
    /// again while the store has more, so each batch waits for at most one step.
    private func maintain() {
        let idle = state.withLock { state in
            state.isMaintaining = false
            return !state.isClosed && state.pending.isEmpty
        }
        guard idle, box.store.performMaintenance() else { return }
        scheduleMaintenance()
    }

    private func commit(_ group: [Pending]) {
        do {
            let result = try box.store.store(group.map(\.batch), receivedAt: now())
            state.withLock { state in
                if result.forgetsEarlierRanges { state.committed.removeAll() }
                for (key, ranges) in result.committedRanges { state.committed[key] = ranges }
            }
            for (pending, outcome) in zip(group, result.outcomes) { pending.continuation.resume(returning: outcome) }
        } catch {
            // One bad batch must not fail its neighbours: retry them one by one.
            if group.count > 1 {
                for pending in group { commit([pending]) }
            } else {
                for pending in group { pending.continuation.resume(throwing: error) }
            }
        }
    }
}
