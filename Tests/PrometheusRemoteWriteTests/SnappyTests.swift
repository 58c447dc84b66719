import EdgeSyncTestSupport
import PrometheusRemoteWrite
import Testing

struct SnappyTests {
    static let limit = 1 << 20

    func decompress(_ bytes: [UInt8], limit: Int = SnappyTests.limit) throws(SnappyError) -> [UInt8] {
        try Snappy.decompress(bytes, maximumDecodedBytes: limit)
    }

    func failure(_ bytes: [UInt8], limit: Int = SnappyTests.limit) -> SnappyError? {
        do {
            _ = try decompress(bytes, limit: limit)
            return nil
        } catch {
            return error
        }
    }

    @Test func handBuiltElements() throws {
        // "abc" as a literal, then a copy-1 of 9 bytes at offset 3 that overlaps its own output.
        #expect(try decompress([12, 0x08, 97, 98, 99, 0x15, 3]) == Array("abcabcabcabc".utf8))
        // Copy-2: 5 bytes at offset 2; copy-4: 3 bytes at offset 4.
        #expect(try decompress([9, 0x04, 120, 121, 0b10 | 6 << 2, 2, 0]) == Array("xyxyxyxyx".utf8))
        #expect(try decompress([7, 0x0C, 1, 2, 3, 4, 0b11 | 2 << 2, 4, 0, 0, 0]) == [1, 2, 3, 4, 1, 2, 3])
        // A 100-byte literal needs one extra length byte (tag 60).
        let long = (0..<100).map { UInt8($0) }
        #expect(try decompress([100, 60 << 2, 99] + long) == long)
        // A 300-byte literal: two extra length bytes (tag 61), and a two-byte preamble.
        let longer = (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }
        #expect(try decompress([0xAC, 0x02, 61 << 2, 0x2B, 0x01] + longer) == longer)
        #expect(try decompress([0]) == [])
    }

    @Test(arguments: [0, 1, 3, 4, 5, 63, 64, 65, 1000, 70_000, 300_000])
    func roundTrips(length: Int) throws {
        var random = SeededRandom(seed: UInt64(length) + 1)
        let noise = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
        let text = (0..<length).map { (index: Int) -> UInt8 in
            let letter = index % 7 == 0 ? index % 26 : index % 3
            return UInt8(ascii: "a") + UInt8(letter)
        }
        let runs = [UInt8](repeating: 0x41, count: length)
        for input in [noise, text, runs] {
            let compressed = Snappy.compress(input)
            #expect(try decompress(compressed, limit: length) == input)
            if length >= 1000, input != noise { #expect(compressed.count < input.count / 2) }
        }
    }

    @Test func farOffsetsUseFourByteCopies() throws {
        var random = SeededRandom(seed: 9)
        let block = (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &random) }
        let input = block + block
        let compressed = Snappy.compress(input)
        #expect(compressed.count < 80_000)
        #expect(try decompress(compressed) == input)
    }

    @Test func truncatedInputs() {
        #expect(failure([])?.kind == .truncated)
        #expect(failure([0x80])?.kind == .truncated)
        // Literal of 4 bytes with 2 present.
        #expect(
            failure([4, 0x0C, 1, 2])
                == SnappyError(.truncated, at: 1, "a literal of 4 bytes runs past the end of the input (2 left)"))
        // Literal length byte missing; copy offsets cut short.
        #expect(failure([2, 60 << 2])?.kind == .truncated)
        #expect(failure([8, 0x04, 1, 2, 0b01])?.kind == .truncated)
        #expect(failure([8, 0x04, 1, 2, 0b10, 2])?.kind == .truncated)
        #expect(failure([8, 0x04, 1, 2, 0b11, 2, 0, 0])?.kind == .truncated)
    }

    @Test func badPreambles() {
        #expect(failure([0xFF, 0xFF, 0xFF, 0xFF, 0x1F])?.kind == .invalidPreamble)
        #expect(failure([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])?.kind == .invalidPreamble)
    }

    @Test func badOffsets() {
        #expect(
            failure([6, 0x04, 1, 2, 0b01 | 0 << 2, 0]) == SnappyError(.invalidOffset, at: 4, "a copy has offset 0"))
        #expect(failure([6, 0x04, 1, 2, 0b10, 0, 0])?.kind == .invalidOffset)
        // Offset 3 with 2 bytes produced, in each copy form.
        let past = SnappyError(.invalidOffset, at: 4, "a copy reaches back 3 bytes but only 2 have been produced")
        #expect(failure([6, 0x04, 1, 2, 0b01, 3]) == past)
        #expect(failure([6, 0x04, 1, 2, 0b10 | 3 << 2, 3, 0]) == past)
        #expect(failure([6, 0x04, 1, 2, 0b11 | 3 << 2, 3, 0, 0, 0]) == past)
        // A copy first of all, with nothing produced.
        #expect(failure([4, 0b01, 1])?.kind == .invalidOffset)
    }

    @Test func preambleLiesBothWays() {
        // Declares 5, produces 3.
        #expect(
            failure([5, 0x08, 1, 2, 3])
                == SnappyError(.lengthMismatch, at: 5, "the input ends after 3 of the declared 5 uncompressed bytes"))
        // Declares 2, the literal holds 3.
        #expect(failure([2, 0x08, 1, 2, 3])?.kind == .lengthMismatch)
        // Declares 4, a copy would produce 6.
        #expect(failure([4, 0x04, 1, 2, 0b10 | 3 << 2, 2, 0])?.kind == .lengthMismatch)
        // Exactly 3, then another element.
        #expect(
            failure([3, 0x08, 1, 2, 3, 0x00, 9])
                == SnappyError(.trailingBytes, at: 5, "2 bytes follow the end of the declared 3 bytes"))
        #expect(failure([0, 0x00])?.kind == .trailingBytes)
    }

    @Test func bombPreambleIsRefusedBeforeAllocating() throws {
        // 4 GiB - 1 declared by five bytes. Were it allocated, this test would take seconds and 4 GiB;
        // the error comes from the preamble check (offset 0), before any element is looked at.
        let bomb: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00, 0x00]
        let error = failure(bomb, limit: 32 << 20)
        #expect(error?.kind == .tooLarge)
        #expect(error?.offset == 0)
        #expect(error?.description.contains("4294967295") == true)
        // Even a caller allowing any size gets no 4 GiB allocation: 2 bytes cannot produce that much.
        let unlimited = failure(bomb, limit: .max)
        #expect(unlimited?.kind == .lengthMismatch)
        #expect(
            unlimited?.reason
                == "the preamble declares 4294967295 uncompressed bytes; 2 bytes of elements produce at most 42")
        // The densest real stream: one literal byte, then 3-byte copies of 64 bytes.
        let dense: [UInt8] = [0x00, 7] + Array(repeating: [0b10 | 63 << 2, 1, 0], count: 100).joined()
        let declared = 1 + 64 * 100
        var preamble: [UInt8] = []
        var rest = declared
        while rest >= 0x80 {
            preamble.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        preamble.append(UInt8(rest))
        #expect(try decompress(preamble + dense, limit: declared) == [UInt8](repeating: 7, count: declared))
        // One over the limit is refused; at the limit is fine.
        #expect(failure([5, 0x10, 1, 2, 3, 4, 5], limit: 4)?.kind == .tooLarge)
        #expect(failure([5, 0x10, 1, 2, 3, 4, 5], limit: 5) == nil)
    }

    @Test func errorsNameTheByteOffset() {
        let error = failure([6, 0x04, 1, 2, 0b01, 0])
        #expect(error?.description == "snappy: byte 4: a copy has offset 0")
    }
}
