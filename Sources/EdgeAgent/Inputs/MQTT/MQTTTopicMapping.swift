import EdgeSyncCodec
import EdgeSyncCommandLine
import EdgeSyncProtocol
import Foundation

/// How an MQTT message (topic and payload) becomes readings: the first rule whose topic template
/// matches the topic decides; without a match, the default rule (measurement `mqtt`, tag `topic`
/// holding the whole topic, field `value`, payload format `auto`). `Docs/edge-agent.md` has the
/// rules with examples.
///
/// A template is a topic with placeholders, level by level: `{name}` takes one level as the tag
/// `name` (`{measurement}` and `{field}` name the measurement and the field instead), `+` matches one
/// level and keeps nothing, a final `#` matches the rest. Everything else must match byte for byte.
///
/// Payload formats:
/// - `value`: a decimal number (surrounding ASCII white space allowed); one reading at arrival time.
/// - `json`: an object; each member whose value is a number (or true/false, as 1/0) is a field named by
///   its key; the member named by `time_key` (default `timestamp`) is the time: an integer in
///   `time_precision` units or an RFC 3339 string. Strings, nulls, arrays and objects are skipped.
/// - `line-protocol`: lines as the line protocol inputs take them; measurement and tags come from
///   the lines, not the topic.
/// - `auto`: `{` first means JSON, a number means `value`, anything else line protocol.
package struct MQTTTopicMapping: Sendable {
    package enum PayloadFormat: String, Sendable, CaseIterable {
        case auto
        case value
        case json
        case lineProtocol = "line-protocol"
    }

    package struct Rule: Sendable {
        fileprivate enum Level: Sendable, Equatable {
            case literal([UInt8])
            case capture(String)
            case anyLevel
            case rest
        }

        fileprivate var levels: [Level]
        package var template: String
        /// The measurement when the template has no `{measurement}`.
        package var measurement: String
        /// The field of a `value` payload when the template has no `{field}`.
        package var field: String
        package var format: PayloadFormat
        package var timeKey: String
        package var timePrecision: TimestampPrecision

        /// Throws a message naming what is wrong in `template`.
        package init(
            template: String, measurement: String = "mqtt", field: String = "value", format: PayloadFormat = .auto,
            timeKey: String = "timestamp", timePrecision: TimestampPrecision = .nanoseconds
        ) throws(MQTTMappingError) {
            self.template = template
            self.measurement = measurement
            self.field = field
            self.format = format
            self.timeKey = timeKey
            self.timePrecision = timePrecision
            guard !measurement.isEmpty, !field.isEmpty else {
                throw MQTTMappingError("the measurement and the field must not be empty")
            }
            var levels: [Level] = []
            let parts = template.utf8.split(separator: 0x2F, omittingEmptySubsequences: false)
            var names: Set<String> = []
            for (index, part) in parts.enumerated() {
                let bytes = Array(part)
                if bytes == [0x23] {
                    guard index == parts.count - 1 else { throw MQTTMappingError("\"#\" must be the last level") }
                    levels.append(.rest)
                } else if bytes == [0x2B] {
                    levels.append(.anyLevel)
                } else if bytes.first == 0x7B, bytes.last == 0x7D, bytes.count > 2 {
                    let name = String(decoding: bytes.dropFirst().dropLast(), as: UTF8.self)
                    guard !name.utf8.contains(where: { $0 == 0x7B || $0 == 0x7D || $0 == 0x2B || $0 == 0x23 }),
                        names.insert(name).inserted
                    else {
                        throw MQTTMappingError("placeholder {\(name)} is malformed or used twice")
                    }
                    levels.append(.capture(name))
                } else {
                    guard !bytes.contains(where: { $0 == 0x2B || $0 == 0x23 || $0 == 0x7B || $0 == 0x7D }) else {
                        throw MQTTMappingError(
                            "level \"\(String(decoding: bytes, as: UTF8.self))\" mixes text with + # { }")
                    }
                    levels.append(.literal(bytes))
                }
            }
            guard !template.isEmpty else { throw MQTTMappingError("the topic template is empty") }
            self.levels = levels
        }

        /// The subscription filter that matches what this template matches (`{x}` becomes `+`).
        package var filter: String {
            levels.map { level in
                switch level {
                case .literal(let bytes): String(decoding: bytes, as: UTF8.self)
                case .capture, .anyLevel: "+"
                case .rest: "#"
                }
            }.joined(separator: "/")
        }

        /// The captures of `topic`, or nil when the template does not match it.
        fileprivate func match(_ topic: [UInt8]) -> [(String, String)]? {
            var captures: [(String, String)] = []
            var start = 0
            for (index, level) in levels.enumerated() {
                if case .rest = level { return captures }
                guard start <= topic.count else { return nil }
                var end = start
                while end < topic.count, topic[end] != 0x2F { end += 1 }
                let part = topic[start..<end]
                switch level {
                case .literal(let bytes):
                    guard part.elementsEqual(bytes) else { return nil }
                case .capture(let name):
                    guard !part.isEmpty else { return nil }
                    captures.append((name, String(decoding: part, as: UTF8.self)))
                case .anyLevel, .rest:
                    break
                }
                start = end + 1
                if index == levels.count - 1 { return end == topic.count ? captures : nil }
            }
            return nil
        }
    }

    package var rules: [Rule]
    /// Measurement `mqtt`, the topic as tag `topic`, field `value`, format `auto`.
    package static let defaultMeasurement = "mqtt"

    package init(rules: [Rule] = []) {
        self.rules = rules
    }

    /// Appends the readings of `message` to `block`; throws (appending nothing) when the payload
    /// does not fit its format. Returns the number of JSON members skipped (not numbers).
    @discardableResult
    package func map(
        _ message: MQTTPublish, now: Int64, parser: inout LineProtocolParser, into block: inout ReadingBlock
    ) throws(MQTTMappingError) -> Int {
        var measurement = Self.defaultMeasurement
        var field = "value"
        var tags: [(String, String)] = []
        var format = PayloadFormat.auto
        var timeKey = "timestamp"
        var precision = TimestampPrecision.nanoseconds
        if let (rule, captures) = rules.lazy.compactMap({ rule in rule.match(message.topic).map { (rule, $0) } }).first
        {
            measurement = rule.measurement
            field = rule.field
            format = rule.format
            timeKey = rule.timeKey
            precision = rule.timePrecision
            for (name, value) in captures {
                switch name {
                case "measurement": measurement = value
                case "field": field = value
                default: tags.append((name, value))
                }
            }
        } else {
            tags = [("topic", String(decoding: message.topic, as: UTF8.self))]
        }
        let payload = message.payload
        if format == .auto {
            let first = payload.first { !Self.isSpace($0) }
            if first == 0x7B {
                format = .json
            } else if Self.number(payload) != nil {
                format = .value
            } else {
                format = .lineProtocol
            }
        }
        switch format {
        case .auto, .value:
            guard let value = Self.number(payload) else {
                throw MQTTMappingError("the payload is not a decimal number")
            }
            block.append(
                IncomingReading(
                    seriesKey: try Self.key(measurement, tags, field), timestamp: now, value: value))
            return 0
        case .json:
            return try json(
                payload, measurement: measurement, tags: tags, timeKey: timeKey, precision: precision, now: now,
                into: &block)
        case .lineProtocol:
            let before = parser.precision
            parser.precision = precision
            defer { parser.precision = before }
            var lines = ReadingBlock()
            var start = 0
            var lineNumber = 1
            while start < payload.count {
                var end = start
                while end < payload.count, payload[end] != 0x0A { end += 1 }
                do {
                    try parser.parse(payload[start..<end], lineNumber: lineNumber, defaultTimestamp: now, into: &lines)
                } catch {
                    throw MQTTMappingError("line protocol: \(error)")
                }
                lineNumber += 1
                start = end + 1
            }
            guard !lines.isEmpty else { throw MQTTMappingError("line protocol: no readings in the payload") }
            block.append(contentsOf: lines.incomingReadings)
            return 0
        }
    }

    private func json(
        _ payload: [UInt8], measurement: String, tags: [(String, String)], timeKey: String,
        precision: TimestampPrecision, now: Int64, into block: inout ReadingBlock
    ) throws(MQTTMappingError) -> Int {
        let document: JSONValue
        do {
            document = try JSONDecoder().decode(JSONValue.self, from: Data(payload))
        } catch {
            throw MQTTMappingError("the payload is not valid JSON")
        }
        guard case .object(let members) = document else { throw MQTTMappingError("JSON: expected an object") }
        var timestamp = now
        if let time = members[timeKey] {
            switch time {
            case .integer(let units):
                let (scaled, overflow) = units.multipliedReportingOverflow(by: precision.nanosecondsPerUnit)
                guard !overflow else { throw MQTTMappingError("JSON: \"\(timeKey)\" is out of range") }
                timestamp = scaled
            case .number(let units):
                let scaled = (units * Double(precision.nanosecondsPerUnit)).rounded()
                guard scaled.isFinite, abs(scaled) < 9.2e18 else {
                    throw MQTTMappingError("JSON: \"\(timeKey)\" is out of range")
                }
                timestamp = Int64(scaled)
            case .string(let text):
                guard let parsed = RFC3339.nanoseconds(text) else {
                    throw MQTTMappingError("JSON: \"\(timeKey)\" is neither a number nor an RFC 3339 time")
                }
                timestamp = parsed
            default:
                throw MQTTMappingError("JSON: \"\(timeKey)\" is neither a number nor an RFC 3339 time")
            }
        }
        var readings: [IncomingReading] = []
        var skipped = 0
        // Sorted by bytes, so one message always yields its readings in one order.
        for (name, member) in members.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            guard name != timeKey else { continue }
            let value: Double
            switch member {
            case .integer(let integer):
                guard integer.magnitude <= 1 << 53 else {
                    throw MQTTMappingError("JSON: \"\(name)\" is beyond ±2^53, which a reading cannot hold exactly")
                }
                value = Double(integer)
            case .number(let number):
                guard number.isFinite else { throw MQTTMappingError("JSON: \"\(name)\" is not finite") }
                value = number
            case .bool(let flag):
                value = flag ? 1 : 0
            default:
                skipped += 1
                continue
            }
            guard !name.isEmpty else { throw MQTTMappingError("JSON: an empty member name") }
            readings.append(
                IncomingReading(seriesKey: try Self.key(measurement, tags, name), timestamp: timestamp, value: value))
        }
        guard !readings.isEmpty else { throw MQTTMappingError("JSON: no numeric member") }
        block.append(contentsOf: readings)
        return skipped
    }

    private static func key(_ measurement: String, _ tags: [(String, String)], _ field: String) throws(MQTTMappingError)
        -> String
    {
        let key = LineProtocolSeriesKey.make(measurement: measurement, tags: tags, field: field)
        let limit = DecodingLimits.default.maximumSeriesKeyBytes
        guard key.utf8.count <= limit else {
            throw MQTTMappingError("the series key is \(key.utf8.count) bytes, more than \(limit)")
        }
        return key
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    /// A decimal number with optional sign, fraction and exponent, and nothing else but white space
    /// around it (no `nan`, `inf` or hexadecimal, which `Double(_:)` would take).
    static func number(_ payload: [UInt8]) -> Double? {
        var start = 0
        var end = payload.count
        while start < end, isSpace(payload[start]) { start += 1 }
        while end > start, isSpace(payload[end - 1]) { end -= 1 }
        guard end > start, end - start <= 64 else { return nil }
        var index = start
        func digits() -> Int {
            let from = index
            while index < end, payload[index] >= 0x30, payload[index] <= 0x39 { index += 1 }
            return index - from
        }
        if payload[index] == 0x2D || payload[index] == 0x2B { index += 1 }
        var count = digits()
        if index < end, payload[index] == 0x2E {
            index += 1
            count += digits()
        }
        guard count > 0 else { return nil }
        if index < end, payload[index] == 0x65 || payload[index] == 0x45 {
            index += 1
            if index < end, payload[index] == 0x2D || payload[index] == 0x2B { index += 1 }
            guard digits() > 0 else { return nil }
        }
        guard index == end, let value = Double(String(decoding: payload[start..<end], as: UTF8.self)), value.isFinite
        else { return nil }
        return value
    }
}

/// A message whose payload or topic does not map to readings (the message is acknowledged and
/// counted, never stored in part), or a rule that cannot be used.
package struct MQTTMappingError: Error, Sendable, Equatable, CustomStringConvertible {
    package var message: String

    package init(_ message: String) { self.message = message }

    package var description: String { message }
}
