import EdgeSyncCodec
import EdgeSyncProtocol
import Glibc

/// The unit of line protocol timestamps (InfluxDB's `precision` parameter).
package enum TimestampPrecision: String, Sendable, CaseIterable {
    case nanoseconds = "ns"
    case microseconds = "us"
    case milliseconds = "ms"
    case seconds = "s"
    case minutes = "m"
    case hours = "h"

    /// InfluxDB's spellings: 1.x uses `n`, `u`, `ms`, `s`, `m`, `h`; 2.x uses `ns`, `us`, `ms`, `s`.
    package init?(influxName: String) {
        switch influxName {
        case "n", "ns": self = .nanoseconds
        case "u", "us", "µ", "µs": self = .microseconds
        case "ms": self = .milliseconds
        case "s": self = .seconds
        case "m": self = .minutes
        case "h": self = .hours
        default: return nil
        }
    }

    package var nanosecondsPerUnit: Int64 {
        switch self {
        case .nanoseconds: 1
        case .microseconds: 1_000
        case .milliseconds: 1_000_000
        case .seconds: 1_000_000_000
        case .minutes: 60_000_000_000
        case .hours: 3_600_000_000_000
        }
    }
}

/// Parses InfluxDB line protocol into readings.
///
/// `measurement[,tag=value…] field=value[,field=value…] [timestamp]`. Every field becomes one
/// reading of the series `LineProtocolSeriesKey.make(measurement, tags, field)`; see
/// `Docs/edge-agent.md`.
///
/// - Values: floats (`1`, `-2.5`, `3e4`), integers `12i` (64-bit signed) and unsigned `12u` (64-bit
///   unsigned), booleans `t`/`true`/`T`/`True`/`TRUE` (1) and `f`/`false`/… (0). A reading is a
///   Double: integers it cannot hold exactly (beyond ±2^53, and not a multiple of a power of two
///   that fits) are rounded to the nearest Double and counted in `roundedIntegers`; integers beyond
///   64 bits are an error. String fields (`"…"`, with `\"` and `\\` escapes) are skipped and counted
///   in `skippedStringFields`: the spool holds numbers; the line's other fields are stored. NaN and
///   infinities are not line protocol.
/// - Timestamp: an integer in `precision` units since the epoch; when absent, the default
///   (the time of arrival).
/// - Escapes: a backslash before `,`, `=`, space or backslash stands for that character; before
///   anything else it is a literal backslash.
/// - Blank lines and lines starting with `#` are skipped. A line is parsed whole or not at all.
///
/// Speed: the raw bytes of each series section and field key are interned, so a series seen before
/// costs one hash and one compare, no string; the canonical key is built only the first time. The
/// cache is bounded (`SeriesInterner`) and a parser is meant to be reused across requests.
package struct LineProtocolParser: Sendable {
    /// Lines longer than this are refused.
    package static let maximumLineBytes = 64 * 1024

    package var precision: TimestampPrecision
    /// String fields left out of lines that were stored, since the caller last reset it.
    package var skippedStringFields = 0
    /// Integer fields stored as the nearest Double because a Double cannot hold them exactly.
    package var roundedIntegers = 0
    private var interner = SeriesInterner()
    private var fields: [Field] = []

    private struct Field {
        var keyStart: Int
        var keyEnd: Int
        var value: Double
        var id: Int32 = 0
    }

    package init(precision: TimestampPrecision = .nanoseconds) {
        self.precision = precision
    }

    /// Appends the readings of `line` (without its newline) to `block`, or throws and appends nothing.
    package mutating func parse(
        _ line: ArraySlice<UInt8>,
        lineNumber: Int,
        defaultTimestamp: @autoclosure () -> Int64,
        into block: inout ReadingBlock
    ) throws(InputError) {
        let result = line.withUnsafeBufferPointer { buffer in
            Result { () throws(InputError) in
                try parseLine(buffer, lineNumber: lineNumber, defaultTimestamp: defaultTimestamp, into: &block)
            }
        }
        try result.get()
    }

    /// The same, appending to a plain array (tests and small callers).
    package mutating func parse(
        _ line: ArraySlice<UInt8>,
        lineNumber: Int,
        defaultTimestamp: @autoclosure () -> Int64,
        into readings: inout [IncomingReading]
    ) throws(InputError) {
        var block = ReadingBlock()
        try parse(line, lineNumber: lineNumber, defaultTimestamp: defaultTimestamp(), into: &block)
        readings.append(contentsOf: block.incomingReadings)
    }

    /// Parses every newline-separated line of `text` (a request body), counting lines from
    /// `firstLineNumber`. Throws at the first bad line; the caller discards `block` then, so a body
    /// is taken whole or not at all. Returns the number of lines. Stops with an error marked
    /// `isLimitExceeded` as soon as `block` holds more than `maximumReadings`, before parsing the rest.
    @discardableResult
    package mutating func parseLines(
        _ text: UnsafeBufferPointer<UInt8>,
        firstLineNumber: Int = 1,
        defaultTimestamp: Int64,
        maximumReadings: Int = .max,
        into block: inout ReadingBlock
    ) throws(InputError) -> Int {
        var failures: BadLines? = nil
        return try parseLines(
            text, firstLineNumber: firstLineNumber, defaultTimestamp: defaultTimestamp,
            maximumReadings: maximumReadings, into: &block, badLines: &failures)
    }

    /// The same, but a bad line is skipped and recorded in `badLines` (InfluxDB's partial write: the
    /// good lines are stored, the answer names the first bad one). Only the limit still throws.
    @discardableResult
    package mutating func parseLines(
        _ text: UnsafeBufferPointer<UInt8>,
        firstLineNumber: Int = 1,
        defaultTimestamp: Int64,
        maximumReadings: Int = .max,
        into block: inout ReadingBlock,
        skippingBadLines badLines: inout BadLines
    ) throws(InputError) -> Int {
        var failures: BadLines? = badLines
        defer { badLines = failures ?? badLines }
        return try parseLines(
            text, firstLineNumber: firstLineNumber, defaultTimestamp: defaultTimestamp,
            maximumReadings: maximumReadings, into: &block, badLines: &failures)
    }

    /// `badLines` nil: throw at the first bad line; otherwise record it there and go on.
    private mutating func parseLines(
        _ text: UnsafeBufferPointer<UInt8>,
        firstLineNumber: Int,
        defaultTimestamp: Int64,
        maximumReadings: Int,
        into block: inout ReadingBlock,
        badLines: inout BadLines?
    ) throws(InputError) -> Int {
        var lineNumber = firstLineNumber
        var start = 0
        while start < text.count {
            let end = Self.lineEnd(text, from: start)
            do throws(InputError) {
                guard end - start <= Self.maximumLineBytes else {
                    throw InputError(line: lineNumber, "the line is longer than \(Self.maximumLineBytes) bytes")
                }
                try parseLine(
                    UnsafeBufferPointer(rebasing: text[start..<end]), lineNumber: lineNumber,
                    defaultTimestamp: { defaultTimestamp }, into: &block)
            } catch {
                guard badLines != nil else { throw error }
                badLines?.record(error, line: UnsafeBufferPointer(rebasing: text[start..<end]))
            }
            guard block.count <= maximumReadings else {
                throw InputError(
                    line: lineNumber, "more than \(maximumReadings) readings in one request; split it",
                    isLimitExceeded: true)
            }
            lineNumber += 1
            start = end + 1
        }
        return lineNumber - firstLineNumber
    }

    /// Where the line starting at `start` ends: the next newline that is not inside a string field
    /// value (InfluxDB lets a quoted string hold a raw newline). A quote that never closes does not
    /// swallow the lines after it: the line then ends at the first newline, and fails to parse.
    static func lineEnd(_ text: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        guard let base = text.baseAddress else { return start }
        let newline =
            memchr(base + start, 0x0A, text.count - start).map { UnsafeRawPointer(base).distance(to: $0) } ?? text.count
        guard memchr(base + start, Int32(UInt8.quote), newline - start) != nil else { return newline }
        var index = start
        while index < text.count, text[index] == .space || text[index] == .tab { index += 1 }
        if index < text.count, text[index] == UInt8(ascii: "#") { return newline }
        // Quotes in the series section are plain bytes; strings start in the fields.
        while index < newline, text[index] != .space { index += text[index] == .backslash ? 2 : 1 }
        var quoted = false
        while index < text.count {
            let byte = text[index]
            if quoted, byte == .backslash {
                index += 2
                continue
            }
            if byte == .quote {
                quoted.toggle()
            } else if byte == 0x0A, !quoted {
                return index
            }
            index += 1
        }
        return quoted ? newline : text.count
    }

    private mutating func parseLine(
        _ bytes: UnsafeBufferPointer<UInt8>,
        lineNumber: Int,
        defaultTimestamp: () -> Int64,
        into block: inout ReadingBlock
    ) throws(InputError) {
        func failure(_ index: Int, _ reason: String) -> InputError {
            // Binary junk is better named as such than by the first delimiter it lacks.
            guard String(validating: bytes, as: UTF8.self) != nil else {
                return InputError(line: lineNumber, "the line is not valid UTF-8")
            }
            return InputError(line: lineNumber, column: index + 1, reason)
        }
        var start = 0
        var end = bytes.count
        while end > start, bytes[end - 1] == .space || bytes[end - 1] == .tab || bytes[end - 1] == .carriageReturn {
            end -= 1
        }
        while start < end, bytes[start] == .space || bytes[start] == .tab { start += 1 }
        if start == end || bytes[start] == UInt8(ascii: "#") { return }

        // The series section ends at the first unescaped space.
        var seriesEnd = start
        while seriesEnd < end, bytes[seriesEnd] != .space {
            seriesEnd += bytes[seriesEnd] == .backslash ? 2 : 1
        }
        guard seriesEnd < end else { throw failure(end, "expected a space and fields after the series") }
        var index = seriesEnd
        while index < end, bytes[index] == .space { index += 1 }

        fields.removeAll(keepingCapacity: true)
        var strings = 0
        var rounded = 0
        while true {
            let keyStart = index
            while index < end {
                let byte = bytes[index]
                if byte == .backslash {
                    index += 2
                    continue
                }
                if byte == .equals || byte == .comma || byte == .space { break }
                index += 1
            }
            index = min(index, end)
            let keyEnd = index
            guard keyEnd > keyStart else { throw failure(keyStart, "field key is empty") }
            guard index < end, bytes[index] == .equals else {
                throw failure(index, "field \"\(Self.text(bytes, keyStart, keyEnd))\": expected '=' after the field key")
            }
            index += 1
            let valueStart = index
            if index < end, bytes[index] == .quote {
                // A string: skipped (the spool stores numbers), but it must still be well formed.
                index += 1
                var closed = false
                while index < end {
                    if bytes[index] == .backslash {
                        index += 2
                        continue
                    }
                    index += 1
                    if bytes[index - 1] == .quote {
                        closed = true
                        break
                    }
                }
                guard closed else {
                    let key = Self.text(bytes, keyStart, keyEnd)
                    throw failure(valueStart, "field \"\(key)\": the string value has no closing quote")
                }
                guard index == end || bytes[index] == .comma || bytes[index] == .space else {
                    let key = Self.text(bytes, keyStart, keyEnd)
                    throw failure(index, "field \"\(key)\": unexpected text after the string value")
                }
                strings += 1
                guard index < end, bytes[index] == .comma else { break }
                index += 1
                continue
            }
            while index < end, bytes[index] != .comma, bytes[index] != .space { index += 1 }
            let value: Double
            switch LineProtocolNumber.parse(bytes, valueStart, index) {
            case .value(let parsed):
                value = parsed
            case .rounded(let parsed):
                value = parsed
                rounded += 1
            case .invalid:
                throw failure(
                    valueStart,
                    "field \"\(Self.text(bytes, keyStart, keyEnd))\": expected a number, found \"\(Self.text(bytes, valueStart, min(index, valueStart + 80)))\""
                )
            case .integerOutOfRange:
                throw failure(
                    valueStart,
                    "field \"\(Self.text(bytes, keyStart, keyEnd))\": the integer \(Self.text(bytes, valueStart, min(index, valueStart + 80))) is out of the 64-bit range"
                )
            }
            fields.append(Field(keyStart: keyStart, keyEnd: keyEnd, value: value))
            guard index < end, bytes[index] == .comma else { break }
            index += 1
        }

        let timestamp: Int64
        if index >= end {
            timestamp = defaultTimestamp()
        } else {
            while index < end, bytes[index] == .space { index += 1 }
            let timestampStart = index
            while index < end, bytes[index] != .space { index += 1 }
            guard let raw = LineProtocolNumber.integer(bytes, timestampStart, index) else {
                throw failure(
                    timestampStart,
                    "timestamp: expected an integer (\(precision.rawValue) since the epoch), found \"\(Self.text(bytes, timestampStart, min(index, timestampStart + 80)))\""
                )
            }
            guard index == end else { throw failure(index, "unexpected text after the timestamp") }
            let (scaled, overflow) = raw.multipliedReportingOverflow(by: precision.nanosecondsPerUnit)
            guard !overflow else {
                throw failure(timestampStart, "timestamp: \(raw) \(precision.rawValue) is outside the range of 64-bit nanoseconds")
            }
            timestamp = scaled
        }

        if interner.isFull { interner.reset() }
        let series = UnsafeBufferPointer(rebasing: bytes[start..<seriesEnd])
        let seriesHash = SeriesInterner.hash(UnsafeRawBufferPointer(series), seed: interner.seed)
        for position in fields.indices {
            let field = fields[position]
            let key = UnsafeBufferPointer(rebasing: bytes[field.keyStart..<field.keyEnd])
            let id = try interner.id(series: series, field: key, seriesHash: seriesHash) { () throws(InputError) in
                try Self.canonicalKey(
                    bytes, seriesStart: start, seriesEnd: seriesEnd, keyStart: field.keyStart, keyEnd: field.keyEnd,
                    lineNumber: lineNumber)
            }
            for earlier in 0..<position where fields[earlier].id == id {
                throw failure(field.keyStart, "field \"\(Self.text(bytes, field.keyStart, field.keyEnd))\" appears twice")
            }
            fields[position].id = id
        }
        skippedStringFields += strings
        roundedIntegers += rounded
        for field in fields {
            block.append(
                id: field.id, generation: interner.generation, key: interner.key(field.id), timestamp: timestamp,
                value: field.value)
        }
    }

    /// The slow path for a series section and field key not seen before: checks every part and spells
    /// out the canonical key (tags sorted).
    private static func canonicalKey(
        _ bytes: UnsafeBufferPointer<UInt8>,
        seriesStart: Int, seriesEnd: Int, keyStart: Int, keyEnd: Int,
        lineNumber: Int
    ) throws(InputError) -> String {
        let line = Array(bytes)
        guard String(validating: line[seriesStart..<seriesEnd], as: UTF8.self) != nil,
            String(validating: line[keyStart..<keyEnd], as: UTF8.self) != nil
        else { throw InputError(line: lineNumber, "the line is not valid UTF-8") }
        var cursor = Cursor(bytes: line[seriesStart..<seriesEnd], lineNumber: lineNumber)
        let measurement = try cursor.component(stoppingAt: [.comma, .space], what: "measurement")
        var tags: [(String, String)] = []
        while cursor.peek == .comma {
            cursor.advance()
            let key = try cursor.component(stoppingAt: [.equals, .comma, .space], what: "tag key")
            guard cursor.peek == .equals else { throw cursor.error("tag \"\(key)\": expected '=' after the tag key") }
            cursor.advance()
            let value = try cursor.component(stoppingAt: [.comma, .space], what: "value of tag \"\(key)\"")
            // One value per tag key, or the key would not map back to one tag set.
            guard !tags.contains(where: { $0.0 == key }) else { throw cursor.error("tag \"\(key)\" appears twice") }
            tags.append((key, value))
        }
        guard cursor.isAtEnd else { throw cursor.error("expected ',' or a space after the measurement and tags") }
        var fieldCursor = Cursor(bytes: line[keyStart..<keyEnd], lineNumber: lineNumber)
        let field = try fieldCursor.component(stoppingAt: [], what: "field key")
        let key = LineProtocolSeriesKey.make(measurement: measurement, tags: tags, field: field)
        let limit = DecodingLimits.default.maximumSeriesKeyBytes
        guard key.utf8.count <= limit else {
            throw InputError(
                line: lineNumber, "series key for field \"\(field)\" is \(key.utf8.count) bytes; at most \(limit)")
        }
        return key
    }

    private static func text(_ bytes: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[from..<max(from, min(to, bytes.count))]), as: UTF8.self)
    }
}

/// Line protocol numbers without going through `String`: the common decimal forms take an exact
/// fast path (at most 19 significant digits, |exponent| ≤ 22: one correctly rounded multiply or
/// divide); the rest go through the standard library's correctly rounded parser.
enum LineProtocolNumber {
    enum Outcome: Equatable {
        case value(Double)
        /// An integer a Double cannot hold exactly: the nearest Double.
        case rounded(Double)
        case invalid
        /// An integer beyond 64 bits (signed for `i`, unsigned for `u`).
        case integerOutOfRange
    }

    private static let powersOfTen: [Double] = (0...22).map { exponent in
        var value = 1.0
        for _ in 0..<exponent { value *= 10 }
        return value
    }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Outcome {
        guard from < to else { return .invalid }
        switch bytes[to - 1] {
        case UInt8(ascii: "i"):
            return integerField(bytes, from, to - 1, allowSign: true)
        case UInt8(ascii: "u"):
            return integerField(bytes, from, to - 1, allowSign: false)
        case UInt8(ascii: "e"), UInt8(ascii: "E"):
            // "true"/"false" end in e; a float cannot.
            return boolean(bytes, from, to)
        default:
            break
        }
        let first = bytes[from]
        if first == UInt8(ascii: "t") || first == UInt8(ascii: "T") || first == UInt8(ascii: "f")
            || first == UInt8(ascii: "F")
        {
            return boolean(bytes, from, to)
        }
        return decimal(bytes, from, to)
    }

    static func decimal(_ bytes: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Outcome {
        var index = from
        var negative = false
        if bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        var mantissa: UInt64 = 0
        var significant = 0
        var exponent = 0
        var truncated = false
        var digits = 0
        while index < to, let digit = digit(bytes[index]) {
            if significant < 19 {
                mantissa = mantissa &* 10 &+ digit
                if mantissa != 0 { significant += 1 }
            } else {
                truncated = true
                exponent += 1
            }
            digits += 1
            index += 1
        }
        if index < to, bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < to, let digit = digit(bytes[index]) {
                if significant < 19 {
                    mantissa = mantissa &* 10 &+ digit
                    if mantissa != 0 { significant += 1 }
                    exponent -= 1
                } else {
                    truncated = true
                }
                digits += 1
                index += 1
            }
        }
        guard digits > 0 else { return .invalid }
        if index < to, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            var exponentNegative = false
            if index < to, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            var written = 0
            var exponentDigits = 0
            while index < to, let digit = digit(bytes[index]) {
                if written < 100_000 { written = written * 10 + Int(digit) }
                exponentDigits += 1
                index += 1
            }
            guard exponentDigits > 0 else { return .invalid }
            exponent += exponentNegative ? -written : written
        }
        guard index == to else { return .invalid }
        var value: Double
        if !truncated, mantissa <= 1 << 53, (-22...22).contains(exponent) {
            value = Double(mantissa)
            value = exponent < 0 ? value / powersOfTen[-exponent] : value * powersOfTen[exponent]
        } else {
            guard
                let parsed = Double(
                    String(decoding: UnsafeBufferPointer(rebasing: bytes[from..<to]), as: UTF8.self))
            else { return .invalid }
            value = abs(parsed)
        }
        guard value.isFinite else { return .invalid }
        return .value(negative ? -value : value)
    }

    private static func integerField(_ bytes: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int, allowSign: Bool)
        -> Outcome
    {
        var index = from
        var negative = false
        if allowSign, index < to, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < to else { return .invalid }
        var magnitude: UInt64 = 0
        var tooLarge = false
        while index < to {
            guard let digit = digit(bytes[index]) else { return .invalid }
            let (times10, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times10.addingReportingOverflow(digit)
            if overflow || carry { tooLarge = true } else { magnitude = sum }
            index += 1
        }
        // i: Int64 (-2^63 ... 2^63-1); u: UInt64.
        let limit: UInt64 = allowSign ? (negative ? 1 << 63 : (1 << 63) - 1) : .max
        guard !tooLarge, magnitude <= limit else { return .integerOutOfRange }
        let value = negative ? -Double(magnitude) : Double(magnitude)
        if magnitude <= 1 << 53 { return .value(value) }
        // Double(UInt64) rounds to nearest; it is exact when converting back gives the same integer.
        return UInt64(exactly: value.magnitude) == magnitude ? .value(value) : .rounded(value)
    }

    /// A whole integer (timestamps), optionally negative; nil when malformed or beyond Int64.
    static func integer(_ bytes: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Int64? {
        var index = from
        let negative = index < to && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        guard index < to, to - index <= 19 else { return nil }
        var magnitude: UInt64 = 0
        while index < to {
            guard let digit = digit(bytes[index]) else { return nil }
            magnitude = magnitude * 10 + digit
            index += 1
        }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    private static func boolean(_ bytes: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Outcome {
        switch String(decoding: UnsafeBufferPointer(rebasing: bytes[from..<to]), as: UTF8.self) {
        case "t", "T", "true", "True", "TRUE": .value(1)
        case "f", "F", "false", "False", "FALSE": .value(0)
        default: .invalid
        }
    }

    @inline(__always)
    private static func digit(_ byte: UInt8) -> UInt64? {
        byte &- 48 < 10 ? UInt64(byte &- 48) : nil
    }
}

/// A bounded cache from the raw bytes of a series section and field key to a series id and its
/// canonical key. Different spellings of one series (tag order, escapes) get the same id.
package struct SeriesInterner: Sendable {
    package static let maximumEntries = 1 << 16
    static let maximumArenaBytes = 8 << 20

    private struct Entry {
        var hash: UInt64
        var seriesOffset: Int
        var seriesCount: Int
        var fieldOffset: Int
        var fieldCount: Int
        var id: Int32
    }

    /// Bumped by `reset`, so blocks holding old ids know to forget them.
    private(set) var generation = 0
    /// Per-process random seed: a client cannot pick keys that all collide.
    let seed = UInt64.random(in: .min ... .max)
    private var slots = [Int32](repeating: -1, count: 1 << 10)
    private var entries: [Entry] = []
    private var arena: [UInt8] = []
    private var keys: [String] = []
    private var idByKey: [ExactString: Int32] = [:]

    var isFull: Bool { entries.count >= Self.maximumEntries || arena.count >= Self.maximumArenaBytes }

    func key(_ id: Int32) -> String { keys[Int(id)] }

    mutating func reset() {
        slots = [Int32](repeating: -1, count: 1 << 10)
        entries.removeAll()
        arena.removeAll()
        keys.removeAll()
        idByKey.removeAll()
        generation += 1
    }

    /// The id of (`series`, `field`); on a miss, `makeKey` checks the bytes and spells the key.
    mutating func id(
        series: UnsafeBufferPointer<UInt8>,
        field: UnsafeBufferPointer<UInt8>,
        seriesHash: UInt64,
        makeKey: () throws(InputError) -> String
    ) throws(InputError) -> Int32 {
        let hash = Self.hash(UnsafeRawBufferPointer(field), seed: seriesHash)
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] >= 0 {
            let entry = entries[Int(slots[slot])]
            if entry.hash == hash, entry.seriesCount == series.count, entry.fieldCount == field.count,
                arena.withUnsafeBufferPointer({ stored in
                    Self.equal(stored, entry.seriesOffset, series) && Self.equal(stored, entry.fieldOffset, field)
                })
            {
                return entry.id
            }
            slot = (slot + 1) & mask
        }
        let key = try makeKey()
        let id: Int32
        if let known = idByKey[ExactString(key)] {
            id = known
        } else {
            id = Int32(keys.count)
            keys.append(key)
            idByKey[ExactString(key)] = id
        }
        let entry = Entry(
            hash: hash, seriesOffset: arena.count, seriesCount: series.count, fieldOffset: arena.count + series.count,
            fieldCount: field.count, id: id)
        arena.append(contentsOf: series)
        arena.append(contentsOf: field)
        slots[slot] = Int32(entries.count)
        entries.append(entry)
        if entries.count * 2 > slots.count { grow() }
        return id
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        let mask = slots.count - 1
        for (position, entry) in entries.enumerated() {
            var slot = Int(truncatingIfNeeded: entry.hash) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(position)
        }
    }

    private static func equal(_ stored: UnsafeBufferPointer<UInt8>, _ offset: Int, _ bytes: UnsafeBufferPointer<UInt8>)
        -> Bool
    {
        guard let base = stored.baseAddress, let other = bytes.baseAddress else { return bytes.isEmpty }
        return memcmp(base + offset, other, bytes.count) == 0
    }

    /// A fast 64-bit hash, eight bytes at a time.
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var hash = seed ^ (UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
        var index = 0
        while index + 8 <= bytes.count {
            hash = (hash ^ bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            hash ^= hash >> 32
            index += 8
        }
        if index < bytes.count {
            var tail: UInt64 = 0
            for offset in index..<bytes.count { tail |= UInt64(bytes[offset]) << (8 * UInt64(offset - index)) }
            hash = (hash ^ tail) &* 0xC4CE_B9FE_1A85_EC53
            hash ^= hash >> 29
        }
        return hash
    }
}

extension UInt8 {
    static let tab = UInt8(ascii: "\t")
    static let carriageReturn = UInt8(ascii: "\r")
}

/// The lines of a request that did not parse, when the good ones are kept (InfluxDB's partial write).
package struct BadLines: Sendable {
    /// The first bad line's error.
    package private(set) var first: InputError?
    /// The first bad line as sent (at most 256 bytes of it), for the answer to quote.
    package private(set) var firstText = ""
    package private(set) var count = 0

    package init() {}

    mutating func record(_ error: InputError, line: UnsafeBufferPointer<UInt8>) {
        count += 1
        guard first == nil else { return }
        first = error
        firstText = String(decoding: UnsafeBufferPointer(rebasing: line[0..<min(line.count, 256)]), as: UTF8.self)
    }
}
