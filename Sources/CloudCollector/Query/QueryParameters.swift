import HTTPCore

/// The decoded query string of a request, checked strictly: a parameter the endpoint does not know,
/// a parameter given twice or a malformed escape is a 400 naming it, never silently ignored.
package struct QueryParameters: Sendable {
    private var values: [String: String] = [:]

    /// Decodes `query` (`a=1&b=x%20y`, `+` for space) and checks every name against `allowed`.
    package init(_ query: String?, allowed: Set<String>) throws(CollectorError) {
        guard let query, !query.isEmpty else { return }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try Self.decode(parts[0], what: "parameter name")
            let value = parts.count > 1 ? try Self.decode(parts[1], what: "parameter \"\(name)\"") : ""
            guard allowed.contains(name) else {
                throw CollectorError(
                    .badRequest, "unknown_parameter",
                    "unknown parameter \"\(name)\"; this endpoint takes \(allowed.sorted().joined(separator: ", "))")
            }
            guard values[name] == nil else {
                throw CollectorError(.badRequest, "duplicate_parameter", "parameter \"\(name)\" is given twice")
            }
            values[name] = value
        }
    }

    package subscript(name: String) -> String? { values[name] }

    /// A parameter that must be present and non-empty.
    package func required(_ name: String) throws(CollectorError) -> String {
        guard let value = values[name], !value.isEmpty else {
            throw CollectorError(.badRequest, "missing_parameter", "parameter \"\(name)\" is required")
        }
        return value
    }

    /// An integer parameter in `range`, or `default` when absent.
    package func integer(_ name: String, default defaultValue: Int, in range: ClosedRange<Int>) throws(CollectorError)
        -> Int
    {
        guard let text = values[name] else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            throw CollectorError(
                .badRequest, "invalid_parameter",
                "parameter \"\(name)\" must be an integer in \(range.lowerBound)...\(range.upperBound), not \"\(text.clipped)\""
            )
        }
        return value
    }

    /// A point in time: an integer count of nanoseconds since the epoch or an RFC 3339 timestamp.
    package func timestamp(_ name: String) throws(CollectorError) -> Int64? {
        guard let text = values[name] else { return nil }
        guard let value = Timestamp.parse(text) else {
            throw CollectorError(
                .badRequest, "invalid_parameter",
                "parameter \"\(name)\" must be nanoseconds since the epoch or an RFC 3339 timestamp"
                    + " (2026-11-24T19:44:08.5Z), not \"\(text.clipped)\"")
        }
        return value
    }

    private static func decode(_ text: Substring, what: String) throws(CollectorError) -> String {
        do {
            return try HTTPQueryParameters.decodeComponent(text.utf8)
        } catch {
            switch error {
            case .malformedEscape:
                throw CollectorError(.badRequest, "malformed_query", "\(what): a % must be followed by two hex digits")
            case .notUTF8:
                throw CollectorError(.badRequest, "malformed_query", "\(what) is not valid UTF-8")
            }
        }
    }
}

extension String {
    /// At most 80 characters of a client's text, for echoing it in an error message.
    var clipped: String { count > 80 ? String(prefix(80)) + "…" : self }
}

/// Timestamps as the query API reads them: nanoseconds since the Unix epoch, exact.
package enum Timestamp {
    /// `1700000000000000000` (integer nanoseconds, may be negative) or RFC 3339:
    /// `2023-11-14T22:13:20Z`, `2023-11-14T22:13:20.123456789+01:00` (fractions to nanoseconds;
    /// `t`/`z` and a space instead of `T` are accepted too). `nil` when the text is neither or the
    /// instant does not fit in 64-bit nanoseconds (years 1678–2262).
    package static func parse(_ text: String) -> Int64? {
        if let value = Int64(text) { return value }
        let bytes = Array(text.utf8)
        var index = 0
        func digits(_ count: Int) -> Int64? {
            guard index + count <= bytes.count else { return nil }
            var value: Int64 = 0
            for _ in 0..<count {
                let byte = bytes[index]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
                index += 1
            }
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = digits(4), expect("-"), let month = digits(2), expect("-"), let day = digits(2),
            expect("Tt "), let hour = digits(2), expect(":"), let minute = digits(2), expect(":"),
            let second = digits(2)
        else { return nil }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day), hour < 24, minute < 60,
            second < 60
        else { return nil }
        var nanoseconds: Int64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale: Int64 = 100_000_000
            let start = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                guard index - start < 9 else { return nil }
                nanoseconds += Int64(bytes[index] - UInt8(ascii: "0")) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offsetSeconds: Int64 = 0
        if expect("Zz") {
        } else if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign: Int64 = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            guard let hours = digits(2), expect(":"), let minutes = digits(2), hours < 24, minutes < 60 else {
                return nil
            }
            offsetSeconds = sign * (hours * 3600 + minutes * 60)
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        let seconds =
            daysSinceEpoch(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
            - offsetSeconds
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return nil }
        let (total, overflowAdding) = scaled.addingReportingOverflow(nanoseconds)
        return overflowAdding ? nil : total
    }

    private static func isLeap(_ year: Int64) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to the given proleptic Gregorian date.
    static func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
        // Count from March so the leap day ends the year; eras are 400-year cycles of 146,097 days.
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let monthFromMarch = (month + 9) % 12
        let dayOfYear = (153 * monthFromMarch + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
