import EdgeSyncProtocol
import Foundation

/// How `/v1/readings` writes readings: JSON, CSV or InfluxDB line protocol. Each format appends to
/// a byte buffer the endpoint sends in chunks, so a response of any size needs one buffer's memory.
package enum ReadingFormat: String, Sendable, CaseIterable {
    case json, csv, lp

    package var contentType: String {
        switch self {
        case .json: "application/json"
        case .csv: "text/csv; charset=utf-8"
        case .lp: "text/plain; charset=utf-8"
        }
    }
}

/// Appends readings of one series in one format.
package struct ReadingFormatter: Sendable {
    package let format: ReadingFormat
    private let device: String
    private let series: String
    /// Line protocol: everything before the value (`measurement,tag=v field=`).
    private let linePrefix: [UInt8]
    private var isFirst = true

    package init(format: ReadingFormat, device: String, series: String) {
        self.format = format
        self.device = device
        self.series = series
        var prefix = ""
        if format == .lp {
            // A key that is not `measurement[,tag=value…] field` (one made by another input) becomes
            // the measurement, with the field `value`.
            let parts = LineProtocolSeriesKey.parse(series) ?? (measurement: series, tags: [], field: "value")
            prefix = Self.escape(parts.measurement, alsoEquals: false)
            for (name, value) in parts.tags {
                prefix += "," + Self.escape(name, alsoEquals: true) + "=" + Self.escape(value, alsoEquals: true)
            }
            prefix += " " + Self.escape(parts.field, alsoEquals: true) + "="
        }
        linePrefix = Array(prefix.utf8)
    }

    /// Line protocol escaping: measurements escape comma and space; tag keys, tag values and field
    /// keys escape equals signs too. A backslash is doubled where it would otherwise escape what
    /// follows it (or end the part). CR and LF, which would end the line, become spaces (escaped).
    ///
    /// Works on UTF-8 bytes: as Characters, "\r\n" or a prepended mark before a space are single
    /// graphemes that equal neither delimiter.
    package static func escape(_ text: String, alsoEquals: Bool) -> String {
        func isSpecial(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: ",") || byte == UInt8(ascii: " ") || byte == 0x0A || byte == 0x0D
                || (alsoEquals && byte == UInt8(ascii: "="))
        }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 4)
        for (index, byte) in bytes.enumerated() {
            switch byte {
            case 0x0A, 0x0D:
                out += [UInt8(ascii: "\\"), UInt8(ascii: " ")]
            case UInt8(ascii: "\\"):
                let next = index + 1 < bytes.count ? bytes[index + 1] : nil
                if next == nil || next == UInt8(ascii: "\\") || next.map(isSpecial) == true {
                    out.append(byte)
                }
                out.append(byte)
            case _ where isSpecial(byte):
                out += [UInt8(ascii: "\\"), byte]
            default:
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// What comes before the first reading.
    package func head() -> [UInt8] {
        switch format {
        case .json:
            let encoder = JSONEncoder()
            let device = (try? encoder.encode(device)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
            let series = (try? encoder.encode(series)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
            return Array("{\"device\":\(device),\"series\":\(series),\"readings\":[".utf8)
        case .csv: return Array("timestamp,value,stream,seq\n".utf8)
        case .lp: return []
        }
    }

    /// Appends one reading. Line protocol cannot carry NaN or infinities: those readings are skipped.
    package mutating func append(_ reading: QueriedReading, to buffer: inout [UInt8]) {
        switch format {
        case .json:
            buffer.append(contentsOf: isFirst ? "\n{\"timestamp\":".utf8 : ",\n{\"timestamp\":".utf8)
            isFirst = false
            Self.appendDecimal(reading.timestamp, to: &buffer)
            buffer.append(contentsOf: ",\"value\":".utf8)
            if reading.value.isFinite {
                buffer.append(contentsOf: reading.value.description.utf8)
            } else {
                buffer.append(UInt8(ascii: "\""))
                buffer.append(contentsOf: Self.nonFinite(reading.value).utf8)
                buffer.append(UInt8(ascii: "\""))
                if reading.value.isNaN {
                    buffer.append(contentsOf: ",\"value_bits\":\"".utf8)
                    buffer.append(contentsOf: Self.hexBits(reading.value).utf8)
                    buffer.append(UInt8(ascii: "\""))
                }
            }
            buffer.append(contentsOf: ",\"stream\":\"".utf8)
            Self.appendDecimal(reading.stream, to: &buffer)
            buffer.append(contentsOf: "\",\"seq\":".utf8)
            Self.appendDecimal(reading.seq, to: &buffer)
            buffer.append(UInt8(ascii: "}"))
        case .csv:
            Self.appendDecimal(reading.timestamp, to: &buffer)
            buffer.append(UInt8(ascii: ","))
            if reading.value.isFinite {
                buffer.append(contentsOf: reading.value.description.utf8)
            } else {
                buffer.append(contentsOf: Self.nonFinite(reading.value).utf8)
            }
            buffer.append(UInt8(ascii: ","))
            Self.appendDecimal(reading.stream, to: &buffer)
            buffer.append(UInt8(ascii: ","))
            Self.appendDecimal(reading.seq, to: &buffer)
            buffer.append(UInt8(ascii: "\n"))
        case .lp:
            guard reading.value.isFinite else { return }
            buffer.append(contentsOf: linePrefix)
            buffer.append(contentsOf: reading.value.description.utf8)
            buffer.append(UInt8(ascii: " "))
            Self.appendDecimal(reading.timestamp, to: &buffer)
            buffer.append(UInt8(ascii: "\n"))
        }
    }

    /// What comes after the last reading.
    package func tail(nextCursor: String?) -> [UInt8] {
        guard format == .json else { return [] }
        let cursor = nextCursor.map { "\"\($0)\"" } ?? "null"
        return Array("\n],\"next_cursor\":\(cursor)}\n".utf8)
    }

    /// NaN and the infinities as the CSV and JSON formats spell them (what Python's `float()` and
    /// pandas read back).
    static func nonFinite(_ value: Double) -> String {
        value.isNaN ? "NaN" : (value < 0 ? "-inf" : "inf")
    }

    /// The IEEE 754 bits as 16 hex digits, so a NaN's payload survives JSON.
    static func hexBits(_ value: Double) -> String {
        let hex = String(value.bitPattern, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func appendDecimal(_ value: Int64, to buffer: inout [UInt8]) {
        if value < 0 {
            buffer.append(UInt8(ascii: "-"))
            appendDecimal(value.magnitude, to: &buffer)
        } else {
            appendDecimal(UInt64(value), to: &buffer)
        }
    }

    static func appendDecimal(_ value: UInt64, to buffer: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)  // 20 digits fit in 40 bytes
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                raw[count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            for index in stride(from: count - 1, through: 0, by: -1) { buffer.append(raw[index]) }
        }
    }
}

/// The opaque `cursor` of `/v1/readings`: where the previous page ended, bound to its series.
/// Clients pass it back unchanged; its content (`1:<series id>:<timestamp>:<reading id>` in
/// base64url) is not part of the API.
package enum ReadingCursor {
    package static func encode(series: SeriesReference, after position: ReadingPosition) -> String {
        let text = "1:\(series.id):\(position.timestamp):\(position.readingID)"
        return Data(text.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    package static func decode(_ cursor: String, series: SeriesReference) throws(CollectorError) -> ReadingPosition {
        let invalid = CollectorError(
            .badRequest, "invalid_cursor",
            "parameter \"cursor\" is not a cursor this collector returned for this series")
        guard cursor.utf8.count <= 128,
            cursor.utf8.allSatisfy({ byte in
                (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: "_")
            })
        else { throw invalid }
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else {
            throw invalid
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "1", Int64(parts[1]) == series.id, let timestamp = Int64(parts[2]),
            let readingID = Int64(parts[3])
        else { throw invalid }
        return ReadingPosition(timestamp: timestamp, readingID: readingID)
    }
}
