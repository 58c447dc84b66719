import EdgeSyncCodec

/// Parses CSV in "wide" form: a header row, then one row per instant.
///
/// - The first non-blank line is the header. Exactly one column is named `time` or `timestamp`
///   (any case); every other column is a series whose key is the header cell as written.
/// - The time cell is integer nanoseconds since the epoch or an RFC 3339 time
///   (`2024-05-01T12:00:00Z`, `2024-05-01 12:00:00.250+02:00`; no zone means UTC).
/// - A value cell is a finite decimal number, or empty for "no reading of that series at this time".
/// - Cells are separated by `,` and trimmed of spaces; quoted cells are not supported (an error).
///   Every row has as many cells as the header. `#` comment lines and blank lines are skipped.
package struct CSVParser: Sendable {
    private var header: [String]?
    private var timeColumn = 0

    package init() {}

    /// The same, appending to a plain array (tests and small callers).
    package mutating func parse(
        _ line: ArraySlice<UInt8>,
        lineNumber: Int,
        into readings: inout [IncomingReading]
    ) throws(InputError) {
        var block = ReadingBlock()
        try parse(line, lineNumber: lineNumber, into: &block)
        readings.append(contentsOf: block.incomingReadings)
    }

    /// Appends the readings of `line` to `block` (or reads it as the header), or throws and appends nothing.
    package mutating func parse(
        _ line: ArraySlice<UInt8>,
        lineNumber: Int,
        into block: inout ReadingBlock
    ) throws(InputError) {
        var cursor = Cursor(bytes: line, lineNumber: lineNumber)
        cursor.trimTrailingWhitespace()
        cursor.skipSpaces()
        if cursor.isAtEnd || cursor.peek == UInt8(ascii: "#") { return }
        try cursor.requireUTF8()
        if line.contains(.quote) { throw InputError(line: lineNumber, "quoted cells are not supported") }
        let cells = line[cursor.index..<cursor.end].split(separator: .comma, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self).trimmingSpaces()
        }
        guard let header else {
            try readHeader(cells, lineNumber: lineNumber)
            return
        }
        guard cells.count == header.count else {
            throw InputError(line: lineNumber, "expected \(header.count) cells like the header, found \(cells.count)")
        }
        guard let timestamp = RFC3339.nanoseconds(cells[timeColumn]) else {
            throw InputError(
                line: lineNumber,
                "column \"\(header[timeColumn])\": expected integer nanoseconds or an RFC 3339 time, found \"\(cells[timeColumn].prefix(80))\""
            )
        }
        var parsed: [IncomingReading] = []
        for (column, cell) in cells.enumerated() where column != timeColumn && !cell.isEmpty {
            guard let value = Cursor.decimal(cell) else {
                throw InputError(
                    line: lineNumber, "column \"\(header[column])\": expected a number, found \"\(cell.prefix(80))\"")
            }
            parsed.append(IncomingReading(seriesKey: header[column], timestamp: timestamp, value: value))
        }
        block.append(contentsOf: parsed)
    }

    private mutating func readHeader(_ cells: [String], lineNumber: Int) throws(InputError) {
        let timeColumns = cells.indices.filter { ["time", "timestamp"].contains(cells[$0].lowercased()) }
        guard timeColumns.count == 1 else {
            throw InputError(
                line: lineNumber,
                "the header needs exactly one column named \"time\" or \"timestamp\", found \(timeColumns.count)")
        }
        var seen = Set<ExactString>()
        for (column, name) in cells.enumerated() where column != timeColumns[0] {
            guard !name.isEmpty, name.utf8.count <= DecodingLimits.default.maximumSeriesKeyBytes else {
                throw InputError(line: lineNumber, "header column \(column + 1): a series name must be 1...1024 bytes")
            }
            guard seen.insert(ExactString(name)).inserted else {
                throw InputError(line: lineNumber, "header column \"\(name)\" appears twice")
            }
        }
        header = cells
        timeColumn = timeColumns[0]
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var slice = Substring(self)
        while slice.first == " " || slice.first == "\t" { slice.removeFirst() }
        while slice.last == " " || slice.last == "\t" { slice.removeLast() }
        return String(slice)
    }
}

/// Integer nanoseconds or RFC 3339 times, without Foundation's formatters.
package enum RFC3339 {
    package static func nanoseconds(_ text: String) -> Int64? {
        if let integer = Int64(text) { return integer }
        let bytes = Array(text.utf8)
        guard bytes.count >= 19 else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                guard index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 else { return nil }
                value = value * 10 + Int64(bytes[index] - 48)
            }
            return value
        }
        guard bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: " ") || bytes[10] == UInt8(ascii: "t"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction: Int64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                if digits < 9 { fraction = fraction * 10 + Int64(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 9) { fraction *= 10 }
        }
        var offsetSeconds: Int64 = 0
        if index < bytes.count {
            if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                guard index + 6 == bytes.count, bytes[index + 3] == UInt8(ascii: ":"),
                    let hours = number(index + 1..<index + 3), let minutes = number(index + 4..<index + 6)
                else { return nil }
                offsetSeconds = (hours * 60 + minutes) * 60 * (bytes[index] == UInt8(ascii: "-") ? -1 : 1)
                index += 6
            }
        }
        guard index == bytes.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = ((days * 24 + hour) * 60 + minute) * 60 + second - offsetSeconds
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return nil }
        return scaled.addingReportingOverflow(fraction).overflow ? nil : scaled + fraction
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar (the civil-from-days inverse).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
