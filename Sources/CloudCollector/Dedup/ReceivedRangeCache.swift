import EdgeSyncProtocol

/// The writer's memory of each stream's received ranges, tagged with the stream's version counter.
///
/// The database is the truth: another collector sharing it may have stored batches since this one
/// last looked. Inside each write transaction the store reads the stream's version (one indexed row)
/// and uses the cached ranges only when the versions agree; otherwise it reloads them. Only
/// committed state enters the cache.
package struct ReceivedRangeCache: Sendable {
    package struct Entry: Sendable {
        package var version: Int64
        package var ranges: SequenceRangeSet
    }

    private var entries: [Int64: Entry] = [:]

    package init() {}

    /// The cached ranges of `streamReference` if they are those of `version`.
    package func ranges(of streamReference: Int64, atVersion version: Int64) -> SequenceRangeSet? {
        guard let entry = entries[streamReference], entry.version == version else { return nil }
        return entry.ranges
    }

    package mutating func update(_ streamReference: Int64, version: Int64, ranges: SequenceRangeSet) {
        entries[streamReference] = Entry(version: version, ranges: ranges)
    }

    package mutating func forget(_ streamReference: Int64) {
        entries[streamReference] = nil
    }
}

/// The parts of a batch to store, from the stream's received ranges before and after the batch.
package struct DedupDecision: Hashable, Sendable {
    /// New sequence ranges, in order.
    package var newRanges: [SequenceRange]
    package var accepted: Int
    package var duplicates: Int

    /// Inserts `batchRange` into `ranges` and reports what was new.
    package static func apply(_ batchRange: SequenceRange, to ranges: inout SequenceRangeSet) -> DedupDecision {
        let added = ranges.insert(batchRange)
        let accepted = added.reduce(0) { $0 + Int($1.count) }
        return DedupDecision(newRanges: added, accepted: accepted, duplicates: Int(batchRange.count) - accepted)
    }
}
