import EdgeSyncCodec
import EdgeSyncProtocol

/// Parses InfluxDB line protocol into readings, one line at a time.
///
/// `measurement[,tag=value…] field=value[,field=value…] [timestamp]`. Every numeric field becomes one
/// reading of the series `LineProtocolSeriesKey(measurement, tags, field)`; see `Docs/edge-agent.md`.
///
/// - Values: floats (`1`, `-2.5`, `3e4`), integers `12i` and unsigned `12u` (as Double: exact up to
///   2^53), booleans `t`/`true`/`T`/`True`/`TRUE` (1) and `f`/`false`/… (0). String fields are an
///   error: the spool holds numbers only. NaN and infinities are not line protocol.
/// - Timestamp: integer nanoseconds since the epoch; when absent, `defaultTimestamp`.
/// - Escapes: a backslash before `,`, `=`, space or backslash stands for that character; before
///   anything else it is a literal backslash.
/// - Blank lines and lines starting with `#` are skipped. A line is parsed whole or not at all.
package struct LineProtocolParser: Sendable {
    /// Lines longer than this are refused (the reader enforces it before parsing).
    package static let maximumLineBytes = 64 * 1024

    package init() {}

    /// Appends the readings of `line` to `readings`, or throws and appends nothing.
    package func parse(
        _ line: ArraySlice<UInt8>,
        lineNumber: Int,
        defaultTimestamp: @autoclosure () -> Int64,
        into readings: inout [IncomingReading]
    ) throws(InputError) {
        var cursor = Cursor(bytes: line, lineNumber: lineNumber)
        cursor.trimTrailingWhitespace()
        cursor.skipSpaces()
        if cursor.isAtEnd || cursor.peek == UInt8(ascii: "#") { return }
        try cursor.requireUTF8()

        let measurement = try cursor.component(stoppingAt: [.comma, .space], what: "measurement")
        var tags: [(String, String)] = []
        while cursor.peek == .comma {
            cursor.advance()
            let key = try cursor.component(stoppingAt: [.equals, .comma, .space], what: "tag key")
            guard cursor.peek == .equals else { throw cursor.error("tag \"\(key)\": expected '=' after the tag key") }
            cursor.advance()
            let value = try cursor.component(stoppingAt: [.comma, .space], what: "value of tag \"\(key)\"")
            tags.append((key, value))
        }
        guard cursor.peek == .space else { throw cursor.error("expected a space and fields after the series") }
        cursor.skipSpaces()
        guard !cursor.isAtEnd else { throw cursor.error("the line has no fields") }

        var fields: [(key: String, value: Double)] = []
        while true {
            let key = try cursor.component(stoppingAt: [.equals, .comma, .space], what: "field key")
            guard cursor.peek == .equals else {
                throw cursor.error("field \"\(key)\": expected '=' after the field key")
            }
            cursor.advance()
            let value = try cursor.fieldValue(key: key)
            if fields.contains(where: { $0.key == key }) { throw cursor.error("field \"\(key)\" appears twice") }
            fields.append((key, value))
            guard cursor.peek == .comma else { break }
            cursor.advance()
        }
        var timestamp: Int64
        if cursor.isAtEnd {
            timestamp = defaultTimestamp()
        } else {
            guard cursor.peek == .space else { throw cursor.error("expected a space before the timestamp") }
            cursor.skipSpaces()
            let start = cursor.column
            let text = cursor.takeWhile { $0 != .space }
            guard let parsed = Int64(text) else {
                throw InputError(
                    line: lineNumber, column: start, "timestamp: expected integer nanoseconds, found \"\(text)\"")
            }
            timestamp = parsed
            guard cursor.isAtEnd else { throw cursor.error("unexpected text after the timestamp") }
        }

        let prefix = LineProtocolSeriesKey.prefix(measurement: measurement, tags: tags)
        var parsed: [IncomingReading] = []
        parsed.reserveCapacity(fields.count)
        for field in fields {
            let key = prefix + " " + LineProtocolSeriesKey.escape(field.key)
            guard key.utf8.count <= DecodingLimits.default.maximumSeriesKeyBytes else {
                throw InputError(
                    line: lineNumber,
                    "series key for field \"\(field.key)\" is \(key.utf8.count) bytes; at most \(DecodingLimits.default.maximumSeriesKeyBytes)"
                )
            }
            parsed.append(IncomingReading(seriesKey: key, timestamp: timestamp, value: field.value))
        }
        readings.append(contentsOf: parsed)
    }
}

extension UInt8 {
    static let comma = UInt8(ascii: ",")
    static let space = UInt8(ascii: " ")
    static let equals = UInt8(ascii: "=")
    static let backslash = UInt8(ascii: "\\")
    static let quote = UInt8(ascii: "\"")
}

/// A position in one line of bytes, with the parsing steps line protocol and CSV share.
struct Cursor {
    let bytes: ArraySlice<UInt8>
    let lineNumber: Int
    var index: Int
    var end: Int

    init(bytes: ArraySlice<UInt8>, lineNumber: Int) {
        self.bytes = bytes
        self.lineNumber = lineNumber
        self.index = bytes.startIndex
        self.end = bytes.endIndex
    }

    var isAtEnd: Bool { index >= end }
    var peek: UInt8? { index < end ? bytes[index] : nil }
    var column: Int { index - bytes.startIndex + 1 }

    mutating func advance() { index += 1 }

    mutating func skipSpaces() {
        while index < end, bytes[index] == .space || bytes[index] == UInt8(ascii: "\t") { index += 1 }
    }

    mutating func trimTrailingWhitespace() {
        while end > index, [UInt8.space, UInt8(ascii: "\t"), UInt8(ascii: "\r")].contains(bytes[end - 1]) { end -= 1 }
    }

    func error(_ reason: String) -> InputError { InputError(line: lineNumber, column: column, reason) }

    func requireUTF8() throws(InputError) {
        guard String(validating: bytes[index..<end], as: UTF8.self) != nil else {
            throw InputError(line: lineNumber, "the line is not valid UTF-8")
        }
    }

    mutating func takeWhile(_ keep: (UInt8) -> Bool) -> String {
        let start = index
        while index < end, keep(bytes[index]) { index += 1 }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// An escaped name up to one of `stops`, which must not be empty.
    mutating func component(stoppingAt stops: [UInt8], what: String) throws(InputError) -> String {
        let start = column
        var out: [UInt8] = []
        while index < end {
            let byte = bytes[index]
            if byte == .backslash, index + 1 < end,
                [UInt8.comma, .equals, .space, .backslash].contains(bytes[index + 1])
            {
                out.append(bytes[index + 1])
                index += 2
                continue
            }
            if stops.contains(byte) { break }
            out.append(byte)
            index += 1
        }
        guard !out.isEmpty else { throw InputError(line: lineNumber, column: start, "\(what) is empty") }
        return String(decoding: out, as: UTF8.self)
    }

    mutating func fieldValue(key: String) throws(InputError) -> Double {
        let start = column
        if peek == .quote {
            throw error("field \"\(key)\": string values are not supported (the spool stores numbers)")
        }
        let text = takeWhile { $0 != .comma && $0 != .space }
        guard let value = Self.number(text) else {
            throw InputError(
                line: lineNumber, column: start, "field \"\(key)\": expected a number, found \"\(text.prefix(80))\"")
        }
        return value
    }

    /// A line protocol field value: float, `Ni`, `Nu` or boolean.
    static func number(_ text: String) -> Double? {
        switch text {
        case "t", "T", "true", "True", "TRUE": return 1
        case "f", "F", "false", "False", "FALSE": return 0
        default: break
        }
        if text.hasSuffix("i") { return Int64(text.dropLast()).map { Double($0) } }
        // Spelled out: `map(Double.init)` would pick `Double(bitPattern:)` for a UInt64.
        if text.hasSuffix("u") { return UInt64(text.dropLast()).map { Double($0) } }
        return decimal(text)
    }

    /// A finite decimal number (`-1.5`, `2e-3`); no hex, NaN or infinity spellings.
    static func decimal<S: StringProtocol>(_ text: S) -> Double? {
        guard !text.isEmpty,
            text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 || $0 == 43 || $0 == 101 || $0 == 69 }
            ),
            let value = Double(text), value.isFinite
        else { return nil }
        return value
    }
}
