import EdgeSyncCodec
import EdgeSyncProtocol

/// How both stores lay readings out: the order rows are inserted in, what one stored value looks
/// like, and the per-batch facts `stream_stats` keeps.
package enum StorageLayout {
    /// The positions `range` of `readings`, grouped by series and in sequence order within each.
    ///
    /// Rows are inserted in this order so the rows of one series in one batch get consecutive
    /// reading_ids and `series_blocks` needs one row per run (decision 0010). reading_id order
    /// within a batch carries no meaning (decision 0004), so nothing else changes.
    static func groupedBySeries(_ readings: [Reading], _ range: Range<Int>, seriesCount: Int) throws -> [Int] {
        var counts = [Int](repeating: 0, count: seriesCount + 1)
        for position in range {
            let series = readings[position].series
            guard series >= 0, series < seriesCount else {
                throw CollectorStorageError("reading refers to series \(series) of \(seriesCount)")
            }
            counts[series + 1] += 1
        }
        if counts[1] == range.count { return Array(range) }  // one series: already grouped
        for series in 0..<seriesCount { counts[series + 1] += counts[series] }
        var order = [Int](repeating: 0, count: range.count)
        for position in range {
            let series = readings[position].series
            order[counts[series]] = position
            counts[series] += 1
        }
        return order
    }

}

/// A reading's value as the `value` and `value_bits` columns hold it: `value` is NULL for NaN and
/// +0 for -0.0 (what SQL REAL columns and comparisons can hold), and `value_bits` then carries the
/// exact IEEE 754 bits as a signed 64-bit integer; otherwise `value` alone is exact.
package struct StoredValue: Hashable, Sendable {
    package var value: Double?
    package var bits: Int64?

    @inline(__always)
    package init(_ value: Double) {
        if value.isNaN {
            self.value = nil
            bits = Int64(bitPattern: value.bitPattern)
        } else if value == 0 && value.sign == .minus {
            self.value = 0
            bits = Int64(bitPattern: value.bitPattern)
        } else {
            self.value = value
            bits = nil
        }
    }

    /// The reading's exact value from the two columns.
    package static func decode(value: Double?, bits: Int64?) -> Double {
        if let bits { return Double(bitPattern: UInt64(bitPattern: bits)) }
        return value ?? .nan
    }
}

/// What one batch adds to its stream's `stream_stats` row: the timestamps of the readings it
/// stored, how many were implausible, and one clock-skew sample.
package struct BatchTimestamps: Sendable {
    package var newest: Int64?
    package var oldest: Int64?
    package var future: Int64 = 0
    package var past: Int64 = 0
    /// Receive time minus the batch's `sentAt` (positive when the gateway's clock is behind);
    /// `nil` when the sender did not stamp it.
    package var skewSample: Int64?

    package init(_ batch: Batch, newRanges: [SequenceRange], receivedAt: Int64, clock: ClockPlausibility) {
        var newest = Int64.min
        var oldest = Int64.max
        let futureLimit = receivedAt.addingReportingOverflow(clock.futureToleranceNanoseconds)
        let ageLimit = receivedAt.subtractingReportingOverflow(clock.maximumAgeNanoseconds)
        let latestPlausible = futureLimit.overflow ? Int64.max : futureLimit.partialValue
        let earliestPlausible = max(clock.earliestTimestamp, ageLimit.overflow ? Int64.min : ageLimit.partialValue)
        var future: Int64 = 0
        var past: Int64 = 0
        batch.readings.withUnsafeBufferPointer { readings in
            for range in newRanges {
                let start = Int(range.first - batch.firstSequence)
                for index in start..<start + Int(range.count) {
                    let timestamp = readings[index].timestamp
                    newest = max(newest, timestamp)
                    oldest = min(oldest, timestamp)
                    if timestamp > latestPlausible { future += 1 }
                    if timestamp < earliestPlausible { past += 1 }
                }
            }
        }
        if newest >= oldest {
            self.newest = newest
            self.oldest = oldest
        }
        self.future = future
        self.past = past
        if batch.sentAt != 0 {
            let sample = receivedAt.subtractingReportingOverflow(batch.sentAt)
            skewSample = sample.overflow ? (batch.sentAt > 0 ? Int64.min : Int64.max) : sample.partialValue
        }
    }
}

/// One stream as a write transaction sees it: the version and ranges read at its start, the ranges
/// as the transaction's batches extend them, and the version it writes when they changed.
///
/// Versions are random, not counters: a database that goes back in time (a restore, a failover to
/// a standby that missed the last commits) would otherwise reach an old version number again with
/// other ranges, and a collector's cache of the lost ranges would look current.
struct WorkingRanges {
    var key: StreamKey
    var version: Int64
    var original: SequenceRangeSet
    var ranges: SequenceRangeSet
    /// `streams.version` after this transaction when the ranges changed: random, never the old one.
    var next: Int64

    init(key: StreamKey, version: Int64, ranges: SequenceRangeSet) {
        self.key = key
        self.version = version
        self.original = ranges
        self.ranges = ranges
        var next = Int64.random(in: 1...Int64.max)
        while next == version { next = Int64.random(in: 1...Int64.max) }
        self.next = next
    }

    var changed: Bool { ranges != original }
}

/// What a store remembers between transactions: committed stream references, series ids and
/// received ranges (by version). A transaction's new rows are learned only after it commits, so the
/// caches never hold what a rolled-back transaction created.
struct StoreCaches {
    var ranges = ReceivedRangeCache()
    var streamReferences: [StreamKey: Int64] = [:]
    var seriesIDs: [ExactString: [ExactString: Int64]] = [:]
    /// The largest block span known to be committed per series id (`series.max_block_span`).
    var blockSpans: [Int64: Int64] = [:]

    /// The spans of `spans` that are larger than what is known committed: what the transaction
    /// must write to `series.max_block_span` (with `WHERE max_block_span < new`, so a stale cache
    /// never lowers it).
    func spansToWrite(_ spans: BlockSpans) -> [(series: Int64, span: Int64)] {
        spans.largest.filter { $0.value > (blockSpans[$0.key] ?? 0) }.map { ($0.key, $0.value) }
            .sorted { $0.series < $1.series }
    }

    /// Learns what a committed transaction created and changed; returns each touched stream's ranges.
    mutating func learn(
        streams: [StreamKey: Int64], series: [ExactString: [ExactString: Int64]], working: [Int64: WorkingRanges],
        spans: BlockSpans = BlockSpans()
    ) -> [StreamKey: SequenceRangeSet] {
        for (series, span) in spans.largest { blockSpans[series] = max(blockSpans[series] ?? 0, span) }
        for (key, reference) in streams { streamReferences[key] = reference }
        for (device, keys) in series { seriesIDs[device, default: [:]].merge(keys) { _, new in new } }
        var committed: [StreamKey: SequenceRangeSet] = [:]
        for (reference, state) in working {
            let version = state.changed ? state.next : state.version
            ranges.update(reference, version: version, ranges: state.ranges)
            committed[state.key] = state.ranges
        }
        return committed
    }
}

/// The longest `max_timestamp - min_timestamp` among the blocks one transaction writes, per series.
struct BlockSpans {
    private(set) var largest: [Int64: Int64] = [:]

    mutating func add(series: Int64, minimum: Int64, maximum: Int64) {
        let span = maximum.subtractingReportingOverflow(minimum)
        let clamped = span.overflow ? Int64.max : span.partialValue
        if clamped > (largest[series] ?? 0) { largest[series] = clamped }
    }
}
