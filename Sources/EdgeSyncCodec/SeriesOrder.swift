/// Records which series each reading belongs to, so that decoding restores sequence order after
/// the columns were grouped per series, and finds the rows that let series share one timestamp
/// column.
///
/// Sensor data is usually one series, or rows in which every series appears once in the same
/// order (a pattern), sometimes with a cell missing (a skip), or long runs of one series. Each of
/// those has a compact form; anything else is a bit-packed list.
enum SeriesOrder {
    enum Mode: UInt8 {
        case single = 0
        case pattern = 1
        case runs = 2
        case list = 3
    }

    /// How a batch's readings map to series and, for patterns, to rows.
    struct Layout {
        var mode: Mode
        /// The repeating order of series indices (pattern mode only).
        var pattern: [Int32] = []
        /// Skipped pattern slots as (readings before the skip, slots skipped) (pattern mode only).
        var skips: [(readings: Int, length: Int)] = []
        /// The slot each reading fills; `slot / pattern.count` is its row (pattern mode only).
        var slots: [Int] = []
        var runs: [(series: Int32, length: Int)] = []

        var rowCount: Int { pattern.isEmpty || slots.isEmpty ? 0 : slots[slots.count - 1] / pattern.count + 1 }
    }

    // MARK: Encoding

    /// Chooses the smallest layout. `rowStart`, the first reading whose timestamp differs from the
    /// one before it, aligns pattern rows with timestamp rows when a batch starts mid-row.
    static func plan(_ series: UnsafeBufferPointer<Int32>, seriesCount: Int, rowStart: Int = 0) -> Layout {
        if seriesCount == 1 { return Layout(mode: .single) }
        let count = series.count
        var runs: [(series: Int32, length: Int)] = []
        for value in series {
            if let last = runs.last, last.series == value {
                runs[runs.count - 1].length += 1
            } else {
                runs.append((value, 1))
            }
        }
        let listBits = count * BitPacking.width(of: UInt64(seriesCount - 1))
        let runsBits = runs.count * 24
        let pattern = patternLayout(series, seriesCount: seriesCount, rowStart: rowStart)
        let patternBits = pattern.map { $0.pattern.count * 16 + $0.skips.count * 16 } ?? Int.max
        if let pattern, patternBits <= runsBits, patternBits <= listBits { return pattern }
        if runsBits <= listBits { return Layout(mode: .runs, runs: runs) }
        return Layout(mode: .list)
    }

    /// The pattern is every series in order of first appearance; each reading takes the next slot
    /// of its series, skipping (at most pattern.count - 1) slots of series missing from a row. Nil
    /// when a series repeats within a row so often that skips would cost more than a list.
    private static func patternLayout(_ series: UnsafeBufferPointer<Int32>, seriesCount: Int, rowStart: Int) -> Layout? {
        var position = [Int](repeating: -1, count: seriesCount)
        var pattern: [Int32] = []
        let start = rowStart < series.count ? rowStart : 0
        for index in start..<(start + series.count) {
            let value = series[index % series.count]
            if position[Int(value)] < 0 {
                position[Int(value)] = pattern.count
                pattern.append(value)
            }
        }
        let period = pattern.count
        var slots = [Int](repeating: 0, count: series.count)
        var skips: [(readings: Int, length: Int)] = []
        var slot = position[Int(series[0])]
        let budget = series.count / 2 + 1
        for index in 0..<series.count {
            let wanted = position[Int(series[index])]
            let skipped = (wanted - slot % period + period) % period
            if skipped > 0 {
                skips.append((index, skipped))
                if skips.count > budget { return nil }
                slot += skipped
            }
            slots[index] = slot
            slot += 1
        }
        return Layout(mode: .pattern, pattern: pattern, skips: skips, slots: slots)
    }

    static func encode(_ layout: Layout, series: UnsafeBufferPointer<Int32>, seriesCount: Int, into writer: inout ByteWriter) {
        writer.append(layout.mode.rawValue)
        switch layout.mode {
        case .single:
            break
        case .pattern:
            writer.appendVarint(UInt64(layout.pattern.count))
            for value in layout.pattern { writer.appendVarint(UInt64(value)) }
            writer.appendVarint(UInt64(layout.slots.first ?? 0))
            writer.appendVarint(UInt64(layout.skips.count))
            var previous = 0
            for skip in layout.skips {
                writer.appendVarint(UInt64(skip.readings - previous))
                writer.appendVarint(UInt64(skip.length))
                previous = skip.readings
            }
        case .runs:
            writer.appendVarint(UInt64(layout.runs.count))
            for run in layout.runs {
                writer.appendVarint(UInt64(run.series))
                writer.appendVarint(UInt64(run.length))
            }
        case .list:
            let values = series.map { UInt64($0) }
            values.withUnsafeBufferPointer {
                BitPacking.pack($0, width: BitPacking.width(of: UInt64(seriesCount - 1)), into: &writer)
            }
        }
    }

    // MARK: Decoding

    /// Decodes the series of each of `output.count` readings, validating every index against
    /// `seriesCount`; counts readings per series into `counts`; for pattern mode, writes each
    /// reading's row into `rows` and returns the row count.
    static func decode(
        from reader: inout ByteReader, seriesCount: Int, into output: UnsafeMutableBufferPointer<Int32>,
        rows: UnsafeMutableBufferPointer<Int32>, counts: inout [Int]
    ) throws(CodecError) -> (mode: Mode, rowCount: Int) {
        let count = output.count
        let modeOffset = reader.position
        let rawMode = try reader.readByte("series order mode")
        let maximumIndex = seriesCount - 1
        var rowCount = 0
        let mode = Mode(rawValue: rawMode)
        switch mode {
        case .single:
            guard seriesCount == 1 else {
                throw reader.error(.malformed, "series order 'single' needs exactly one series, the batch has \(seriesCount)", at: modeOffset)
            }
            output.update(repeating: 0)
        case .pattern:
            let period = try reader.readCount("series pattern length", atMost: seriesCount)
            guard period > 0 else { throw reader.error(.malformed, "series pattern is empty") }
            var pattern = [Int32](repeating: 0, count: period)
            for index in 0..<period {
                pattern[index] = Int32(try reader.readCount("series index in the pattern", atMost: maximumIndex))
            }
            let firstSlot = try reader.readCount("series pattern first slot", atMost: period - 1)
            let skipCount = try reader.readCount("series pattern skip count", atMost: count)
            var nextSkip = try readSkip(from: &reader, remaining: skipCount, period: period, count: count, after: 0)
            var skipsLeft = skipCount - (nextSkip == nil ? 0 : 1)
            var slot = firstSlot
            for index in 0..<count {
                if let skip = nextSkip, skip.reading == index {
                    slot += skip.length
                    nextSkip = skipsLeft > 0 ? try readSkip(from: &reader, remaining: skipsLeft, period: period, count: count, after: index) : nil
                    if nextSkip != nil { skipsLeft -= 1 }
                }
                output[index] = pattern[slot % period]
                rows[index] = Int32(slot / period)
                slot += 1
            }
            if nextSkip != nil {
                throw reader.error(.malformed, "series pattern skips past the last reading")
            }
            rowCount = count == 0 ? 0 : Int(rows[count - 1]) + 1
        case .runs:
            let runCount = try reader.readCount("series order run count", atMost: count)
            var filled = 0
            for _ in 0..<runCount {
                let value = Int32(try reader.readCount("series index of a run", atMost: maximumIndex))
                let lengthOffset = reader.position
                let length = try reader.readCount("series run length", atMost: count - filled)
                guard length > 0 else { throw reader.error(.malformed, "series run length is 0", at: lengthOffset) }
                for index in filled..<filled + length { output[index] = value }
                filled += length
            }
            guard filled == count else {
                throw reader.error(.malformed, "series runs cover \(filled) readings, the batch has \(count)")
            }
        case .list:
            let width = BitPacking.width(of: UInt64(maximumIndex))
            let listOffset = reader.position
            let packed = try reader.readBytes(BitPacking.byteCount(count: count, width: width), "series list")
            let values = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: count)
            defer { values.deallocate() }
            BitPacking.unpack(packed, width: width, into: values)
            for index in 0..<count {
                guard values[index] <= UInt64(maximumIndex) else {
                    throw reader.error(.malformed, "series list entry \(index) is \(values[index]), the batch has \(seriesCount) series", at: listOffset)
                }
                output[index] = Int32(values[index])
            }
        case nil:
            throw reader.error(.malformed, "series order mode is \(rawMode), only 0...3 are defined", at: modeOffset)
        }
        for value in output { counts[Int(value)] += 1 }
        return (mode ?? .list, rowCount)
    }

    /// Reads one skip: readings since the previous skip, then 1...period-1 slots skipped.
    private static func readSkip(
        from reader: inout ByteReader, remaining: Int, period: Int, count: Int, after previous: Int
    ) throws(CodecError) -> (reading: Int, length: Int)? {
        guard remaining > 0 else { return nil }
        let gapOffset = reader.position
        let gap = try reader.readCount("series pattern skip position", atMost: count)
        let reading = previous + gap
        guard reading < count, gap > 0 || previous == 0 else {
            throw reader.error(.malformed, "series pattern skip at reading \(reading) is out of order or past the batch", at: gapOffset)
        }
        let lengthOffset = reader.position
        let length = try reader.readCount("series pattern skip length", atMost: period - 1)
        guard length > 0 else { throw reader.error(.malformed, "series pattern skip length is 0", at: lengthOffset) }
        return (reading, length)
    }
}
