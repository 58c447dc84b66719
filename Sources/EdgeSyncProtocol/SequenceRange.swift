/// An inclusive range of sequence numbers, `first...last`, as both sides of the protocol name them.
///
/// In JSON it is a two-element array `[first, last]`, the shape used in acknowledgements, dropped-range
/// reports and the query API.
package struct SequenceRange: Hashable, Sendable, Comparable, CustomStringConvertible {
    package let first: UInt64
    package let last: UInt64

    /// - Precondition: `first <= last`.
    package init(_ first: UInt64, _ last: UInt64) {
        precondition(first <= last, "a sequence range runs forwards")
        self.first = first
        self.last = last
    }

    /// The range covering a half-open `Range`, or `nil` when it is empty.
    package init?(_ range: Range<UInt64>) {
        guard !range.isEmpty else { return nil }
        self.init(range.lowerBound, range.upperBound - 1)
    }

    /// Number of sequence numbers in the range (saturating at `UInt64.max` for `0...UInt64.max`).
    package var count: UInt64 {
        let (difference, _) = last.subtractingReportingOverflow(first)
        return difference == UInt64.max ? UInt64.max : difference + 1
    }

    package func contains(_ sequence: UInt64) -> Bool { first <= sequence && sequence <= last }

    package static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.first, lhs.last) < (rhs.first, rhs.last)
    }

    package var description: String { first == last ? "\(first)" : "\(first)-\(last)" }
}

extension SequenceRange: Codable {
    package init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        let first = try container.decode(UInt64.self)
        let last = try container.decode(UInt64.self)
        guard container.isAtEnd else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "a range is [first, last]")
        }
        guard first <= last else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "range [\(first), \(last)] runs backwards")
        }
        self.init(first, last)
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(first)
        try container.encode(last)
    }
}
