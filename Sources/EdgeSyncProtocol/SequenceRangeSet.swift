/// A set of sequence numbers stored as sorted, disjoint, non-adjacent inclusive ranges.
///
/// This is how the collector remembers what a stream has delivered, so deduplicating a batch costs a
/// binary search over the stream's ranges (usually one) instead of a lookup per reading. A stream
/// delivered in order stays a single range however many readings it holds.
package struct SequenceRangeSet: Hashable, Sendable, CustomStringConvertible {
    /// Sorted by `first`; no two ranges overlap or touch.
    package private(set) var ranges: [SequenceRange]

    package init() { ranges = [] }

    /// Builds the set from ranges in any order, overlapping or not.
    package init<S: Sequence>(_ ranges: S) where S.Element == SequenceRange {
        self.init()
        for range in ranges { insert(range) }
    }

    package var isEmpty: Bool { ranges.isEmpty }

    /// How many sequence numbers the set holds.
    package var count: UInt64 { ranges.reduce(0) { $0 &+ $1.count } }

    package func contains(_ sequence: UInt64) -> Bool {
        guard let index = indexOfLastRange(startingAtOrBefore: sequence) else { return false }
        return ranges[index].contains(sequence)
    }

    /// The parts of `range` that are not in the set, in order.
    package func missing(from range: SequenceRange) -> [SequenceRange] {
        var result: [SequenceRange] = []
        var cursor = range.first
        var index = indexOfLastRange(startingAtOrBefore: range.first) ?? 0
        while index < ranges.count, ranges[index].first <= range.last {
            let present = ranges[index]
            index += 1
            if present.last < cursor { continue }
            if present.first > cursor { result.append(SequenceRange(cursor, present.first - 1)) }
            if present.last >= range.last { return result }
            cursor = present.last + 1
        }
        result.append(SequenceRange(cursor, range.last))
        return result
    }

    /// Adds `range` and returns the parts of it that were not already present, in order.
    @discardableResult
    package mutating func insert(_ range: SequenceRange) -> [SequenceRange] {
        let added = missing(from: range)
        guard !added.isEmpty else { return [] }
        // Merge with every range that overlaps or touches `range`.
        let lowerNeighbour = range.first == 0 ? 0 : range.first - 1
        let upperNeighbour = range.last == UInt64.max ? UInt64.max : range.last + 1
        var start = indexOfLastRange(startingAtOrBefore: lowerNeighbour) ?? 0
        if start < ranges.count, ranges[start].last < lowerNeighbour { start += 1 }
        var end = start
        var merged = range
        while end < ranges.count, ranges[end].first <= upperNeighbour {
            merged = SequenceRange(min(merged.first, ranges[end].first), max(merged.last, ranges[end].last))
            end += 1
        }
        ranges.replaceSubrange(start..<end, with: CollectionOfOne(merged))
        return added
    }

    /// Removes `range`; returns the parts of it that were present.
    @discardableResult
    package mutating func remove(_ range: SequenceRange) -> [SequenceRange] {
        var removed: [SequenceRange] = []
        var kept: [SequenceRange] = []
        var start = indexOfLastRange(startingAtOrBefore: range.first) ?? 0
        if start < ranges.count, ranges[start].last < range.first { start += 1 }
        var end = start
        while end < ranges.count, ranges[end].first <= range.last {
            let present = ranges[end]
            if present.first < range.first { kept.append(SequenceRange(present.first, range.first - 1)) }
            removed.append(SequenceRange(max(present.first, range.first), min(present.last, range.last)))
            if present.last > range.last { kept.append(SequenceRange(range.last + 1, present.last)) }
            end += 1
        }
        ranges.replaceSubrange(start..<end, with: kept)
        return removed
    }

    /// Sequence numbers between 1 and the highest one held that are not in the set.
    package var gaps: [SequenceRange] {
        guard let last = ranges.last?.last else { return [] }
        return missing(from: SequenceRange(1, max(last, 1)))
    }

    /// Index of the last range whose `first` is at most `sequence`.
    private func indexOfLastRange(startingAtOrBefore sequence: UInt64) -> Int? {
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].first <= sequence { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? nil : low - 1
    }

    package var description: String { "[" + ranges.map(\.description).joined(separator: ", ") + "]" }
}

extension SequenceRangeSet: Codable {
    package init(from decoder: any Decoder) throws {
        self.init(try [SequenceRange](from: decoder))
    }

    package func encode(to encoder: any Encoder) throws {
        try ranges.encode(to: encoder)
    }
}
