/// Canonical Huffman coding of an integer column's residuals (format version 2).
///
/// Fixed-width packing spends the width of a block's widest usual residual on every residual; sensor
/// noise is far from uniform, so it wastes 1-3 bits a value (see decision 0003). Here each residual
/// is first divided by the greatest common divisor of the whole column (GPS semicircles move in
/// steps of 16 or 128, timestamps in whole seconds), zigzagged to `u`, and split into a *symbol* and
/// raw *extra bits*: values
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
            // Most divisors are powers of two (GPS steps, altitude steps of 2); a mask test spares
            // the 64-bit division that would otherwise run for every residual.
            let divides = divisor & (divisor &- 1) == 0 ? other & (divisor &- 1) == 0 : other % divisor == 0
            guard divisor == 0 || !divides else { continue }
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
                @inline(__always) func count(_ value: UInt64, at index: Int) {
                    quotients[index] = value
                    let (symbol, extra) = Self.symbol(of: value)
                    counts[symbol] &+= 1
                    extraBits &+= extra
                }
                if divisor & (divisor &- 1) == 0 {
                    let shift = Int64(divisor.trailingZeroBitCount)
                    for index in residuals.indices { count(ZigZag.encode(residuals[index] >> shift), at: index) }
                } else {
                    let signedDivisor = Int64(divisor)
                    for index in residuals.indices { count(ZigZag.encode(residuals[index] / signedDivisor), at: index) }
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
            isSingleSymbol: distinct == 1, hasDominantSymbol: largestCount * 2 >= residuals.count,
            streamBits: codeBits + extraBits)
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
        var codes = [UInt16](repeating: 0, count: symbolCount)
        plan.lengths.withUnsafeBufferPointer { lengths in
            // Only symbols below `usedSymbols` have codes; the rest stay 0 and are never written.
            codes.withUnsafeMutableBufferPointer { codes in
                canonicalCodes(
                    UnsafeBufferPointer(rebasing: lengths[0..<plan.usedSymbols]),
                    into: UnsafeMutableBufferPointer(rebasing: codes[0..<plan.usedSymbols]))
            }
        }
        let single = plan.isSingleSymbol
        let byteCount = plan.streamBytes
        // Eight bytes of slack so whole words can be stored.
        var stream = [UInt8](repeating: 0, count: byteCount + 8)
        stream.withUnsafeMutableBytes { out in
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
        writer.append(contentsOf: stream[0..<byteCount])
    }

    /// Huffman code lengths for `counts` (`symbolCount` entries, at least one nonzero), limited to
    /// `maximumCodeLength` and always a complete code (or one symbol of length 1). Deterministic:
    /// ties break by symbol number. Works in one scratch allocation: it runs once per column.
    static func codeLengths(_ counts: UnsafeBufferPointer<Int>) -> [UInt8] {
        var lengths = [UInt8](repeating: 0, count: symbolCount)
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 6 * symbolCount) { scratch in
            // keys[0..<n]: leaves sorted by (count, symbol), packed so that the sort is on Ints.
            let keys = UnsafeMutableBufferPointer(rebasing: scratch[0..<symbolCount])
            let weights = UnsafeMutableBufferPointer(rebasing: scratch[symbolCount..<3 * symbolCount])
            let parents = UnsafeMutableBufferPointer(rebasing: scratch[3 * symbolCount..<5 * symbolCount])
            let depths = UnsafeMutableBufferPointer(rebasing: scratch[5 * symbolCount..<6 * symbolCount])
            var leafCount = 0
            for symbol in 0..<symbolCount where counts[symbol] > 0 {
                keys[leafCount] = counts[symbol] << 8 | symbol
                leafCount += 1
            }
            var leaves = UnsafeMutableBufferPointer(rebasing: keys[0..<leafCount])
            leaves.sort()
            if leafCount == 1 {
                lengths[keys[0] & 0xFF] = 1
                return
            }
            // Two-queue Huffman: nodes 0..<n are the leaves, n..<2n-1 the merged nodes in order.
            for leaf in 0..<leafCount { weights[leaf] = keys[leaf] >> 8 }
            var nextLeaf = 0
            var nextMerged = leafCount
            for node in leafCount..<(2 * leafCount - 1) {
                var weight = 0
                for _ in 0..<2 {
                    let child: Int
                    if nextLeaf < leafCount && (nextMerged >= node || weights[nextLeaf] <= weights[nextMerged]) {
                        child = nextLeaf
                        nextLeaf += 1
                    } else {
                        child = nextMerged
                        nextMerged += 1
                    }
                    weight += weights[child]
                    parents[child] = node
                }
                weights[node] = weight
            }
            // Depths of merged nodes (root last) reuse the weights' storage; leaves go to `depths`.
            weights[2 * leafCount - 2] = 0
            for node in stride(from: 2 * leafCount - 3, through: leafCount, by: -1) {
                weights[node] = weights[parents[node]] + 1
            }
            let limit = maximumCodeLength
            for leaf in 0..<leafCount { depths[leaf] = min(weights[parents[leaf]] + 1, limit) }

            // Length limit: after clamping, lengthen the longest codes still below the limit until
            // the Kraft sum fits, then shorten codes while room is left so the code is complete.
            let full = 1 << limit
            var kraft = 0
            for leaf in 0..<leafCount { kraft += 1 << (limit - depths[leaf]) }
            while kraft > full {
                // Leaves are in ascending count order: the first with the longest length below the limit.
                var pick = -1
                for leaf in 0..<leafCount where depths[leaf] < limit && (pick < 0 || depths[leaf] > depths[pick]) {
                    pick = leaf
                }
                kraft -= 1 << (limit - depths[pick] - 1)
                depths[pick] += 1
            }
            while kraft < full {
                var pick = -1
                for leaf in stride(from: leafCount - 1, through: 0, by: -1)
                where depths[leaf] > 1 && (1 << (limit - depths[leaf])) <= full - kraft
                    && (pick < 0 || depths[leaf] > depths[pick])
                {
                    pick = leaf
                }
                guard pick >= 0 else { break }
                kraft += 1 << (limit - depths[pick])
                depths[pick] -= 1
            }
            for leaf in 0..<leafCount { lengths[keys[leaf] & 0xFF] = UInt8(depths[leaf]) }
        }
        return lengths
    }

    /// Canonical codes (RFC 1951, 3.2.2) for `lengths`, bit-reversed so that writing them least
    /// significant bit first puts the code's first bit first.
    static func canonicalCodes(_ lengths: UnsafeBufferPointer<UInt8>, into codes: UnsafeMutableBufferPointer<UInt16>) {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: maximumCodeLength + 1) { next in
            next.initialize(repeating: 0)
            for length in lengths where length > 0 { next[Int(length)] += 1 }
            // next[length] becomes the first code of that length.
            var code = 0
            var previousCount = 0
            for length in 1...maximumCodeLength {
                code = (code + previousCount) << 1
                previousCount = next[length]
                next[length] = code
            }
            for symbol in lengths.indices {
                let length = Int(lengths[symbol])
                guard length > 0 else {
                    codes[symbol] = 0
                    continue
                }
                let canonical = UInt16(truncatingIfNeeded: next[length])
                next[length] += 1
                codes[symbol] = canonical.bitReversed(width: length)
            }
        }
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
            throw reader.error(
                .malformed, "\(what) code table has \(usedSymbols) symbols, at most \(symbolCount) are defined",
                at: divisorOffset)
        }
        let tableOffset = reader.position
        let packedLengths = try reader.readBytes((usedSymbols + 1) / 2, "\(what) code lengths")
        // Scratch: code lengths (as UInt16), codes, then the lookup table of at most 2^12 entries.
        let scratch = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: 2 * symbolCount + (1 << maximumCodeLength))
        defer { scratch.deallocate() }
        let lengths = UnsafeMutableBufferPointer(rebasing: scratch[0..<usedSymbols])
        var kraft = 0
        var maximumLength = 0
        var nonzero = 0
        var onlySymbol = 0
        for symbol in 0..<usedSymbols {
            let length = Int(packedLengths[symbol / 2] >> (symbol % 2 == 0 ? 0 : 4)) & 0x0F
            guard length <= maximumCodeLength else {
                throw reader.error(
                    .malformed, "\(what) code length \(length) of symbol \(symbol) exceeds \(maximumCodeLength)",
                    at: tableOffset + symbol / 2)
            }
            lengths[symbol] = UInt16(length)
            if length > 0 {
                nonzero += 1
                onlySymbol = symbol
                kraft += 1 << (maximumCodeLength - length)
                maximumLength = max(maximumLength, length)
            }
        }
        if usedSymbols % 2 == 1 && packedLengths[usedSymbols / 2] >> 4 != 0 {
            throw reader.error(
                .malformed, "\(what) code table pads with a nonzero length", at: tableOffset + usedSymbols / 2)
        }
        guard lengths[usedSymbols - 1] > 0 else {
            throw reader.error(.malformed, "\(what) code table ends with an unused symbol", at: tableOffset)
        }
        let single = nonzero == 1
        if single {
            guard maximumLength == 1 else {
                throw reader.error(
                    .malformed, "\(what) code table's only symbol has length \(maximumLength), not 1", at: tableOffset)
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

        // Lookup table indexed by the next `tableBits` stream bits: symbol << 4 | code length. The
        // code is complete (checked above), so every entry gets written.
        let tableBits = single ? 0 : maximumLength
        let table = UnsafeMutableBufferPointer(rebasing: scratch[2 * symbolCount..<2 * symbolCount + (1 << tableBits)])
        if single {
            table[0] = UInt16(onlySymbol << 4)
        } else {
            let codes = UnsafeMutableBufferPointer(rebasing: scratch[symbolCount..<symbolCount + usedSymbols])
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: usedSymbols) { narrow in
                for symbol in 0..<usedSymbols { narrow[symbol] = UInt8(lengths[symbol]) }
                canonicalCodes(UnsafeBufferPointer(narrow), into: codes)
            }
            for symbol in 0..<usedSymbols where lengths[symbol] > 0 {
                let length = Int(lengths[symbol])
                let entry = UInt16(symbol << 4 | length)
                for index in stride(from: Int(codes[symbol]), to: 1 << tableBits, by: 1 << length) {
                    table[index] = entry
                }
            }
        }

        let totalBits = byteCount * 8
        let tableMask = UInt64((1 << tableBits) - 1)
        var bits = StreamBits(stream)
        for index in 0..<output.count {
            bits.ensure(maximumCodeLength)
            let entry = table[Int(bits.buffer & tableMask)]
            let symbol = Int(entry >> 4)
            bits.consume(Int(entry & 0x0F))
            var value = UInt64(symbol)
            if symbol >= 4 {
                let extraWidth = (symbol >> 1) - 1
                value = (UInt64(2 | (symbol & 1)) << UInt64(extraWidth)) | bits.take(extraWidth)
            }
            output[index] = Int64(bitPattern: UInt64(bitPattern: ZigZag.decode(value)) &* divisor)
        }
        let bit = bits.consumedBits
        guard bit <= totalBits else {
            throw CodecError(
                .truncated, "\(what) residual stream needs \(bit) bits, has \(totalBits)", at: streamStart + byteCount,
                in: reader.area)
        }
        guard totalBits - bit < 8 else {
            throw reader.error(
                .malformed, "\(what) residual stream declares \(byteCount) bytes but uses \((bit + 7) / 8)",
                at: countOffset)
        }
    }

}

extension UInt16 {
    /// The low `width` bits in reverse order.
    @inline(__always) func bitReversed(width: Int) -> UInt16 {
        (self.bitSwapped) >> UInt16(16 - width)
    }

    private var bitSwapped: UInt16 {
        var value = self
        value = (value & 0x5555) << 1 | (value >> 1) & 0x5555
        value = (value & 0x3333) << 2 | (value >> 2) & 0x3333
        value = (value & 0x0F0F) << 4 | (value >> 4) & 0x0F0F
        return value.byteSwapped
    }
}

/// A least-significant-bit-first reader over an untrusted bit stream that keeps up to 64 bits in a
/// register and refills it eight bytes at a time, so a Huffman decode costs a shift rather than a
/// load per value. Past the end it supplies zero bits and counts them, so the caller can tell a
/// truncated stream from a complete one after the loop instead of checking every read.
struct StreamBits {
    private let stream: UnsafeRawBufferPointer
    /// The next unread bits, lowest first; bits at and above `available` are either zero or the
    /// stream's own later bits.
    private(set) var buffer: UInt64 = 0
    private var available = 0
    /// Next byte to load.
    private var position = 0
    /// Zero bits supplied past the end of the stream.
    private var phantomBits = 0

    init(_ stream: UnsafeRawBufferPointer) { self.stream = stream }

    /// Bits read so far, including any past the end.
    var consumedBits: Int { position * 8 + phantomBits - available }

    /// Makes at least `count` (at most 56) bits available.
    @inline(__always) mutating func ensure(_ count: Int) {
        guard available < count else { return }
        if position + 8 <= stream.count {
            // Branch-free refill: load eight bytes, keep whole bytes up to 56-63 bits.
            buffer |=
                UInt64(littleEndian: stream.loadUnaligned(fromByteOffset: position, as: UInt64.self))
                << UInt64(available)
            position += (63 - available) >> 3
            available |= 56
        } else {
            refillNearEnd()
        }
    }

    @inline(never) private mutating func refillNearEnd() {
        while available <= 56 {
            if position < stream.count {
                buffer |= UInt64(stream[position]) << UInt64(available)
                position += 1
            } else {
                phantomBits += 8
            }
            available += 8
        }
    }

    /// Drops `count` bits (at most those available).
    @inline(__always) mutating func consume(_ count: Int) {
        buffer >>= UInt64(count)
        available -= count
    }

    /// The next `count` bits (0 ... 64) as a number.
    @inline(__always) mutating func take(_ count: Int) -> UInt64 {
        if count <= 32 {
            ensure(count)
            let value = buffer & BitPacking.mask(count)
            consume(count)
            return value
        }
        ensure(32)
        let low = buffer & 0xFFFF_FFFF
        consume(32)
        let highCount = count - 32
        ensure(highCount)
        let high = buffer & BitPacking.mask(highCount)
        consume(highCount)
        return low | high << 32
    }
}
