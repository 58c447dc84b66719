import EdgeSyncCodec
import EdgeSyncProtocol

/// One stream's identity: the device that owns it and the 64-bit id its spool drew.
package struct StreamKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    package var device: String
    package var stream: UInt64

    package init(device: String, stream: UInt64) {
        self.device = device
        self.stream = stream
    }

    // Device ids are compared as bytes, as the database compares them (`ExactString`).
    package static func == (lhs: StreamKey, rhs: StreamKey) -> Bool {
        lhs.stream == rhs.stream && ExactString(lhs.device) == ExactString(rhs.device)
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(stream)
        hasher.combine(ExactString(device))
    }

    /// Device bytes, then stream: the order writers lock streams in.
    package static func < (lhs: StreamKey, rhs: StreamKey) -> Bool {
        let (left, right) = (ExactString(lhs.device), ExactString(rhs.device))
        return left == right ? lhs.stream < rhs.stream : left < right
    }

    package var description: String { "\(device)/\(stream)" }
}

/// What storing one batch did: how many readings were new, how many were already stored.
package struct StoreOutcome: Hashable, Sendable {
    package var accepted: Int
    package var duplicates: Int

    package init(accepted: Int, duplicates: Int) {
        self.accepted = accepted
        self.duplicates = duplicates
    }
}

/// The result of one committed transaction.
package struct StoreCommit: Sendable {
    /// One outcome per batch, in the order they were given.
    package var outcomes: [StoreOutcome]
    /// The committed received ranges of every stream the transaction touched.
    package var committedRanges: [StreamKey: SequenceRangeSet]
    /// The store reconnected to its database before this transaction and dropped what it had
    /// cached: ranges learned from earlier commits may be gone (the database went back to a
    /// standby or a backup), so callers drop theirs too.
    package var forgetsEarlierRanges: Bool

    package init(
        outcomes: [StoreOutcome], committedRanges: [StreamKey: SequenceRangeSet], forgetsEarlierRanges: Bool = false
    ) {
        self.outcomes = outcomes
        self.committedRanges = committedRanges
        self.forgetsEarlierRanges = forgetsEarlierRanges
    }
}

/// Central storage for readings: embedded SQLite now, PostgreSQL later with the same schema shape.
///
/// A store is owned by exactly one writer (it is not `Sendable`) and is used from one thread at a
/// time. Every method that changes data does so in one transaction that either commits as a whole
/// or leaves nothing behind, and it must hold even when other processes write the same database:
/// cached state is checked against the database inside the transaction.
package protocol ReadingStore: AnyObject {
    /// Stores the readings of `batches` that are not yet stored and extends each stream's received
    /// ranges, all in one transaction. Batches of one stream are applied in order, so a group may
    /// hold overlapping batches.
    func store(_ batches: [Batch], receivedAt: Int64) throws -> StoreCommit

    /// Records ranges a device dropped at the edge by policy.
    func recordDropped(_ report: DroppedRangesReport, device: String, receivedAt: Int64) throws

    /// The committed received ranges of a stream (empty for an unknown stream).
    func receivedRanges(of stream: StreamKey) throws -> SequenceRangeSet

    /// Called once by the writer after its last transaction when the collector stops, so a clean
    /// stop leaves the storage compact (SQLite: the WAL checkpointed and truncated). Failures are
    /// the store's to log; the data is committed either way.
    func finishForShutdown()

    /// Called by the writer when nothing is waiting: one bounded piece of background work in its
    /// own transaction (SQLite blocks layout: merging small blocks). Returns whether more may be
    /// waiting, so the writer calls again, between batches, until it returns false.
    func performMaintenance() -> Bool
}

extension ReadingStore {
    package func finishForShutdown() {}
    package func performMaintenance() -> Bool { false }
}

/// Sequence numbers the collector can store: SQL integers are signed 64-bit, so seq ≤ 2^63−1
/// (the edge starts at 1 and counts up; no real stream comes near).
package enum StorageLimits {
    package static let maximumSequence = UInt64(Int64.max)

    /// The sequence numbers `batch` covers (`nil` when it is empty), or an error when they do not
    /// fit in 1...2^63-1.
    package static func sequences(of batch: Batch) throws(CollectorStorageError) -> SequenceRange? {
        guard !batch.readings.isEmpty else { return nil }
        let last = batch.firstSequence + UInt64(batch.readings.count) - 1
        guard batch.firstSequence >= 1, last <= maximumSequence else {
            throw CollectorStorageError("sequence numbers \(batch.firstSequence)...\(last) are outside 1...2^63-1")
        }
        return SequenceRange(batch.firstSequence, last)
    }

    /// Throws unless every dropped range lies in 1...2^63-1.
    package static func check(dropped ranges: [SequenceRange]) throws(CollectorStorageError) {
        for range in ranges where range.first < 1 || range.last > maximumSequence {
            throw CollectorStorageError("dropped range \(range) is outside 1...2^63-1")
        }
    }
}
