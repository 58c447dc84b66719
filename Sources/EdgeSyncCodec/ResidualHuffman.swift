/// Canonical Huffman coding of an integer column's residuals (format version 2).
///
/// Fixed-width packing spends the width of a block's widest usual residual on every residual; sensor
/// noise is far from uniform, so it wastes 1-3 bits a value (see decision 0003). Here each residual
/// is first divided by the largest power of two common to the whole column (GPS semicircles move in
/// steps of 16 or 128), zigzagged to `u`, and split into a *symbol* and raw *extra bits*: values
/// below 4 are their own symbol; larger ones are coded by their bit length and the bit below the
/// leading one, and the remaining low bits are stored raw. That keeps the alphabet at 128 symbols
/// for any 64-bit value while small, frequent residuals get codes of a bit or two.
enum ResidualHuffman {
    static let symbolCount = 128
    /// Longest code; a decoder's lookup table has at most 2^12 entries.
    static let maximumCodeLength = 12

    /// The symbol and number of extra bits for a zigzagged residual.
    @inline(__always) static func symbol(of value: UInt64) -> (symbol: Int, extraWidth: Int) {
        let width = 64 - value.leadingZeroBitCount
        if width <= 2 { return (Int(value), 0) }
        return (2 &* width &- 2 &+ Int((value >> UInt64(width &- 2)) & 1), width &- 2)
    }

    /// A column's code: the divisor, the zigzagged quotients, code lengths and the exact size.
    struct Plan {
        var divisor: UInt64
        /// `ZigZag.encode(residual / divisor)` per residual.
        var quotients: [UInt64]
        /// Code length per symbol (0 = unused), `symbolCount` entries.
        var lengths: [UInt8]
        /// Symbols `0 ..< usedSymbols` carry a length in the table.
        var usedSymbols: Int
        var isSingleSymbol: Bool
        /// Whether one symbol covers at least half the residuals, where a Huffman code's one-bit
        /// floor can lose to packing (a run of zeros packs into zero bits).
        var hasDominantSymbol: Bool
        var streamBits: Int

        var streamBytes: Int { (streamBits + 7) >> 3 }
        var tableBytes: Int { varintSize(divisor) + 1 + (usedSymbols + 1) / 2 }
        /// Every byte the coded residuals take: divisor, table, byte count and bit stream.
        var encodedBytes: Int { tableBytes + varintSize(UInt64(streamBytes)) + streamBytes }
    }

    @inline(__always) static func varintSize(_ value: UInt64) -> Int {
        max(1, (64 - value.leadingZeroBitCount + 6) / 7)
    }

    // MARK: Encoding

    /// The greatest common divisor of the residuals' magnitudes: timestamps in whole seconds or
    /// minutes and GPS positions in steps of 16 share one, and dividing it out removes that many
    /// raw bits from every residual. 1 when there is none (or only the degenerate 2^63).
    static func commonDivisor(_ residuals: UnsafeBufferPointer<Int64>) -> UInt64 {
        var divisor: UInt64 = 0
        for value in residuals {
            var other = value.magnitude
            guard divisor != 1 else { return 1 }
            guard divisor == 0 || other % divisor != 0 else { continue }
            var current = divisor
            while other != 0 { (current, other) = (other, current % other) }
            divisor = current
        }
        return divisor == 0 || divisor > UInt64(Int64.max) ? 1 : divisor
    }

    /// Builds the code for `residuals` (at least one).
    static func plan(_ residuals: UnsafeBufferPointer<Int64>) -> Plan {
        let divisor = commonDivisor(residuals)
        var quotients = [UInt64](repeating: 0, count: residuals.count)
        var extraBits = 0
        var lengths: [UInt8] = []
        var codeBits = 0
        var usedSymbols = 0
        var distinct = 0
        var largestCount = 0
        withUnsafeTemporaryAllocation(of: Int.self, capacity: symbolCount) { counts in
            counts.initialize(repeating: 0)
            quotients.withUnsafeMutableBufferPointer { quotients in
                if divisor & (divisor &- 1) == 0 {
                    let shift = Int64(divisor.trailingZeroBitCount)
                    for index in residuals.indices { quotients[index] = ZigZag.encode(residuals[index] >> shift) }
                } else {
                    let signedDivisor = Int64(divisor)
                    for index in residuals.indices { quotients[index] = ZigZag.encode(residuals[index] / signedDivisor) }
                }
                for value in quotients {
                    let (symbol, extra) = Self.symbol(of: value)
                    counts[symbol] &+= 1
                    extraBits &+= extra
                }
            }
            lengths = codeLengths(UnsafeBufferPointer(counts))
            for symbol in 0..<symbolCount where lengths[symbol] > 0 {
                usedSymbols = symbol + 1
                distinct += 1
                codeBits &+= counts[symbol] &* Int(lengths[symbol])
                largestCount = max(largestCount, counts[symbol])
            }
        }
        // A single symbol is coded with no bits at all (its length 1 only marks it as used).
        if distinct == 1 { codeBits = 0 }
        return Plan(
            divisor: divisor, quotients: quotients, lengths: lengths, usedSymbols: usedSymbols,
            isSingleSymbol: distinct == 1, hasDominantSymbol: largestCount * 2 >= residuals.count, streamBits: codeBits + extraBits)
    }

    /// Writes the divisor, table and bit stream as planned.
    static func write(_ plan: Plan, into writer: inout ByteWriter) {
        writer.appendVarint(plan.divisor)
        writer.append(UInt8(plan.usedSymbols - 1))
        var pair = 0
        while pair < plan.usedSymbols {
            let high = pair + 1 < plan.usedSymbols ? plan.lengths[pair + 1] : 0
            writer.append(plan.lengths[pair] | high << 4)
            pair += 2
        }
        writer.appendVarint(UInt64(plan.streamBytes))
        let codes = canonicalCodes(plan.lengths)
        let single = plan.isSingleSymbol
        let start = writer.count
        let byteCount = plan.streamBytes
        // Eight bytes of slack so whole words can be stored; trimmed after.
        writer.bytes.append(contentsOf: repeatElement(0, count: byteCount + 8))
        writer.bytes.withUnsafeMutableBytes { raw in
            let out = UnsafeMutableRawBufferPointer(rebasing: raw[start...])
            var accumulator: UInt64 = 0
            var filled = 0
            var position = 0
            @inline(__always) func put(_ bits: UInt64, _ width: Int) {
                guard width > 0 else { return }
                accumulator |= bits << UInt64(filled)
                filled &+= width
                if filled >= 64 {
                    out.storeBytes(of: accumulator.littleEndian, toByteOffset: position, as: UInt64.self)
                    position &+= 8
                    filled &-= 64
                    accumulator = filled == 0 ? 0 : bits >> UInt64(width &- filled)
                }
            }
            codes.withUnsafeBufferPointer { codes in
                plan.lengths.withUnsafeBufferPointer { lengths in
                    for value in plan.quotients {
                        let (symbol, extraWidth) = Self.symbol(of: value)
                        let extra = value & BitPacking.mask(extraWidth)
                        let codeLength = single ? 0 : Int(lengths[symbol])
                        // One write when code and extra bits fit a word together (nearly always).
                        if codeLength &+ extraWidth <= 64 {
                            put(UInt64(codes[symbol]) | extra << UInt64(codeLength), codeLength &+ extraWidth)
                        } else {
                            put(UInt64(codes[symbol]), codeLength)
                            put(extra, extraWidth)
                        }
                    }
                }
            }
            out.storeBytes(of: accumulator.littleEndian, toByteOffset: position, as: UInt64.self)
        }
        writer.bytes.removeLast(8)
    }

    /// Huffman code lengths for `counts`, limited to `maximumCodeLength` and always a complete code
    /// (or one symbol of length 1). Deterministic: ties break by symbol number.
    static func codeLengths(_ counts: UnsafeBufferPointer<Int>) -> [UInt8] {
        var lengths = [UInt8](repeating: 0, count: symbolCount)
        let used = (0..<symbolCount).filter { counts[$0] > 0 }.sorted { (counts[$0], $0) < (counts[$1], $1) }
        if used.count == 1 {
            lengths[used[0]] = 1
            return lengths
        }
        // Two-queue Huffman over the sorted leaves: nodes 0..<n are leaves, n..<2n-1 merged nodes.
        let leafCount = used.count
        var weights = used.map { counts[$0] } + [Int](repeating: 0, count: leafCount - 1)
        var parents = [Int](repeating: 0, count: 2 * leafCount - 1)
        var nextLeaf = 0
        var nextMerged = leafCount
        for node in leafCount..<(2 * leafCount - 1) {
            var pair = [0, 0]
            for side in 0..<2 {
                if nextLeaf < leafCount && (nextMerged >= node || weights[nextLeaf] <= weights[nextMerged]) {
                    pair[side] = nextLeaf
                    nextLeaf += 1
                } else {
                    pair[side] = nextMerged
                    nextMerged += 1
                }
            }
            weights[node] = weights[pair[0]] + weights[pair[1]]
            parents[pair[0]] = node
            parents[pair[1]] = node
        }
        var depths = [Int](repeating: 0, count: 2 * leafCount - 1)
        for node in stride(from: 2 * leafCount - 3, through: 0, by: -1) { depths[node] = depths[parents[node]] + 1 }

        // Length limit: clamp, then lengthen the longest short codes until the Kraft sum fits, then
        // shorten codes while room is left so the code stays complete.
        let limit = maximumCodeLength
        var length = (0..<leafCount).map { min(depths[$0], limit) }
        let full = 1 << limit
        var kraft = length.reduce(0) { $0 + (1 << (limit - $1)) }
        while kraft > full {
            // Leaves are in ascending count order: the first with the longest length below the limit.
            var pick = -1
            for leaf in 0..<leafCount where length[leaf] < limit && (pick < 0 || length[leaf] > length[pick]) { pick = leaf }
            kraft -= 1 << (limit - length[pick] - 1)
            length[pick] += 1
        }
        while kraft < full {
            var pick = -1
            for leaf in stride(from: leafCount - 1, through: 0, by: -1)
            where length[leaf] > 1 && (1 << (limit - length[leaf])) <= full - kraft
                && (pick < 0 || length[leaf] > length[pick])
            {
                pick = leaf
            }
            guard pick >= 0 else { break }
            kraft += 1 << (limit - length[pick])
            length[pick] -= 1
        }
        for leaf in 0..<leafCount { lengths[used[leaf]] = UInt8(length[leaf]) }
        return lengths
    }

    /// Canonical codes (RFC 1951, 3.2.2), bit-reversed so that writing them least significant bit
    /// first puts the code's first bit first.
    static func canonicalCodes(_ lengths: [UInt8]) -> [UInt16] {
        var perLength = [Int](repeating: 0, count: maximumCodeLength + 1)
        for length in lengths where length > 0 { perLength[Int(length)] += 1 }
        var next = [Int](repeating: 0, count: maximumCodeLength + 2)
        var code = 0
        for length in 1...maximumCodeLength {
            code = (code + perLength[length - 1]) << 1
            next[length] = code
        }
        var codes = [UInt16](repeating: 0, count: lengths.count)
        for symbol in lengths.indices where lengths[symbol] > 0 {
            let length = Int(lengths[symbol])
            let canonical = next[length]
            next[length] += 1
            var reversed = 0
            for bit in 0..<length where canonical & (1 << bit) != 0 { reversed |= 1 << (length - 1 - bit) }
            codes[symbol] = UInt16(reversed)
        }
        return codes
    }

    // MARK: Decoding

    /// Reads a table and bit stream and decodes `output.count` residuals (at least one).
    static func decode(
        from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Int64>, what: String
    ) throws(CodecError) {
        let divisorOffset = reader.position
        let divisor = try reader.readVarint("\(what) residual divisor")
        guard divisor >= 1 else {
            throw reader.error(.malformed, "\(what) residual divisor is 0", at: divisorOffset)
        }
        let usedSymbols = Int(try reader.readByte("\(what) code table size")) + 1
        guard usedSymbols <= symbolCount else {
            throw reader.error(.malformed, "\(what) code table has \(usedSymbols) symbols, at most \(symbolCount) are defined", at: divisorOffset)
        }
        let tableOffset = reader.position
        let packedLengths = try reader.readBytes((usedSymbols + 1) / 2, "\(what) code lengths")
        var lengths = [Int](repeating: 0, count: usedSymbols)
        var kraft = 0
        var maximumLength = 0
        var nonzero = 0
        for symbol in 0..<usedSymbols {
            let length = Int(packedLengths[symbol / 2] >> (symbol % 2 == 0 ? 0 : 4)) & 0x0F
            guard length <= maximumCodeLength else {
                throw reader.error(.malformed, "\(what) code length \(length) of symbol \(symbol) exceeds \(maximumCodeLength)", at: tableOffset + symbol / 2)
            }
            lengths[symbol] = length
            if length > 0 {
                nonzero += 1
                kraft += 1 << (maximumCodeLength - length)
                maximumLength = max(maximumLength, length)
            }
        }
        if usedSymbols % 2 == 1 && packedLengths[usedSymbols / 2] >> 4 != 0 {
            throw reader.error(.malformed, "\(what) code table pads with a nonzero length", at: tableOffset + usedSymbols / 2)
        }
        guard lengths[usedSymbols - 1] > 0 else {
            throw reader.error(.malformed, "\(what) code table ends with an unused symbol", at: tableOffset)
        }
        let single = nonzero == 1
        if single {
            guard maximumLength == 1 else {
                throw reader.error(.malformed, "\(what) code table's only symbol has length \(maximumLength), not 1", at: tableOffset)
            }
        } else if kraft != 1 << maximumCodeLength {
            let problem = kraft > 1 << maximumCodeLength ? "over-subscribed" : "incomplete"
            throw reader.error(.malformed, "\(what) code lengths are \(problem)", at: tableOffset)
        }

        // At most 12 code bits and 62 extra bits per residual.
        let maximumBytes = (output.count * (maximumCodeLength + 62) + 7) / 8
        let countOffset = reader.position
        let byteCount = try reader.readCount("\(what) residual stream byte length", atMost: maximumBytes)
        let streamStart = reader.offset
        let stream = try reader.readBytes(byteCount, "\(what) residual stream")

        // Lookup table indexed by the next `tableBits` stream bits: symbol << 4 | code length.
        let tableBits = single ? 0 : maximumLength
        let table = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: 1 << tableBits)
        defer { table.deallocate() }
        if single {
            let symbol = lengths.firstIndex { $0 > 0 } ?? 0
            table[0] = UInt16(symbol << 4)
        } else {
            let codes = canonicalCodes(lengths.map { UInt8($0) })
            for symbol in 0..<usedSymbols where lengths[symbol] > 0 {
                let entry = UInt16(symbol << 4 | lengths[symbol])
                for index in stride(from: Int(codes[symbol]), to: 1 << tableBits, by: 1 << lengths[symbol]) {
                    table[index] = entry
                }
            }
        }

        let totalBits = byteCount * 8
        let tableMask = UInt64((1 << tableBits) - 1)
        let safeEnd = byteCount - 8
        var bit = 0
        for index in 0..<output.count {
            var word = (bit >> 3) <= safeEnd ? fastPeek(stream, bit) : slowPeek(stream, bit)
            let entry = table[Int(word & tableMask)]
            let symbol = Int(entry >> 4)
            let codeLength = Int(entry & 0x0F)
            var value = UInt64(symbol)
            bit &+= codeLength
            if symbol >= 4 {
                let width = (symbol >> 1) + 1
                let extraWidth = width - 2
                if codeLength + extraWidth <= 56 {
                    word >>= UInt64(codeLength)
                } else {
                    word = (bit >> 3) <= safeEnd ? fastPeek(stream, bit) : slowPeek(stream, bit)
                }
                value = (UInt64(2 | (symbol & 1)) << UInt64(extraWidth)) | (word & BitPacking.mask(extraWidth))
                bit &+= extraWidth
            }
            output[index] = Int64(bitPattern: UInt64(bitPattern: ZigZag.decode(value)) &* divisor)
        }
        guard bit <= totalBits else {
            throw CodecError(.truncated, "\(what) residual stream needs \(bit) bits, has \(totalBits)", at: streamStart + byteCount, in: reader.area)
        }
        guard totalBits - bit < 8 else {
            throw reader.error(.malformed, "\(what) residual stream declares \(byteCount) bytes but uses \((bit + 7) / 8)", at: countOffset)
        }
    }

    /// The 57 or more stream bits from `bit`, when eight bytes from its byte are inside the stream.
    @inline(__always) private static func fastPeek(_ stream: UnsafeRawBufferPointer, _ bit: Int) -> UInt64 {
        UInt64(littleEndian: stream.loadUnaligned(fromByteOffset: bit >> 3, as: UInt64.self)) >> UInt64(bit & 7)
    }

    /// As `fastPeek` near the end of the stream; bits past the end read as zero (the caller checks
    /// that it did not consume them).
    @inline(never) private static func slowPeek(_ stream: UnsafeRawBufferPointer, _ bit: Int) -> UInt64 {
        var word: UInt64 = 0
        let first = bit >> 3
        var index = first
        while index < stream.count && index < first + 8 {
            word |= UInt64(stream[index]) << UInt64((index - first) * 8)
            index += 1
        }
        return word >> UInt64(bit & 7)
    }
}
