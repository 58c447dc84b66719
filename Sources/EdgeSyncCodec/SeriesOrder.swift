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
        /// Version 3: a pattern whose rows each hold a subset of it, each row's subset given as the
        /// runs of pattern slots that change from the row before (series that join or leave).
        case rows = 4
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
        /// Rows mode: per row, how many toggle runs it has; then every run as (gap, length).
        var toggleCounts: [Int] = []
        var toggles: [(gap: Int, length: Int)] = []

        var rowCount: Int { pattern.isEmpty || slots.isEmpty ? 0 : slots[slots.count - 1] / pattern.count + 1 }
    }

    // MARK: Encoding

    /// Chooses the smallest layout. `rowStart`, the first reading whose timestamp differs from the
    /// one before it, aligns pattern rows with timestamp rows when a batch starts mid-row.
    /// `timestamps` (version 3 only) allows the rows mode, whose rows also break where the time changes.
    static func plan(
        _ series: UnsafeBufferPointer<Int32>, seriesCount: Int, rowStart: Int = 0, timestamps: [Int64]? = nil
    ) -> Layout {
        if seriesCount == 1 { return Layout(mode: .single) }
        let count = series.count
        // Only the number of runs until the runs mode wins.
        var runCount = 0
        for index in 0..<count where index == 0 || series[index] != series[index - 1] { runCount += 1 }
        let listBits = count * BitPacking.width(of: UInt64(seriesCount - 1))
        let runsBits = runCount * 24
        let pattern = patternLayout(series, seriesCount: seriesCount, rowStart: rowStart)
        let patternBits = pattern.map { $0.pattern.count * 16 + $0.skips.count * 16 } ?? Int.max
        if let timestamps, let rows = rowsLayout(series, timestamps: timestamps, seriesCount: seriesCount, rowStart: rowStart) {
            let rowsBits = rows.pattern.count * 2 + rows.toggleCounts.count * 8 + rows.toggles.count * 24
            if rowsBits <= min(patternBits, runsBits, listBits) { return rows }
        }
        if let pattern, patternBits <= runsBits, patternBits <= listBits { return pattern }
        if runsBits <= listBits { return Layout(mode: .runs, runs: runs(series)) }
        return Layout(mode: .list)
    }

    /// Consecutive readings of one series, as (series, how many).
    private static func runs(_ series: UnsafeBufferPointer<Int32>) -> [(series: Int32, length: Int)] {
        var runs: [(series: Int32, length: Int)] = []
        for value in series {
            if let last = runs.last, last.series == value {
                runs[runs.count - 1].length += 1
            } else {
                runs.append((value, 1))
            }
        }
        return runs
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

    /// Rows: the pattern is every series in order of first appearance from `rowStart` on (as for
    /// the pattern mode); a row ends where a reading's slot is not after the one before it, or
    /// where the time changes. Nil when toggles would outnumber readings.
    private static func rowsLayout(
        _ series: UnsafeBufferPointer<Int32>, timestamps: [Int64], seriesCount: Int, rowStart: Int
    ) -> Layout? {
        var position = [Int](repeating: -1, count: seriesCount)
        var pattern: [Int32] = []
        let count = series.count
        let start = rowStart < count ? rowStart : 0
        for index in start..<(start + count) {
            let value = series[index % count]
            if position[Int(value)] < 0 {
                position[Int(value)] = pattern.count
                pattern.append(value)
            }
        }
        let period = pattern.count
        var slots = [Int](repeating: 0, count: count)
        // The slots present in the row before, ascending (all of them before the first row).
        var present = Array(0..<period)
        var toggleCounts: [Int] = []
        var toggles: [(gap: Int, length: Int)] = []
        let fits = slots.withUnsafeMutableBufferPointer { slots in
            var rowIndex = 0
            var rowBegin = 0
            for index in 0..<count {
                let slot = position[Int(series[index])]
                if index > rowBegin, slot <= slots[index - 1] - rowIndex * period || timestamps[index] != timestamps[index - 1] {
                    closeRow(
                        UnsafeBufferPointer(rebasing: slots[rowBegin..<index]), offset: rowIndex * period, present: &present,
                        toggles: &toggles, toggleCounts: &toggleCounts)
                    if toggles.count > count { return false }
                    rowIndex += 1
                    rowBegin = index
                }
                slots[index] = rowIndex * period + slot
            }
            closeRow(
                UnsafeBufferPointer(rebasing: slots[rowBegin..<count]), offset: rowIndex * period, present: &present,
                toggles: &toggles, toggleCounts: &toggleCounts)
            return true
        }
        guard fits else { return nil }
        return Layout(mode: .rows, pattern: pattern, slots: slots, toggleCounts: toggleCounts, toggles: toggles)
    }

    /// Closes one row of the rows mode (`row`: its readings' slots, `offset` the row's first slot):
    /// appends the runs of pattern slots whose membership changes from `present`, then makes the
    /// row the present one. A row's slots ascend (a row ends where they stop rising) and so does
    /// `present`, so the changing slots are the merge of the two less what both hold: the work
    /// follows the readings, not the pattern length times the rows.
    private static func closeRow(
        _ row: UnsafeBufferPointer<Int>, offset: Int, present: inout [Int], toggles: inout [(gap: Int, length: Int)],
        toggleCounts: inout [Int]
    ) {
        var runs = 0
        var previousEnd = 0
        var runStart = -1
        var runEnd = -1
        var before = 0
        var reading = 0
        while before < present.count || reading < row.count {
            let old = before < present.count ? present[before] : Int.max
            let new = reading < row.count ? row[reading] - offset : Int.max
            let changed: Int
            if old == new {
                before += 1
                reading += 1
                continue
            } else if old < new {
                changed = old
                before += 1
            } else {
                changed = new
                reading += 1
            }
            if changed == runEnd {
                runEnd += 1
                continue
            }
            if runStart >= 0 {
                toggles.append((runStart - previousEnd, runEnd - runStart))
                previousEnd = runEnd
                runs += 1
            }
            runStart = changed
            runEnd = changed + 1
        }
        if runStart >= 0 {
            toggles.append((runStart - previousEnd, runEnd - runStart))
            runs += 1
        }
        toggleCounts.append(runs)
        present.removeAll(keepingCapacity: true)
        for slot in row { present.append(slot - offset) }
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
        case .rows:
            // The pattern as an integer column: series in key order cost almost nothing.
            writer.appendVarint(UInt64(layout.pattern.count))
            layout.pattern.map { Int64($0) }.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }
            writer.appendVarint(UInt64(layout.toggleCounts.count))
            var next = 0
            for runs in layout.toggleCounts {
                writer.appendVarint(UInt64(runs))
                for toggle in layout.toggles[next..<next + runs] {
                    writer.appendVarint(UInt64(toggle.gap))
                    writer.appendVarint(UInt64(toggle.length - 1))
                }
                next += runs
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
        rows: UnsafeMutableBufferPointer<Int32>, counts: inout [Int], version: FormatVersion = .v2
    ) throws(CodecError) -> (mode: Mode, rowCount: Int) {
        let count = output.count
        let modeOffset = reader.position
        let rawMode = try reader.readByte("series order mode")
        let maximumIndex = seriesCount - 1
        var rowCount = 0
        var mode = Mode(rawValue: rawMode)
        if mode == .rows && version == .v2 { mode = nil }
        switch mode {
        case .rows:
            rowCount = try decodeRows(from: &reader, seriesCount: seriesCount, into: output, rows: rows)
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
            throw reader.error(
                .malformed, "series order mode is \(rawMode), only 0...\(version == .v2 ? 3 : 4) are defined in version \(version.rawValue)",
                at: modeOffset)
        }
        for value in output { counts[Int(value)] += 1 }
        return (mode ?? .list, rowCount)
    }

    /// The rows mode: the pattern (distinct series), the row count, then per row its toggle runs.
    /// The present slots are kept as a sorted list and each row's runs merged into it, so the work
    /// is bounded by the readings and the bytes read, however large the pattern.
    private static func decodeRows(
        from reader: inout ByteReader, seriesCount: Int, into output: UnsafeMutableBufferPointer<Int32>,
        rows: UnsafeMutableBufferPointer<Int32>
    ) throws(CodecError) -> Int {
        let count = output.count
        let period = try reader.readCount("series rows pattern length", atMost: min(seriesCount, count))
        guard period > 0 else { throw reader.error(.malformed, "series rows pattern is empty") }
        // At most K and N, both already checked against the limits.
        let patternOffset = reader.position
        let entries = UnsafeMutableBufferPointer<Int64>.allocate(capacity: period)
        defer { entries.deallocate() }
        try IntegerColumn.decode(from: &reader, into: entries, what: "series rows pattern")
        var pattern = [Int32](repeating: 0, count: period)
        var used = [Bool](repeating: false, count: seriesCount)
        for index in 0..<period {
            let value = entries[index]
            guard value >= 0, value < Int64(seriesCount), !used[Int(value)] else {
                throw reader.error(
                    .malformed, "series rows pattern entry \(index) is \(value): not a series of \(seriesCount), or a repeat", at: patternOffset)
            }
            used[Int(value)] = true
            pattern[index] = Int32(value)
        }
        let rowCount = try reader.readCount("series row count", atMost: count)
        guard rowCount > 0 else { throw reader.error(.malformed, "series rows: no rows for \(count) readings") }
        // Present slots, ascending; all present before the first row.
        var present = [Int32](unsafeUninitializedCapacity: period) { buffer, initialized in
            for slot in 0..<period { buffer[slot] = Int32(slot) }
            initialized = period
        }
        var next: [Int32] = []
        next.reserveCapacity(period)
        var filled = 0
        for row in 0..<rowCount {
            let runCount = try reader.readCount("series row \(row) toggle count", atMost: period)
            next.removeAll(keepingCapacity: true)
            var cursor = 0
            var runEnd = 0
            for _ in 0..<runCount {
                let offset = reader.position
                let gap = try reader.readCount("series row \(row) toggle gap", atMost: period)
                let length = try reader.readCount("series row \(row) toggle length", atMost: period - 1) + 1
                let runStart = runEnd + gap
                guard runStart <= period - length else {
                    throw reader.error(.malformed, "series row \(row) toggles slots past the pattern of \(period)", at: offset)
                }
                // Slots before the run keep their membership; slots in it flip.
                while cursor < present.count, present[cursor] < Int32(runStart) {
                    next.append(present[cursor])
                    cursor += 1
                }
                for slot in Int32(runStart)..<Int32(runStart + length) {
                    if cursor < present.count, present[cursor] == slot {
                        cursor += 1
                    } else {
                        next.append(slot)
                    }
                }
                runEnd = runStart + length
            }
            while cursor < present.count {
                next.append(present[cursor])
                cursor += 1
            }
            swap(&present, &next)
            guard !present.isEmpty else { throw reader.error(.malformed, "series row \(row) holds no readings") }
            guard present.count <= count - filled else {
                throw reader.error(.malformed, "series rows hold more than the batch's \(count) readings")
            }
            for slot in present {
                output[filled] = pattern[Int(slot)]
                rows[filled] = Int32(row)
                filled += 1
            }
        }
        guard filled == count else {
            throw reader.error(.malformed, "series rows hold \(filled) readings, the batch has \(count)")
        }
        return rowCount
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
