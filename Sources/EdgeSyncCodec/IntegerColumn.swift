/// Encodes a column of 64-bit integers: a chosen difference order, then the residuals either
/// Huffman-coded (``ResidualHuffman``, format version 2) or in blocks of bit-packed residuals with an
/// explicit base and patched exceptions.
///
/// Timestamps (nanoseconds) and decimal-scaled sensor values both end up here. Regular timestamps
/// have second differences of zero and cost almost nothing; smooth sensor values have small first
/// or second differences, whose peaked distribution the Huffman code exploits; in packed blocks a
/// rare outlier (a gap, a spike) is stored as an exception instead of widening its whole block.
/// See `Docs/wire-format.md`, "Integer column".
enum IntegerColumn {
    /// Residuals per block; a block shares one base and one bit width.
    static let blockLength = 128
    static let maximumOrder: UInt8 = 2

    // MARK: Encoding

    static func encode(_ values: UnsafeBufferPointer<Int64>, into writer: inout ByteWriter) {
        let count = values.count
        let order = chooseOrder(values)
        let seeds = min(Int(order), count)
        guard count > 0 else {
            writer.append(order)
            return
        }
        var residuals = [Int64](repeating: 0, count: count - seeds)
        residuals.withUnsafeMutableBufferPointer { out in
            differences(values, order: order, into: out)
        }
        residuals.withUnsafeBufferPointer { residuals in
            // Entropy coding pays for its table once a column has a few dozen residuals; short columns
            // keep the packed blocks, and so do columns mostly of one value when packing is smaller
            // (a Huffman code spends at least a bit a value; width 0 plus exceptions spends none).
            var entropyPlan: ResidualHuffman.Plan? = nil
            var blockChoices: [BlockChoice] = []
            if residuals.count >= minimumEntropyCodedResiduals {
                let plan = ResidualHuffman.plan(residuals)
                if plan.hasDominantSymbol {
                    blockChoices = chooseBlocks(residuals)
                    let packedBytes = blockChoices.reduce(0) { $0 + $1.estimatedBytes }
                    if plan.encodedBytes < packedBytes { entropyPlan = plan }
                } else {
                    entropyPlan = plan
                }
            }
            writer.append(order | (entropyPlan == nil ? 0 : entropyCodedFlag))
            // Seeds: x0 for order >= 1, then x1 - x0 for order 2.
            if seeds >= 1 { writer.appendSignedVarint(values[0]) }
            if seeds >= 2 { writer.appendSignedVarint(values[1] &- values[0]) }
            if let entropyPlan {
                ResidualHuffman.write(entropyPlan, into: &writer)
                return
            }
            var scratch = [UInt64](repeating: 0, count: blockLength)
            scratch.withUnsafeMutableBufferPointer { scratch in
                var start = 0
                var blockIndex = 0
                while start < residuals.count {
                    let end = min(start + blockLength, residuals.count)
                    let block = UnsafeBufferPointer(rebasing: residuals[start..<end])
                    let choice = blockIndex < blockChoices.count ? blockChoices[blockIndex] : chooseWidth(block)
                    encodeBlock(block, choice: choice, scratch: scratch, into: &writer)
                    start = end
                    blockIndex += 1
                }
            }
        }
    }

    /// Order byte bit 7 (format version 2): the residuals are Huffman-coded, not packed in blocks.
    static let entropyCodedFlag: UInt8 = 0x80
    static let minimumEntropyCodedResiduals = 16

    /// How one packed block is written: its base and width, and the bits that costs (packed fields
    /// plus estimated exceptions).
    struct BlockChoice {
        var base: Int64
        var width: Int
        var bits: Int

        var estimatedBytes: Int { 1 + ResidualHuffman.varintSize(ZigZag.encode(base)) + (bits + 7) / 8 }
    }

    /// Every block's choice, computed once both to compare packing with the Huffman code and to
    /// write the blocks when packing wins.
    private static func chooseBlocks(_ residuals: UnsafeBufferPointer<Int64>) -> [BlockChoice] {
        var choices: [BlockChoice] = []
        choices.reserveCapacity((residuals.count + blockLength - 1) / blockLength)
        var start = 0
        while start < residuals.count {
            let end = min(start + blockLength, residuals.count)
            choices.append(chooseWidth(UnsafeBufferPointer(rebasing: residuals[start..<end])))
            start = end
        }
        return choices
    }

    /// Writes the residuals of `values` for `order` (skipping the seeds) into `out`.
    @inline(__always)
    private static func differences(_ values: UnsafeBufferPointer<Int64>, order: UInt8, into out: UnsafeMutableBufferPointer<Int64>) {
        switch order {
        case 0:
            for index in 0..<values.count { out[index] = values[index] }
        case 1:
            for index in 1..<max(values.count, 1) { out[index - 1] = values[index] &- values[index - 1] }
        default:
            guard values.count > 2 else { return }
            for index in 2..<values.count {
                out[index - 2] = (values[index] &- values[index - 1]) &- (values[index - 1] &- values[index - 2])
            }
        }
    }

    /// Picks the difference order whose residuals have the smallest summed magnitude (in bits), a
    /// cheap stand-in for the packed size.
    private static func chooseOrder(_ values: UnsafeBufferPointer<Int64>) -> UInt8 {
        let count = values.count
        guard count > 2 else { return count > 1 ? 1 : 0 }
        var cost0 = 0
        var cost1 = 0
        var cost2 = 0
        var previousDelta = values[1] &- values[0]
        cost0 = signedWidth(values[0]) + signedWidth(values[1])
        cost1 = signedWidth(previousDelta)
        for index in 2..<count {
            let delta = values[index] &- values[index - 1]
            cost0 &+= signedWidth(values[index])
            cost1 &+= signedWidth(delta)
            cost2 &+= signedWidth(delta &- previousDelta)
            previousDelta = delta
        }
        if cost2 < cost1 && cost2 < cost0 { return 2 }
        return cost1 < cost0 ? 1 : 0
    }

    /// The width `w` such that `value` lies in `-2^(w-1) ..< 2^(w-1)`; 0 only for 0.
    @inline(__always) static func signedWidth(_ value: Int64) -> Int {
        value == 0 ? 0 : 65 - (value ^ (value >> 63)).leadingZeroBitCount
    }

    /// Approximate bits to store one exception whose value needs `width` bits: a one-byte position
    /// and a varint.
    @inline(__always) private static func exceptionCost(_ width: Int) -> Int {
        8 + 8 * max(1, (width + 7) / 7)
    }

    /// The base and width of least cost for one block.
    private static func chooseWidth(_ block: UnsafeBufferPointer<Int64>) -> BlockChoice {
        let length = block.count
        var minimum = block[0]
        for value in block where value < minimum { minimum = value }
        // Histograms of widths relative to the minimum (0..<65) and relative to zero (65..<130).
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 130) { histogram in
            histogram.initialize(repeating: 0)
            for value in block {
                histogram[BitPacking.width(of: UInt64(bitPattern: value &- minimum))] &+= 1
                histogram[65 &+ signedWidth(value)] &+= 1
            }
            // Pick (base kind, width) of least cost; ties prefer the minimum base with no exceptions.
            var bestCost = Int.max
            var bestWidth = 64
            var bestCentred = false
            for kind in 0..<2 {
                let centred = kind == 1
                let offset = centred ? 65 : 0
                var exceptionBits = 0
                // Walk widths from 64 down so the exception cost accumulates.
                var width = 64
                while width >= 0 {
                    let cost = length * width + exceptionBits
                    if cost < bestCost || (cost == bestCost && !centred && exceptionBits == 0) {
                        bestCost = cost
                        bestWidth = width
                        bestCentred = centred
                    }
                    exceptionBits += histogram[offset + width] * exceptionCost(width)
                    width -= 1
                }
            }
            let base: Int64 = bestCentred ? (bestWidth == 0 ? 0 : -(Int64(1) << Int64(bestWidth - 1))) : minimum
            return BlockChoice(base: base, width: bestWidth, bits: bestCost)
        }
    }

    private static func encodeBlock(
        _ block: UnsafeBufferPointer<Int64>, choice: BlockChoice, scratch: UnsafeMutableBufferPointer<UInt64>,
        into writer: inout ByteWriter
    ) {
        let length = block.count
        let base = choice.base
        let width = choice.width
        let limit = BitPacking.mask(width)

        var exceptionCount = 0
        for value in block where UInt64(bitPattern: value &- base) > limit { exceptionCount += 1 }

        writer.append(UInt8(width) | (exceptionCount > 0 ? 0x80 : 0))
        writer.appendSignedVarint(base)
        if exceptionCount > 0 {
            writer.appendVarint(UInt64(exceptionCount))
            var previous = -1
            for index in 0..<length where UInt64(bitPattern: block[index] &- base) > limit {
                writer.appendVarint(UInt64(index - previous - 1))
                writer.appendSignedVarint(block[index])
                previous = index
            }
        }
        for index in 0..<length {
            let offset = UInt64(bitPattern: block[index] &- base)
            scratch[index] = offset > limit ? 0 : offset
        }
        BitPacking.pack(UnsafeBufferPointer(rebasing: scratch[0..<length]), width: width, into: &writer)
    }

    // MARK: Decoding

    /// Decodes a column of `output.count` integers, checking every field against the input.
    static func decode(
        from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Int64>, what: String
    ) throws(CodecError) {
        let count = output.count
        let orderOffset = reader.position
        let orderByte = try reader.readByte("\(what) difference order")
        let order = orderByte & ~entropyCodedFlag
        guard order <= maximumOrder else {
            throw reader.error(.malformed, "\(what) difference order byte is \(orderByte): orders above \(maximumOrder) and flags other than 0x80 are not defined", at: orderOffset)
        }
        guard count > 0 else { return }
        let seeds = min(Int(order), count)
        var seed0: Int64 = 0
        var seed1: Int64 = 0
        if seeds >= 1 { seed0 = try reader.readSignedVarint("\(what) first value") }
        if seeds >= 2 { seed1 = try reader.readSignedVarint("\(what) first difference") }

        let residuals = UnsafeMutableBufferPointer(rebasing: output[seeds...])
        if orderByte & entropyCodedFlag == 0 {
            try decodeResiduals(from: &reader, into: residuals, what: what)
        } else if !residuals.isEmpty {
            try ResidualHuffman.decode(from: &reader, into: residuals, what: what)
        }

        switch order {
        case 0:
            break
        case 1:
            var value = seed0
            output[0] = value
            for index in 1..<count {
                value &+= output[index]
                output[index] = value
            }
        default:
            output[0] = seed0
            guard count > 1 else { return }
            var delta = seed1
            var value = seed0 &+ seed1
            output[1] = value
            for index in 2..<count {
                delta &+= output[index]
                value &+= delta
                output[index] = value
            }
        }
    }

    private static func decodeResiduals(
        from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Int64>, what: String
    ) throws(CodecError) {
        let scratchStorage = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: blockLength)
        defer { scratchStorage.deallocate() }
        var start = 0
        while start < output.count {
            let length = min(blockLength, output.count - start)
            let blockOffset = reader.position
            let header = try reader.readByte("\(what) block header")
            let width = Int(header & 0x7F)
            guard width <= 64 else {
                throw reader.error(.malformed, "\(what) block bit width is \(width), at most 64 is allowed", at: blockOffset)
            }
            let base = try reader.readSignedVarint("\(what) block base")
            // Exceptions are read first but applied after unpacking.
            var exceptionCount = 0
            var exceptionsStart = 0
            if header & 0x80 != 0 {
                exceptionCount = try reader.readCount("\(what) exception count", atMost: length)
                guard exceptionCount > 0 else {
                    throw reader.error(.malformed, "\(what) block says it has exceptions but counts none")
                }
                exceptionsStart = reader.position
                var position = -1
                for _ in 0..<exceptionCount {
                    let gap = try reader.readCount("\(what) exception position", atMost: length)
                    position += gap + 1
                    guard position < length else {
                        throw reader.error(.malformed, "\(what) exception position \(position) is outside its block of \(length)")
                    }
                    _ = try reader.readVarint("\(what) exception value")
                }
            }
            let packedBytes = BitPacking.byteCount(count: length, width: width)
            let packed = try reader.readBytes(packedBytes, "\(what) packed block")
            let scratch = UnsafeMutableBufferPointer(rebasing: scratchStorage[0..<length])
            BitPacking.unpack(packed, width: width, into: scratch)
            for index in 0..<length {
                output[start + index] = base &+ Int64(bitPattern: scratch[index])
            }
            if exceptionCount > 0 {
                // Second pass over the already validated exception list.
                let resume = reader.position
                try reader.seek(to: exceptionsStart)
                var position = -1
                for _ in 0..<exceptionCount {
                    position += Int(try reader.readVarint("\(what) exception position")) + 1
                    output[start + position] = try reader.readSignedVarint("\(what) exception value")
                }
                try reader.seek(to: resume)
            }
            start += length
        }
    }
}
