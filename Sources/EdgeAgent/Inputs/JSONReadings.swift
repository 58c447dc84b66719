import EdgeSyncCodec
import EdgeSyncProtocol
import Foundation

/// The body of `POST /v1/readings`: readings from scripts, in one of two shapes per element.
///
/// ```json
/// {"readings": [
///   {"series": "room,site=a temperature", "value": 21.5, "timestamp": 1700000000000000000},
///   {"measurement": "room", "tags": {"site": "a"}, "fields": {"temperature": 21.5, "humidity": 40},
///    "timestamp": "2024-05-01T12:00:00Z"}
/// ]}
/// ```
///
/// - `series` is stored as given. The second shape becomes one reading per field with the line
///   protocol series key (`LineProtocolSeriesKey`), so it maps back to measurement, tags and field.
/// - `timestamp`: integer nanoseconds since the epoch or an RFC 3339 string; absent means now.
/// - `value` and field values are JSON numbers. Unknown keys are an error, so a typo cannot drop data.
package enum JSONReadings {
    /// Decodes `body`, appending to `block`; throws a message naming the element at fault.
    package static func decode(_ body: [UInt8], now: Int64, into block: inout ReadingBlock) throws(InputFailure) {
        let document: Document
        do {
            let decoder = JSONDecoder()
            decoder.userInfo[Element.nowKey] = now
            document = try decoder.decode(Document.self, from: Data(body))
        } catch let error as DecodingError {
            throw InputFailure(.badRequest, "invalid_json", describe(error))
        } catch {
            throw InputFailure(.badRequest, "invalid_json", "the body is not valid JSON: \(error)")
        }
        for element in document.readings {
            for reading in element.readings { block.append(reading) }
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
            return text.isEmpty ? "the body" : text
        }
        switch error {
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the body is not valid JSON" }
            return "\(path(context.codingPath)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])): is required"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(typeName(type))"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Double.Type: "a number"
        case is String.Type: "a string"
        case is Int64.Type: "an integer"
        default: "\(type)".lowercased()
        }
    }

    private struct Document: Decodable {
        var readings: [Element]

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            try Key.refuseUnknown(in: container, allowed: ["readings"])
            readings = try container.decode([Element].self, forKey: Key("readings"))
        }
    }

    private struct Element: Decodable {
        static let nowKey = CodingUserInfoKey(rawValue: "now")!
        var readings: [IncomingReading] = []

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            let timestamp = try Self.timestamp(in: container) ?? (decoder.userInfo[Self.nowKey] as? Int64 ?? 0)
            if container.contains(Key("series")) {
                try Key.refuseUnknown(in: container, allowed: ["series", "value", "timestamp"])
                let series = try container.decode(String.self, forKey: Key("series"))
                let value = try Self.finite(container, Key("value"))
                readings.append(IncomingReading(seriesKey: series, timestamp: timestamp, value: value))
            } else if container.contains(Key("measurement")) {
                try Key.refuseUnknown(in: container, allowed: ["measurement", "tags", "fields", "timestamp"])
                let measurement = try container.decode(String.self, forKey: Key("measurement"))
                let tags = try container.decodeIfPresent([String: String].self, forKey: Key("tags")) ?? [:]
                // Empty parts would make a key that does not split back into measurement, tags and field.
                guard !measurement.isEmpty, tags.allSatisfy({ !$0.key.isEmpty && !$0.value.isEmpty }) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: Key("measurement"), in: container,
                        debugDescription: "the measurement, tag keys and tag values must not be empty")
                }
                let fieldContainer = try container.nestedContainer(keyedBy: Key.self, forKey: Key("fields"))
                guard !fieldContainer.allKeys.isEmpty else {
                    throw DecodingError.dataCorruptedError(
                        forKey: Key("fields"), in: container, debugDescription: "needs at least one field")
                }
                for field in fieldContainer.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                    guard !field.stringValue.isEmpty else {
                        throw DecodingError.dataCorruptedError(
                            forKey: field, in: fieldContainer, debugDescription: "a field key must not be empty")
                    }
                    let key = LineProtocolSeriesKey.make(
                        measurement: measurement, tags: tags.map { ($0.key, $0.value) }, field: field.stringValue)
                    readings.append(
                        IncomingReading(seriesKey: key, timestamp: timestamp, value: try Self.finite(fieldContainer, field)))
                }
            } else {
                throw DecodingError.dataCorrupted(
                    DecodingError.Context(
                        codingPath: decoder.codingPath,
                        debugDescription: "needs \"series\" and \"value\", or \"measurement\" and \"fields\""))
            }
            for reading in readings {
                let limit = DecodingLimits.default.maximumSeriesKeyBytes
                guard !reading.seriesKey.isEmpty, reading.seriesKey.utf8.count <= limit else {
                    throw DecodingError.dataCorrupted(
                        DecodingError.Context(
                            codingPath: decoder.codingPath,
                            debugDescription: "a series key must be 1...\(limit) bytes, got \(reading.seriesKey.utf8.count)"))
                }
            }
        }

        private static func finite(_ container: KeyedDecodingContainer<Key>, _ key: Key) throws -> Double {
            let value = try container.decode(Double.self, forKey: key)
            guard value.isFinite else {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "must be finite")
            }
            return value
        }

        private static func timestamp(in container: KeyedDecodingContainer<Key>) throws -> Int64? {
            let key = Key("timestamp")
            guard container.contains(key) else { return nil }
            if let nanoseconds = try? container.decode(Int64.self, forKey: key) { return nanoseconds }
            if let text = try? container.decode(String.self, forKey: key), let parsed = RFC3339.nanoseconds(text) {
                return parsed
            }
            throw DecodingError.dataCorruptedError(
                forKey: key, in: container,
                debugDescription: "expected integer nanoseconds since the epoch or an RFC 3339 time")
        }
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }

        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }

        static func refuseUnknown(in container: KeyedDecodingContainer<Key>, allowed: Set<String>) throws {
            for key in container.allKeys where !allowed.contains(key.stringValue) {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: container,
                    debugDescription: "unknown key (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
        }
    }
}
