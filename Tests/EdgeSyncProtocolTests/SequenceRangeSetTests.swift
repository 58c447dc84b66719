import EdgeSyncTestSupport
import Foundation
import Testing

@testable import EdgeSyncProtocol

@Suite struct SequenceRangeSetTests {
    @Test func inOrderDeliveryStaysOneRange() {
        var set = SequenceRangeSet()
        for start in stride(from: UInt64(1), to: 100_000, by: 1000) {
            #expect(set.insert(SequenceRange(start, start + 999)) == [SequenceRange(start, start + 999)])
        }
        #expect(set.ranges == [SequenceRange(1, 100_000)])
        #expect(set.count == 100_000)
        #expect(set.gaps.isEmpty)
    }

    @Test func insertReportsOnlyTheNewParts() {
        var set = SequenceRangeSet([SequenceRange(10, 19), SequenceRange(30, 39)])
        #expect(
            set.insert(SequenceRange(5, 45)) == [SequenceRange(5, 9), SequenceRange(20, 29), SequenceRange(40, 45)])
        #expect(set.ranges == [SequenceRange(5, 45)])
        #expect(set.insert(SequenceRange(12, 40)) == [])
        #expect(set.gaps == [SequenceRange(1, 4)])
    }

    @Test func extremesDoNotOverflow() {
        var set = SequenceRangeSet()
        set.insert(SequenceRange(UInt64.max - 1, UInt64.max))
        set.insert(SequenceRange(0, 0))
        #expect(set.insert(SequenceRange(UInt64.max, UInt64.max)) == [])
        #expect(set.contains(0) && set.contains(UInt64.max) && !set.contains(1))
        #expect(SequenceRange(0, UInt64.max).count == UInt64.max)
        set.remove(SequenceRange(0, UInt64.max))
        #expect(set.isEmpty)
    }

    /// Random inserts and removals agree with a plain `Set` of every sequence number.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func agreesWithAReferenceSet(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var set = SequenceRangeSet()
        var reference = Set<UInt64>()
        for _ in 0..<400 {
            let first = UInt64.random(in: 1...300, using: &random)
            let range = SequenceRange(first, first + UInt64.random(in: 0...20, using: &random))
            let members = Set(range.first...range.last)
            if Bool.random(using: &random) || Bool.random(using: &random) {
                let added = set.insert(range)
                let expected = members.subtracting(reference)
                #expect(Set(added.flatMap { $0.first...$0.last }) == expected)
                #expect(UInt64(expected.count) == added.reduce(0) { $0 + $1.count })
                reference.formUnion(members)
            } else {
                let removed = set.remove(range)
                #expect(Set(removed.flatMap { $0.first...$0.last }) == members.intersection(reference))
                reference.subtract(members)
            }
            // Invariants: sorted, disjoint, never touching.
            for (left, right) in zip(set.ranges, set.ranges.dropFirst()) {
                #expect(left.last + 1 < right.first)
            }
            #expect(set.count == UInt64(reference.count))
        }
        for sequence in 0...330 as ClosedRange<UInt64> {
            #expect(set.contains(sequence) == reference.contains(sequence))
        }
        let highest = reference.max() ?? 0
        let gapMembers = Set(set.gaps.flatMap { $0.first...$0.last })
        #expect(gapMembers == Set(highest == 0 ? [] : Array(1...highest)).subtracting(reference))
    }
}

@Suite struct MessageTests {
    @Test func acknowledgementJSONCarriesTheStreamAsADecimalString() throws {
        let ack = BatchAcknowledgement(
            device: "gw-1", stream: UInt64.max, accepted: 3, duplicates: 2, acknowledged: [SequenceRange(1, 5)])
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let text = String(decoding: try encoder.encode(ack), as: UTF8.self)
        #expect(
            text
                == #"{"accepted":3,"acknowledged":[[1,5]],"device":"gw-1","duplicates":2,"stream":"18446744073709551615"}"#
        )
        #expect(try JSONDecoder().decode(BatchAcknowledgement.self, from: Data(text.utf8)) == ack)
    }

    @Test(arguments: [
        #"[5, 1]"#, #"[1]"#, #"[1, 2, 3]"#, #"[-1, 2]"#, #"["1", "2"]"#, #"{}"#, #"[1.5, 2]"#,
        #"[1, 18446744073709551616]"#,
    ])
    func malformedRangesAreRejected(json: String) {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(SequenceRange.self, from: Data(json.utf8))
        }
    }

    @Test(arguments: [#""abc""#, #""-1""#, #"12"#, #""18446744073709551616""#, #""""#])
    func malformedStreamIDsAreRejected(json: String) {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(StreamID.self, from: Data(json.utf8))
        }
    }
}
