/// The values of many short series coded together (format version 3, value section mode 1).
///
/// A gateway with a thousand sensors puts a few readings of each series in a batch; a value column
/// per series then spends more on its own headers and entropy table than on the values. Here each
/// series keeps only what is truly its own — a decimal exponent, a predictor and its exceptions,
/// each a small integer stored in one column across all series — and the residuals of every series
/// are concatenated into one integer column, so they share one Huffman code.
///
/// The predictor is a lag: many plug-load and vibration signals repeat with a short period (a
/// waveform sampled a few times per cycle), so the value `k` readings back predicts better than the
/// last one. See `Docs/wire-format.md`, "Shared values (version 3)".
enum SharedValues {
    /// Longest lag a predictor may use.
    static let maximumLag = 16
    /// The exponent entry that sends a series to its own value column (version 2 blocks).
    static let ownColumn: Int64 = 19
    /// Values a lag search looks at: enough to see a period, few enough to stay cheap.
    static let lagSampleLength = 128
    /// Largest shift: low bits per residual stored raw.
    static let maximumShift = 48

    enum Mode: UInt8 {
        /// One version 2 value column per series.
        case perSeries = 0
        /// Exponents, predictors and exception counts per series, one residual column for all.
        case shared = 1
    }

    /// Whether a batch's series are short enough that coding them together pays: long series
    /// amortize their own columns' tables and keep block-wise exponents (decision 00XX).
    static func prefersShared(count: Int, seriesCount: Int) -> Bool {
        seriesCount > 1 && count < seriesCount * 512
    }

    // MARK: Encoding

    /// Encodes the values of every series (`values[starts[s] ..< starts[s + 1]]` for series `s`).
    static func encode(
        _ values: UnsafeBufferPointer<Double>, starts: [Int], errorBounds: [Double?], into writer: inout ByteWriter
    ) {
        let seriesCount = starts.count - 1
        var exponents = [Int64](repeating: 0, count: seriesCount)
        var predictors = [Int64](repeating: 0, count: seriesCount)
        var exceptionCounts = [Int64](repeating: 0, count: seriesCount)
        var shifts = [Int64](repeating: 0, count: seriesCount)
        var lowBits = BitWriter(capacity: values.count)
        var exceptions = ByteWriter()
        var own = ByteWriter()
        var residuals = [Int64](repeating: 0, count: values.count)
        var residualCount = 0
        var exceptionPositions: [Int] = []
        let longest = (0..<seriesCount).reduce(0) { max($0, starts[$1 + 1] - starts[$1]) }
        var mantissaStorage = [Int64](repeating: 0, count: longest)
        mantissaStorage.withUnsafeMutableBufferPointer { mantissaStorage in
            residuals.withUnsafeMutableBufferPointer { residuals in
                for series in 0..<seriesCount {
                    let series_values = UnsafeBufferPointer(rebasing: values[starts[series]..<starts[series + 1]])
                    let count = series_values.count
                    guard count > 0 else { continue }
                    let mantissas = UnsafeMutableBufferPointer(rebasing: mantissaStorage[0..<count])
                    exceptionPositions.removeAll(keepingCapacity: true)
                    guard errorBounds[series] == nil,
                        let exponent = decimalMantissas(series_values, into: mantissas, exceptions: &exceptionPositions)
                    else {
                        exponents[series] = ownColumn
                        ValueColumn.encode(series_values, errorBound: errorBounds[series], into: &own)
                        continue
                    }
                    exponents[series] = Int64(exponent)
                    let lag = chooseLag(UnsafeBufferPointer(mantissas))
                    predictors[series] = Int64(lag)
                    exceptionCounts[series] = Int64(exceptionPositions.count)
                    var previousException = -1
                    for position in exceptionPositions {
                        exceptions.appendVarint(UInt64(position - previousException - 1))
                        exceptions.appendUInt64(series_values[position].bitPattern)
                        previousException = position
                    }
                    // Exceptions take their prediction as mantissa, so their residual is 0.
                    var nextException = 0
                    for index in 0..<count {
                        let predicted = prediction(mantissas, index, lag: lag)
                        if nextException < exceptionPositions.count, exceptionPositions[nextException] == index {
                            mantissas[index] = predicted
                            nextException += 1
                        }
                        residuals[residualCount + index] = mantissas[index] &- predicted
                    }
                    let series_residuals = UnsafeMutableBufferPointer(rebasing: residuals[residualCount..<residualCount + count])
                    let shift = chooseShift(UnsafeBufferPointer(series_residuals))
                    if shift > 0 {
                        shifts[series] = Int64(shift)
                        for index in 0..<count {
                            let residual = series_residuals[index]
                            lowBits.write(UInt64(bitPattern: residual), width: shift)
                            series_residuals[index] = residual >> Int64(shift)
                        }
                    }
                    residualCount += count
                }
            }
        }
        writer.append(Mode.shared.rawValue)
        exponents.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }
        predictors.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }
        shifts.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }
        exceptionCounts.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }
        writer.append(contentsOf: exceptions.bytes)
        residuals.withUnsafeBufferPointer { IntegerColumn.encode(UnsafeBufferPointer(rebasing: $0[0..<residualCount]), into: &writer) }
        writer.append(contentsOf: lowBits.finish())
        writer.append(contentsOf: own.bytes)
    }

    /// The prediction for mantissa `index` with predictor `lag` (normative, see the spec): the
    /// mantissa `lag` back, the one before while fewer than `lag` precede it, 0 for the first (and
    /// for predictor 0).
    @inline(__always)
    static func prediction(_ mantissas: UnsafeMutableBufferPointer<Int64>, _ index: Int, lag: Int) -> Int64 {
        if lag == 0 || index == 0 { return 0 }
        return index >= lag ? mantissas[index &- lag] : mantissas[index &- 1]
    }

    /// Scales a series to integers at the largest exponent its values need, or nil when that does
    /// not pay (too many values are not short decimals, or the mantissas are binary fractions).
    /// Values that are not exact at the exponent are listed in `exceptions` and get the mantissa
    /// before them.
    private static func decimalMantissas(
        _ values: UnsafeBufferPointer<Double>, into mantissas: UnsafeMutableBufferPointer<Int64>, exceptions: inout [Int]
    ) -> Int? {
        var exponent = Int.min
        for value in values {
            if exponent != Int.min, let mantissa = ValueColumn.scaled(value, exponent: exponent),
                ValueColumn.decimalValue(mantissa, exponent: exponent).bitPattern == value.bitPattern
            {
                continue
            }
            if let minimal = ValueColumn.minimalExponent(value), minimal > exponent { exponent = minimal }
        }
        guard exponent != Int.min else { return nil }
        var last: Int64? = nil
        var widest: UInt64 = 0
        for index in 0..<values.count {
            let value = values[index]
            if let mantissa = ValueColumn.scaled(value, exponent: exponent),
                ValueColumn.decimalValue(mantissa, exponent: exponent).bitPattern == value.bitPattern
            {
                mantissas[index] = mantissa
                if last == nil { for slot in 0..<index { mantissas[slot] = mantissa } }
                last = mantissa
                widest |= mantissa.magnitude
            } else {
                exceptions.append(index)
                mantissas[index] = last ?? 0
            }
        }
        // Binary arithmetic (13.200000000000044) is "exact" at a fine exponent with wide
        // mantissas; version 2's offset and XOR blocks code those better.
        if exceptions.count * 8 > values.count || (exponent > 12 && widest >= 1 << 40) { return nil }
        return exponent
    }

    /// Low bits of a series' residuals below its typical magnitude are noise that no code
    /// compresses; storing them raw leaves the shared Huffman code one distribution of high parts
    /// for loud and quiet series alike. The shift is the mean residual width (after the first) less 2.
    private static func chooseShift(_ residuals: UnsafeBufferPointer<Int64>) -> Int {
        guard residuals.count > 1 else { return 0 }
        var widths = 0
        for index in 1..<residuals.count { widths &+= 64 &- residuals[index].magnitude.leadingZeroBitCount }
        return max(0, min(maximumShift, widths / (residuals.count - 1) - 2))
    }

    /// The predictor (0 or a lag 1 … ``maximumLag``) with the smallest summed residual width over
    /// the first ``lagSampleLength`` mantissas.
    ///
    /// This runs for every series of every batch, so it is written for speed: a lag's warm-up
    /// (first differences before `lag`) is a running sum shared by all lags, and a lag stops
    /// counting once it cannot beat the best so far (widths are never negative, so the choice is
    /// the same as summing everything).
    private static func chooseLag(_ mantissas: UnsafeBufferPointer<Int64>) -> Int {
        let count = min(mantissas.count, lagSampleLength)
        guard count > 1, let base = mantissas.baseAddress else { return 1 }
        var bestLag = 0
        var bestCost = 0
        for index in 0..<count { bestCost &+= IntegerColumn.signedWidth(base[index]) }
        // The first mantissa's width plus the first differences before the current lag.
        var warmUp = IntegerColumn.signedWidth(base[0])
        for lag in 1...min(maximumLag, count - 1) {
            var cost = warmUp
            var index = lag
            while index < count, cost < bestCost {
                let end = min(index &+ 16, count)
                while index < end {
                    cost &+= IntegerColumn.signedWidth(base[index] &- base[index &- lag])
                    index &+= 1
                }
            }
            // Ties keep the shorter lag.
            if cost < bestCost {
                bestCost = cost
                bestLag = lag
            }
            warmUp &+= IntegerColumn.signedWidth(base[lag] &- base[lag &- 1])
        }
        return bestLag
    }

    // MARK: Decoding

    /// Decodes the shared section (after its mode byte) into `values`, series `s` filling
    /// `values[starts[s] ..< starts[s + 1]]`.
    static func decode(
        from reader: inout ByteReader, starts: [Int], into values: UnsafeMutableBufferPointer<Double>
    ) throws(CodecError) {
        let seriesCount = starts.count - 1
        let columns = UnsafeMutableBufferPointer<Int64>.allocate(capacity: 4 * seriesCount)
        defer { columns.deallocate() }
        let exponents = UnsafeMutableBufferPointer(rebasing: columns[0..<seriesCount])
        let predictors = UnsafeMutableBufferPointer(rebasing: columns[seriesCount..<2 * seriesCount])
        let shifts = UnsafeMutableBufferPointer(rebasing: columns[2 * seriesCount..<3 * seriesCount])
        let exceptionCounts = UnsafeMutableBufferPointer(rebasing: columns[3 * seriesCount..<4 * seriesCount])
        let exponentsOffset = reader.position
        try IntegerColumn.decode(from: &reader, into: exponents, what: "value exponents")
        let predictorsOffset = reader.position
        try IntegerColumn.decode(from: &reader, into: predictors, what: "value predictors")
        let shiftsOffset = reader.position
        try IntegerColumn.decode(from: &reader, into: shifts, what: "value shifts")
        let countsOffset = reader.position
        try IntegerColumn.decode(from: &reader, into: exceptionCounts, what: "value exception counts")
        var residualCount = 0
        var lowBitCount = 0
        var exceptionTotal = 0
        for series in 0..<seriesCount {
            let count = starts[series + 1] - starts[series]
            let exponent = exponents[series]
            guard exponent >= -Int64(ValueColumn.maximumExponent), exponent <= ownColumn else {
                throw reader.error(.malformed, "series \(series) value exponent is \(exponent), not -18 … 18 or 19 (own column)", at: exponentsOffset)
            }
            let isOwn = exponent == ownColumn
            guard predictors[series] >= 0, predictors[series] <= (isOwn ? 0 : Int64(maximumLag)) else {
                throw reader.error(.malformed, "series \(series) predictor is \(predictors[series]), not 0 … \(maximumLag) (0 for an own column)", at: predictorsOffset)
            }
            guard shifts[series] >= 0, shifts[series] <= (isOwn ? 0 : Int64(maximumShift)) else {
                throw reader.error(.malformed, "series \(series) shift is \(shifts[series]), not 0 … \(maximumShift) (0 for an own column)", at: shiftsOffset)
            }
            guard exceptionCounts[series] >= 0, exceptionCounts[series] <= (isOwn ? 0 : Int64(count)) else {
                throw reader.error(.malformed, "series \(series) has \(exceptionCounts[series]) value exceptions for \(count) values", at: countsOffset)
            }
            if !isOwn {
                residualCount += count
                lowBitCount += count * Int(shifts[series])
            }
            exceptionTotal += Int(exceptionCounts[series])
        }
        // An exception takes at least nine bytes: check before allocating for them.
        guard exceptionTotal <= reader.remaining / 9 else {
            throw reader.error(.truncated, "\(exceptionTotal) value exceptions cannot fit in the \(reader.remaining) bytes left")
        }
        let exceptionSlots = UnsafeMutableBufferPointer<Int>.allocate(capacity: exceptionTotal)
        defer { exceptionSlots.deallocate() }
        let exceptionBits = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: exceptionTotal)
        defer { exceptionBits.deallocate() }
        var exceptionIndex = 0
        for series in 0..<seriesCount where exceptionCounts[series] > 0 {
            let count = starts[series + 1] - starts[series]
            var position = -1
            for _ in 0..<Int(exceptionCounts[series]) {
                let gapOffset = reader.position
                let gap = try reader.readCount("series \(series) value exception position", atMost: count)
                position += gap + 1
                guard position < count else {
                    throw reader.error(.malformed, "series \(series) value exception at \(position) is past its \(count) values", at: gapOffset)
                }
                exceptionSlots[exceptionIndex] = starts[series] + position
                exceptionBits[exceptionIndex] = try reader.readUInt64("series \(series) value exception bits")
                exceptionIndex += 1
            }
        }
        let residuals = UnsafeMutableBufferPointer<Int64>.allocate(capacity: residualCount)
        defer { residuals.deallocate() }
        try IntegerColumn.decode(from: &reader, into: residuals, what: "value residuals")
        // Low bits, read with whole-word loads from a copy padded by eight bytes.
        let lowBytes = try reader.readBytes((lowBitCount + 7) / 8, "value low bits")
        let padded = UnsafeMutableRawBufferPointer.allocate(byteCount: lowBytes.count + 8, alignment: 8)
        defer { padded.deallocate() }
        padded.initializeMemory(as: UInt8.self, repeating: 0)
        if let base = lowBytes.baseAddress, lowBytes.count > 0 {
            padded.baseAddress!.copyMemory(from: base, byteCount: lowBytes.count)
        }
        var bit = 0
        var offset = 0
        for series in 0..<seriesCount where exponents[series] != ownColumn {
            let count = starts[series + 1] - starts[series]
            guard count > 0 else { continue }
            let mantissas = UnsafeMutableBufferPointer(rebasing: residuals[offset..<offset + count])
            let output = UnsafeMutableBufferPointer(rebasing: values[starts[series]..<starts[series + 1]])
            let shift = Int(shifts[series])
            if shift > 0 {
                let mask = BitPacking.mask(shift)
                for index in 0..<count {
                    let word = UInt64(littleEndian: padded.loadUnaligned(fromByteOffset: bit >> 3, as: UInt64.self))
                    let low = (word >> UInt64(bit & 7)) & mask
                    mantissas[index] = mantissas[index] &<< Int64(shift) | Int64(bitPattern: low)
                    bit &+= shift
                }
            }
            reconstruct(mantissas, lag: Int(predictors[series]))
            let exponent = Int(exponents[series])
            if exponent >= 0 {
                let scale = ValueColumn.powersOfTen[exponent]
                for index in 0..<count { output[index] = Double(mantissas[index]) / scale }
            } else {
                let scale = ValueColumn.powersOfTen[-exponent]
                for index in 0..<count { output[index] = Double(mantissas[index]) * scale }
            }
            offset += count
        }
        for index in 0..<exceptionTotal {
            values[exceptionSlots[index]] = Double(bitPattern: exceptionBits[index])
        }
        for series in 0..<seriesCount where exponents[series] == ownColumn {
            let output = UnsafeMutableBufferPointer(rebasing: values[starts[series]..<starts[series + 1]])
            try ValueColumn.decode(from: &reader, into: output, what: "series \(series) values")
        }
    }

    /// Turns residuals into mantissas in place (wrapping sums of the predictions).
    @inline(__always)
    private static func reconstruct(_ mantissas: UnsafeMutableBufferPointer<Int64>, lag: Int) {
        let count = mantissas.count
        guard lag > 0, count > 1 else { return }
        let warmUp = min(lag, count)
        for index in 1..<warmUp { mantissas[index] &+= mantissas[index &- 1] }
        guard lag < count else { return }
        for index in lag..<count { mantissas[index] &+= mantissas[index &- lag] }
    }
}
