/// The Snappy block format (not the framing format), as Prometheus remote write uses it.
///
/// A block is a varint of the uncompressed length followed by elements: literals (tag `00`) and
/// copies with 1-, 2- or 4-byte offsets (tags `01`, `10`, `11`). The decoder is strict: the
/// declared length is checked against the caller's maximum, and against the most the remaining bytes
/// could produce, before anything is allocated; every element is bounds-checked against the input
/// and the declared output; the elements must produce exactly the declared length, with nothing
/// after them.
package enum Snappy {
    /// Decompresses one block.
    ///
    /// - Parameter maximumDecodedBytes: the largest uncompressed length accepted. A larger preamble is
    ///   refused before allocating, so a 20-byte body cannot claim 4 GiB of memory.
    /// - Complexity: O(n) in the decompressed length.
    package static func decompress(_ input: [UInt8], maximumDecodedBytes: Int) throws(SnappyError) -> [UInt8] {
        var result: Result<[UInt8], SnappyError> = .success([])
        input.withUnsafeBytes { bytes in
            do throws(SnappyError) {
                result = .success(try decompress(bytes, maximumDecodedBytes: maximumDecodedBytes))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    /// Decompresses one block held in `input`; see `decompress(_:maximumDecodedBytes:)`.
    package static func decompress(
        _ input: UnsafeRawBufferPointer, maximumDecodedBytes: Int
    ) throws(SnappyError) -> [UInt8] {
        var position = 0
        let total = try readPreamble(input, position: &position)
        guard total <= UInt64(max(0, maximumDecodedBytes)) else {
            throw SnappyError(
                .tooLarge, at: 0,
                "the preamble declares \(total) uncompressed bytes; at most \(maximumDecodedBytes) are accepted")
        }
        // The densest element, a 3-byte copy of 64 bytes, expands 64/3 times: a body that cannot
        // produce the declared length is refused before allocating it, whatever the caller's limit.
        let elementBytes = UInt64(input.count - position)
        guard total <= elementBytes * 64 / 3 else {
            throw SnappyError(
                .lengthMismatch, at: 0,
                "the preamble declares \(total) uncompressed bytes; \(elementBytes) bytes of elements produce at most \(elementBytes * 64 / 3)"
            )
        }
        let count = Int(total)
        var failure: SnappyError?
        let output = [UInt8](unsafeUninitializedCapacity: count) { buffer, initializedCount in
            // Zeroed first, so the array is fully initialized even when decoding stops early.
            buffer.initialize(repeating: 0)
            initializedCount = count
            do throws(SnappyError) {
                try decodeElements(input, from: position, into: buffer)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return output
    }

    /// Reads the uncompressed length: a little-endian base-128 varint of at most 32 bits.
    private static func readPreamble(_ input: UnsafeRawBufferPointer, position: inout Int) throws(SnappyError) -> UInt64
    {
        var value: UInt64 = 0
        for index in 0..<5 {
            guard position < input.count else {
                throw SnappyError(.truncated, at: position, "the input ends inside the length preamble")
            }
            let byte = input[position]
            position += 1
            if index == 4, byte > 0x0F {
                throw SnappyError(.invalidPreamble, at: index, "the length preamble does not fit in 32 bits")
            }
            value |= UInt64(byte & 0x7F) << (7 * UInt64(index))
            if byte & 0x80 == 0 { return value }
        }
        throw SnappyError(.invalidPreamble, at: 4, "the length preamble does not fit in 32 bits")
    }

    private static func decodeElements(
        _ input: UnsafeRawBufferPointer, from start: Int, into output: UnsafeMutableBufferPointer<UInt8>
    ) throws(SnappyError) {
        let total = output.count
        var position = start
        var written = 0
        while position < input.count {
            let tagOffset = position
            guard written < total else {
                throw SnappyError(
                    .trailingBytes, at: tagOffset,
                    "\(input.count - tagOffset) bytes follow the end of the declared \(total) bytes")
            }
            let tag = input[position]
            position += 1
            let length: Int
            let offset: Int
            switch tag & 0b11 {
            case 0b00:
                var literal = Int(tag >> 2)
                if literal >= 60 {
                    let extra = literal - 59
                    guard extra <= input.count - position else {
                        throw SnappyError(.truncated, at: tagOffset, "the input ends inside a literal's length")
                    }
                    literal = 0
                    for index in 0..<extra { literal |= Int(input[position + index]) << (8 * index) }
                    position += extra
                }
                literal += 1
                guard literal <= input.count - position else {
                    throw SnappyError(
                        .truncated, at: tagOffset,
                        "a literal of \(literal) bytes runs past the end of the input (\(input.count - position) left)")
                }
                guard literal <= total - written else {
                    throw SnappyError(
                        .lengthMismatch, at: tagOffset,
                        "a literal of \(literal) bytes overruns the declared \(total) bytes (\(written) written)")
                }
                UnsafeMutableRawBufferPointer(
                    rebasing: UnsafeMutableRawBufferPointer(output)[written..<written + literal]
                )
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: input[position..<position + literal]))
                position += literal
                written += literal
                continue
            case 0b01:
                guard position < input.count else {
                    throw SnappyError(.truncated, at: tagOffset, "the input ends inside a copy's offset")
                }
                length = 4 + Int((tag >> 2) & 0b111)
                offset = Int(tag >> 5) << 8 | Int(input[position])
                position += 1
            case 0b10:
                guard 2 <= input.count - position else {
                    throw SnappyError(.truncated, at: tagOffset, "the input ends inside a copy's offset")
                }
                length = 1 + Int(tag >> 2)
                offset = Int(input[position]) | Int(input[position + 1]) << 8
                position += 2
            default:
                guard 4 <= input.count - position else {
                    throw SnappyError(.truncated, at: tagOffset, "the input ends inside a copy's offset")
                }
                length = 1 + Int(tag >> 2)
                offset =
                    Int(input[position]) | Int(input[position + 1]) << 8 | Int(input[position + 2]) << 16
                    | Int(input[position + 3]) << 24
                position += 4
            }
            guard offset != 0 else { throw SnappyError(.invalidOffset, at: tagOffset, "a copy has offset 0") }
            guard offset <= written else {
                throw SnappyError(
                    .invalidOffset, at: tagOffset,
                    "a copy reaches back \(offset) bytes but only \(written) have been produced")
            }
            guard length <= total - written else {
                throw SnappyError(
                    .lengthMismatch, at: tagOffset,
                    "a copy of \(length) bytes overruns the declared \(total) bytes (\(written) written)")
            }
            // `output` is not empty here: a copy needs `offset` (≥ 1) bytes already written.
            guard let base = output.baseAddress else { break }
            let target = base + written
            if offset >= length {
                target.update(from: target - offset, count: length)
            } else {
                // An overlapping copy repeats the last `offset` bytes: it must go byte by byte.
                for index in 0..<length { target[index] = target[index - offset] }
            }
            written += length
        }
        guard written == total else {
            throw SnappyError(
                .lengthMismatch, at: position,
                "the input ends after \(written) of the declared \(total) uncompressed bytes")
        }
    }

    /// Compresses `input` as one block: greedy matching over a small hash table of 4-byte prefixes.
    ///
    /// Made for tests, fixtures and the benchmark; the output is valid Snappy that any decoder reads,
    /// though it compresses less than the reference implementation.
    package static func compress(_ input: [UInt8]) -> [UInt8] {
        precondition(input.count <= Int(UInt32.max), "a Snappy block holds at most 4 GiB")
        var out: [UInt8] = []
        out.reserveCapacity(input.count + input.count / 6 + 16)
        var length = UInt64(input.count)
        while length >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: length) | 0x80)
            length >>= 7
        }
        out.append(UInt8(length))

        let tableBits = 14
        var table = [Int](repeating: -1, count: 1 << tableBits)
        var literalStart = 0
        var index = 0
        func load32(_ at: Int) -> UInt32 {
            UInt32(input[at]) | UInt32(input[at + 1]) << 8 | UInt32(input[at + 2]) << 16 | UInt32(input[at + 3]) << 24
        }
        while index + 4 <= input.count {
            let word = load32(index)
            let slot = Int((word &* 0x1E35_A7BD) >> UInt32(32 - tableBits))
            let candidate = table[slot]
            table[slot] = index
            guard candidate >= 0, load32(candidate) == word else {
                index += 1
                continue
            }
            appendLiteral(input[literalStart..<index], to: &out)
            var matched = 4
            while index + matched < input.count, input[candidate + matched] == input[index + matched] { matched += 1 }
            appendCopy(offset: index - candidate, length: matched, to: &out)
            index += matched
            literalStart = index
        }
        appendLiteral(input[literalStart...], to: &out)
        return out
    }

    private static func appendLiteral(_ bytes: ArraySlice<UInt8>, to out: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        let stored = bytes.count - 1
        if stored < 60 {
            out.append(UInt8(stored) << 2)
        } else {
            var extra: [UInt8] = []
            var rest = stored
            while rest > 0 {
                extra.append(UInt8(truncatingIfNeeded: rest))
                rest >>= 8
            }
            out.append(UInt8(59 + extra.count) << 2)
            out += extra
        }
        out += bytes
    }

    private static func appendCopy(offset: Int, length: Int, to out: inout [UInt8]) {
        var remaining = length
        while remaining > 0 {
            let chunk = min(remaining, 64)
            if (4...11).contains(chunk), offset < 2048 {
                out.append(0b01 | UInt8(chunk - 4) << 2 | UInt8(offset >> 8) << 5)
                out.append(UInt8(truncatingIfNeeded: offset))
            } else if offset < 65536 {
                out.append(0b10 | UInt8(chunk - 1) << 2)
                out.append(UInt8(truncatingIfNeeded: offset))
                out.append(UInt8(truncatingIfNeeded: offset >> 8))
            } else {
                out.append(0b11 | UInt8(chunk - 1) << 2)
                for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: offset >> shift)) }
            }
            remaining -= chunk
        }
    }
}
