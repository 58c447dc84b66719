/// Encodes a series' Float64 values in blocks, each either decimal-scaled integers (with raw
/// exceptions) or Gorilla-style XOR, whichever is smaller.
///
/// Decimal scaling in the spirit of ALP (SIGMOD 2024): a sensor value like 21.37 is the double
/// nearest to an integer over a power of ten, so it is stored as that integer (2137, exponent 2)
/// and decoded as `Double(2137) / 100`, which IEEE 754 division rounds back to exactly the same
/// bits. Values for which that is not exact (NaN, -0.0, infinities, noise) are exceptions kept as
/// raw bits. When too many values are exceptions the block falls back to XOR encoding (Gorilla,
/// VLDB 2015), which is exact for every bit pattern.
enum ValueColumn {
    static let blockLength = 1024
    static let maximumExponent = 18

    enum Scheme: UInt8 {
        case decimal = 0
        case xor = 1
        case decimalWithOffsets = 2
    }

    /// Exact powers of ten 10^0 ... 10^18 (every one is representable as a Float64). A literal, so
    /// that the compiler initializes it statically: a computed global would cost a `swift_once`
    /// check on every access in the encoder's innermost loops.
    static let powersOfTen: [Double] = [
        1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    ]

    /// The value an integer and exponent stand for; the normative decoding formula.
    @inline(__always) static func decimalValue(_ mantissa: Int64, exponent: Int) -> Double {
        exponent >= 0 ? Double(mantissa) / powersOfTen[exponent] : Double(mantissa) * powersOfTen[-exponent]
    }

    /// The integer that `value` scales to at `exponent`, if it is within Int64 range.
    @inline(__always) static func scaled(_ value: Double, exponent: Int) -> Int64? {
        let product = exponent >= 0 ? value * powersOfTen[exponent] : value / powersOfTen[-exponent]
        // 2^62: room for differences between neighbours without overflow concerns in practice.
        // (Also false for NaN.)
        guard product.magnitude < 4.611686018427388e18 else { return nil }
        // Rounds half away from zero like `rounded()`, without its libm call (this is the
        // encoder's innermost loop): the fraction is exact because the truncated value is.
        let truncated = Int64(product)
        let fraction = product - Double(truncated)
        return fraction >= 0.5 ? truncated &+ 1 : fraction <= -0.5 ? truncated &- 1 : truncated
    }

    // MARK: Encoding

    /// Encodes `values` in blocks; `errorBound`, when set, quantizes to the coarsest decimal step
    /// that keeps every value within the bound.
    static func encode(_ values: UnsafeBufferPointer<Double>, errorBound: Double?, into writer: inout ByteWriter) {
        var start = 0
        var mantissas = [Int64](repeating: 0, count: min(blockLength, values.count))
        while start < values.count {
            let end = min(start + blockLength, values.count)
            let block = UnsafeBufferPointer(rebasing: values[start..<end])
            mantissas.withUnsafeMutableBufferPointer { mantissas in
                encodeBlock(block, errorBound: errorBound, mantissas: mantissas, into: &writer)
            }
            start = end
        }
    }

    private static func encodeBlock(
        _ block: UnsafeBufferPointer<Double>, errorBound: Double?, mantissas: UnsafeMutableBufferPointer<Int64>,
        into writer: inout ByteWriter
    ) {
        // A lossy block never uses a finer step than its values need to be exact.
        let exact = losslessExponent(for: block)
        let exponent = errorBound.map { min(lossyExponent(for: $0), exact) } ?? exact
        let mantissas = UnsafeMutableBufferPointer(rebasing: mantissas[0..<block.count])
        var exceptions: [Int] = []
        var last: Int64? = nil
        for index in 0..<block.count {
            let value = block[index]
            if let mantissa = scaled(value, exponent: exponent),
                accepts(value, decimalValue(mantissa, exponent: exponent), errorBound)
            {
                mantissas[index] = mantissa
                if last == nil {
                    // Exceptions before the first good value copy it, so they do not widen the deltas.
                    for slot in 0..<index { mantissas[slot] = mantissa }
                }
                last = mantissa
            } else {
                exceptions.append(index)
                mantissas[index] = last ?? 0
            }
        }

        // The decimal form goes straight into `writer`; an alternative that turns out smaller
        // replaces it, which is rare enough that the common case should not pay for a copy.
        let start = writer.count
        writer.append(Scheme.decimal.rawValue)
        writer.append(UInt8(bitPattern: Int8(exponent)))
        writer.appendVarint(UInt64(exceptions.count))
        var previous = -1
        for index in exceptions {
            writer.appendVarint(UInt64(index - previous - 1))
            writer.appendUInt64(block[index].bitPattern)
            previous = index
        }
        IntegerColumn.encode(UnsafeBufferPointer(mantissas), into: &writer)
        let decimalCount = writer.count - start

        // Many exceptions or wide mantissas (13.200000000000044 is exact at exponent 15) mean the
        // values are not short decimals. Lossy blocks keep the decimal form, which is what enforces
        // the bound; lossless ones take the smallest exact alternative.
        // Sensors rarely report more than 9 decimals, so a finer exponent means binary arithmetic
        // produced the values, and entropy-coded wide mantissas can still look affordable.
        guard errorBound == nil,
            exceptions.count * 8 > block.count || decimalCount > block.count * 2 || exponent > 9
        else { return }
        var best: [UInt8]? = nil
        let xor = encodeXOR(block)
        if xor.count < decimalCount { best = xor }
        if let offsets = encodeOffsets(block, mantissas: mantissas), offsets.count < (best?.count ?? decimalCount) {
            best = offsets
        }
        if let best {
            writer.bytes.removeSubrange(start...)
            writer.append(contentsOf: best)
        }
    }

    /// Scheme 2: values near a short decimal, like 13.200000000000044 (computed as 2566 / 5 - 500 in
    /// binary floating point), stored as the decimal plus the distance in units in the last place.
    /// The offset is stored relative to the last offset of the same decimal (``OffsetPredictor``):
    /// one formula gives one rounding error per decimal, so repeats cost almost nothing. Exact for
    /// every bit pattern. Returns nil when no exponent brings the values near decimals.
    private static func encodeOffsets(_ block: UnsafeBufferPointer<Double>, mantissas: UnsafeMutableBufferPointer<Int64>) -> [UInt8]? {
        guard let exponent = nearDecimalExponent(for: block) else { return nil }
        var offsets = [Int64](repeating: 0, count: block.count)
        var predictor = OffsetPredictor(capacityFor: block.count)
        for index in 0..<block.count {
            let value = block[index]
            let mantissa = scaled(value, exponent: exponent) ?? 0
            mantissas[index] = mantissa
            let offset = Int64(bitPattern: value.bitPattern &- decimalValue(mantissa, exponent: exponent).bitPattern)
            offsets[index] = offset &- predictor.exchange(mantissa, offset)
        }
        var writer = ByteWriter(capacity: block.count * 2)
        writer.append(Scheme.decimalWithOffsets.rawValue)
        writer.append(UInt8(bitPattern: Int8(exponent)))
        IntegerColumn.encode(UnsafeBufferPointer(mantissas), into: &writer)
        offsets.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }
        return writer.bytes
    }

    /// The smallest exponent (0...12) at which every sampled finite value lies within a relative
    /// 1e-12 of a decimal, or nil.
    private static func nearDecimalExponent(for block: UnsafeBufferPointer<Double>) -> Int? {
        let samples = min(32, block.count)
        var exponent = 0
        for sample in 0..<samples {
            let value = block[sample * block.count / samples]
            guard value.isFinite else { continue }
            var found: Int? = nil
            for candidate in 0...12 {
                if let mantissa = scaled(value, exponent: candidate),
                    (decimalValue(mantissa, exponent: candidate) - value).magnitude <= value.magnitude * 1e-12
                {
                    found = candidate
                    break
                }
            }
            guard let found else { return nil }
            exponent = max(exponent, found)
        }
        return exponent
    }

    @inline(__always) private static func accepts(_ original: Double, _ decoded: Double, _ bound: Double?) -> Bool {
        guard let bound else { return decoded.bitPattern == original.bitPattern }
        // Non-finite values and signed zeros are kept exactly, as exceptions.
        guard original.isFinite, decoded.isFinite else { return false }
        if decoded.bitPattern == original.bitPattern { return true }
        return (decoded - original).magnitude <= bound
    }

    /// The smallest exponent at which a value round-trips exactly, or nil for none in range.
    static func minimalExponent(_ value: Double) -> Int? {
        guard value.isFinite else { return nil }
        for exponent in 0...maximumExponent {
            if let mantissa = scaled(value, exponent: exponent),
                decimalValue(mantissa, exponent: exponent).bitPattern == value.bitPattern
            {
                guard exponent == 0, mantissa != 0 else { return exponent }
                // Integers with trailing zeros scale down: 1500000 is 15 at exponent -5.
                var negative = 0
                var rest = mantissa
                while negative < maximumExponent, rest % 10 == 0 {
                    rest /= 10
                    negative += 1
                }
                while negative > 0 {
                    if let mantissa = scaled(value, exponent: -negative),
                        decimalValue(mantissa, exponent: -negative).bitPattern == value.bitPattern
                    {
                        return -negative
                    }
                    negative -= 1
                }
                return 0
            }
        }
        return nil
    }

    /// The exponent for a block: the largest minimal exponent among up to 32 evenly spaced samples,
    /// so that every sampled value is exact (others that are not become exceptions).
    private static func losslessExponent(for block: UnsafeBufferPointer<Double>) -> Int {
        let samples = min(32, block.count)
        var exponent = Int.min
        // Sensor values repeat; a sample equal to the previous one cannot change the maximum.
        var previous: UInt64? = nil
        for sample in 0..<samples {
            let value = block[sample * block.count / samples]
            guard value.bitPattern != previous else { continue }
            previous = value.bitPattern
            if let minimal = minimalExponent(value) { exponent = max(exponent, minimal) }
        }
        return exponent == Int.min ? 0 : exponent
    }

    /// The coarsest decimal exponent whose rounding error (half a step) is within `bound`.
    static func lossyExponent(for bound: Double) -> Int {
        for exponent in stride(from: -maximumExponent, through: maximumExponent, by: 1) {
            let step = exponent >= 0 ? 1 / powersOfTen[exponent] : powersOfTen[-exponent]
            if step / 2 <= bound { return exponent }
        }
        return maximumExponent
    }

    private static func encodeXOR(_ block: UnsafeBufferPointer<Double>) -> [UInt8] {
        var bits = BitWriter(capacity: block.count * 4)
        var previous = block[0].bitPattern
        bits.write(previous, width: 64)
        var windowLeading = -1
        var windowTrailing = 0
        for index in 1..<block.count {
            let current = block[index].bitPattern
            let xor = current ^ previous
            previous = current
            if xor == 0 {
                bits.write(0, width: 1)
                continue
            }
            bits.write(1, width: 1)
            let leading = xor.leadingZeroBitCount
            let trailing = xor.trailingZeroBitCount
            if windowLeading >= 0 && leading >= windowLeading && trailing >= windowTrailing
                && (64 - windowLeading - windowTrailing) <= (64 - leading - trailing) + 13
            {
                bits.write(0, width: 1)
                bits.write(xor >> UInt64(windowTrailing), width: 64 - windowLeading - windowTrailing)
            } else {
                let meaningful = 64 - leading - trailing
                bits.write(1, width: 1)
                bits.write(UInt64(leading), width: 6)
                bits.write(UInt64(meaningful - 1), width: 6)
                bits.write(xor >> UInt64(trailing), width: meaningful)
                windowLeading = leading
                windowTrailing = trailing
            }
        }
        let stream = bits.finish()
        var out = ByteWriter(capacity: stream.count + 6)
        out.append(Scheme.xor.rawValue)
        out.appendVarint(UInt64(stream.count))
        out.append(contentsOf: stream)
        return out.bytes
    }

    // MARK: Decoding

    static func decode(
        from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Double>, what: String
    ) throws(CodecError) {
        let mantissaStorage = UnsafeMutableBufferPointer<Int64>.allocate(capacity: min(blockLength, output.count))
        defer { mantissaStorage.deallocate() }
        var start = 0
        while start < output.count {
            let end = min(start + blockLength, output.count)
            let block = UnsafeMutableBufferPointer(rebasing: output[start..<end])
            let blockWhat = "\(what) block at value \(start)"
            let schemeOffset = reader.position
            let rawScheme = try reader.readByte("\(blockWhat) scheme")
            switch Scheme(rawValue: rawScheme) {
            case .decimal:
                let mantissas = UnsafeMutableBufferPointer(rebasing: mantissaStorage[0..<block.count])
                try decodeDecimal(from: &reader, into: block, mantissas: mantissas, what: blockWhat)
            case .xor:
                try decodeXOR(from: &reader, into: block, what: blockWhat)
            case .decimalWithOffsets:
                let mantissas = UnsafeMutableBufferPointer(rebasing: mantissaStorage[0..<block.count])
                try decodeOffsets(from: &reader, into: block, mantissas: mantissas, what: blockWhat)
            case nil:
                throw reader.error(.malformed, "\(blockWhat) scheme is \(rawScheme), only 0 (decimal), 1 (xor) and 2 (decimal with offsets) are defined", at: schemeOffset)
            }
            start = end
        }
    }

    private static func decodeDecimal(
        from reader: inout ByteReader, into block: UnsafeMutableBufferPointer<Double>,
        mantissas: UnsafeMutableBufferPointer<Int64>, what: String
    ) throws(CodecError) {
        let exponent = try readExponent(from: &reader, what: what)
        let exceptionCount = try reader.readCount("\(what) exception count", atMost: block.count)
        let exceptionsStart = reader.position
        var position = -1
        for _ in 0..<exceptionCount {
            position += try reader.readCount("\(what) exception position", atMost: block.count) + 1
            guard position < block.count else {
                throw reader.error(.malformed, "\(what) exception position \(position) is outside its block of \(block.count)")
            }
            _ = try reader.readUInt64("\(what) exception value")
        }
        try IntegerColumn.decode(from: &reader, into: mantissas, what: "\(what) mantissas")
        if exponent >= 0 {
            let divisor = powersOfTen[exponent]
            for index in 0..<block.count { block[index] = Double(mantissas[index]) / divisor }
        } else {
            let factor = powersOfTen[-exponent]
            for index in 0..<block.count { block[index] = Double(mantissas[index]) * factor }
        }
        guard exceptionCount > 0 else { return }
        let resume = reader.position
        try reader.seek(to: exceptionsStart)
        position = -1
        for _ in 0..<exceptionCount {
            position += Int(try reader.readVarint("\(what) exception position")) + 1
            block[position] = Double(bitPattern: try reader.readUInt64("\(what) exception value"))
        }
        try reader.seek(to: resume)
    }

    private static func decodeOffsets(
        from reader: inout ByteReader, into block: UnsafeMutableBufferPointer<Double>,
        mantissas: UnsafeMutableBufferPointer<Int64>, what: String
    ) throws(CodecError) {
        let exponent = try readExponent(from: &reader, what: what)
        try IntegerColumn.decode(from: &reader, into: mantissas, what: "\(what) mantissas")
        let offsets = UnsafeMutableBufferPointer<Int64>.allocate(capacity: block.count)
        defer { offsets.deallocate() }
        try IntegerColumn.decode(from: &reader, into: offsets, what: "\(what) offsets")
        var predictor = OffsetPredictor(capacityFor: block.count)
        for index in 0..<block.count {
            let mantissa = mantissas[index]
            let predicted = predictor.lookUp(mantissa)
            let offset = offsets[index] &+ predicted
            predictor.store(offset)
            let bits = decimalValue(mantissa, exponent: exponent).bitPattern &+ UInt64(bitPattern: offset)
            block[index] = Double(bitPattern: bits)
        }
    }

    private static func readExponent(from reader: inout ByteReader, what: String) throws(CodecError) -> Int {
        let exponentOffset = reader.position
        let exponent = Int(Int8(bitPattern: try reader.readByte("\(what) exponent")))
        guard (-maximumExponent...maximumExponent).contains(exponent) else {
            throw reader.error(.malformed, "\(what) exponent is \(exponent), outside -\(maximumExponent)...\(maximumExponent)", at: exponentOffset)
        }
        return exponent
    }

    private static func decodeXOR(
        from reader: inout ByteReader, into block: UnsafeMutableBufferPointer<Double>, what: String
    ) throws(CodecError) {
        let lengthOffset = reader.position
        // 64 bits plus at most 2 + 6 + 6 + 64 bits per further value.
        let maximumBytes = (64 + 78 * (block.count - 1) + 7) / 8
        let byteCount = try reader.readCount("\(what) xor byte length", atMost: maximumBytes)
        let streamStart = reader.offset
        let stream = try reader.readBytes(byteCount, "\(what) xor stream")
        var bits = BitReader(stream)
        func truncated() -> CodecError {
            CodecError(.truncated, "\(what) xor stream ends after \(bits.bit) bits", at: streamStart + bits.bit / 8, in: reader.area)
        }
        guard var previous = bits.read(64) else { throw truncated() }
        block[0] = Double(bitPattern: previous)
        var windowLeading = -1
        var windowTrailing = 0
        for index in 1..<block.count {
            guard let changed = bits.read(1) else { throw truncated() }
            if changed == 1 {
                guard let fresh = bits.read(1) else { throw truncated() }
                if fresh == 1 {
                    guard let leading = bits.read(6), let meaningfulMinusOne = bits.read(6) else { throw truncated() }
                    let meaningful = Int(meaningfulMinusOne) + 1
                    guard Int(leading) + meaningful <= 64 else {
                        throw CodecError(.malformed, "\(what) xor window of \(leading) leading zeros and \(meaningful) bits exceeds 64", at: streamStart + bits.bit / 8, in: reader.area)
                    }
                    windowLeading = Int(leading)
                    windowTrailing = 64 - windowLeading - meaningful
                } else if windowLeading < 0 {
                    throw CodecError(.malformed, "\(what) xor value \(index) reuses a window before one was set", at: streamStart + bits.bit / 8, in: reader.area)
                }
                guard let meaningfulBits = bits.read(64 - windowLeading - windowTrailing) else { throw truncated() }
                previous ^= meaningfulBits << UInt64(windowTrailing)
            }
            block[index] = Double(bitPattern: previous)
        }
        guard bits.bitsLeft < 8 else {
            throw reader.error(.malformed, "\(what) xor stream declares \(byteCount) bytes but uses \((bits.bit + 7) / 8)", at: lengthOffset)
        }
    }
}

/// Predicts a decimal-with-offsets value's offset as the offset of the latest earlier value in the
/// block with the same mantissa (0 for a first occurrence).
///
/// Values computed by one binary formula from a decimal or integer source (a logger's
/// `raw / 5 - 500`, a unit conversion) carry a rounding error that is a function of the source
/// value, so a repeated mantissa repeats its offset: on the cycling altitude this leaves almost
/// only first occurrences to store. An open-addressing table of at least twice the block's length
/// keeps the lookups constant-time and the memory bounded by the block.
struct OffsetPredictor: ~Copyable {
    private let keys: UnsafeMutablePointer<Int64>
    private let offsets: UnsafeMutablePointer<Int64>
    private let occupied: UnsafeMutablePointer<Bool>
    private let mask: Int
    private var slot = 0

    init(capacityFor count: Int) {
        var capacity = 16
        while capacity < 2 * count { capacity <<= 1 }
        keys = .allocate(capacity: capacity)
        offsets = .allocate(capacity: capacity)
        occupied = .allocate(capacity: capacity)
        occupied.initialize(repeating: false, count: capacity)
        mask = capacity - 1
    }

    deinit {
        keys.deallocate()
        offsets.deallocate()
        occupied.deallocate()
    }

    /// Finds the slot of `mantissa` (claiming an empty one) and returns its last offset, or 0.
    @inline(__always) mutating func lookUp(_ mantissa: Int64) -> Int64 {
        // Fibonacci hashing; the table is never more than half full, so probing ends.
        var index = Int(truncatingIfNeeded: (UInt64(bitPattern: mantissa) &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask
        while occupied[index] {
            if keys[index] == mantissa {
                slot = index
                return offsets[index]
            }
            index = (index &+ 1) & mask
        }
        occupied[index] = true
        keys[index] = mantissa
        offsets[index] = 0
        slot = index
        return 0
    }

    /// Records the offset of the mantissa last looked up.
    @inline(__always) mutating func store(_ offset: Int64) { offsets[slot] = offset }

    /// The prediction for `mantissa`, then records `offset` as its latest.
    @inline(__always) mutating func exchange(_ mantissa: Int64, _ offset: Int64) -> Int64 {
        let predicted = lookUp(mantissa)
        store(offset)
        return predicted
    }
}
