import Foundation

/// A JSON value as read from a configuration file.
package enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    package var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A JSON configuration file read key by key, so that every setting the program does not know is
/// reported by name (a typo never silently falls back to a default).
///
/// Keys are addressed by dotted paths (`"limits.max_bytes"`); call `rejectUnknownKeys()` after
/// reading every known key.
package final class ConfigurationFile {
    package let source: String
    private let root: [String: JSONValue]
    private var consumed: Set<String> = []

    /// Parses `bytes` (the file's contents); `source` names the file in errors.
    package init(bytes: some Collection<UInt8>, source: String) throws(UsageError) {
        self.source = source
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw UsageError("not valid JSON (\(Self.describe(error)))", setting: source)
        }
        guard case .object(let object) = value else {
            throw UsageError("the top level must be a JSON object, found \(value.kindName)", setting: source)
        }
        self.root = object
    }

    /// Reads and parses the file at `path`; files over `maximumBytes` are refused.
    package convenience init(path: String, maximumBytes: Int = 1 << 20) throws(UsageError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw UsageError("cannot read the configuration file (\(error.localizedDescription))", setting: path)
        }
        guard data.count <= maximumBytes else {
            throw UsageError("configuration file is larger than \(maximumBytes) bytes", setting: path)
        }
        try self.init(bytes: data, source: path)
    }

    /// The raw value at `path`, marking it as known; nil when absent or JSON null.
    package func value(_ path: String) -> JSONValue? {
        consumed.insert(path)
        var object = root
        let parts = path.split(separator: ".").map(String.init)
        for (index, part) in parts.enumerated() {
            guard let value = object[part] else { return nil }
            if index == parts.count - 1 { return value == .null ? nil : value }
            guard case .object(let inner) = value else { return nil }
            object = inner
        }
        return nil
    }

    package func string(_ path: String) throws(UsageError) -> String? {
        guard let value = value(path) else { return nil }
        guard case .string(let text) = value else { throw mismatch(path, "a string", value) }
        return text
    }

    package func bool(_ path: String) throws(UsageError) -> Bool? {
        guard let value = value(path) else { return nil }
        guard case .bool(let flag) = value else { throw mismatch(path, "true or false", value) }
        return flag
    }

    /// An integer within `range`.
    package func integer(_ path: String, in range: ClosedRange<Int64> = .min ... .max) throws(UsageError) -> Int64? {
        guard let value = value(path) else { return nil }
        guard case .integer(let number) = value else { throw mismatch(path, "an integer", value) }
        guard range.contains(number) else {
            throw UsageError("\(number) is out of range \(range.lowerBound)...\(range.upperBound)", setting: key(path))
        }
        return number
    }

    /// A finite number within `range`.
    package func number(
        _ path: String, in range: ClosedRange<Double> = -.greatestFiniteMagnitude ... .greatestFiniteMagnitude
    )
        throws(UsageError) -> Double?
    {
        guard let value = value(path) else { return nil }
        let number: Double
        switch value {
        case .integer(let integer): number = Double(integer)
        case .number(let double): number = double
        default: throw mismatch(path, "a number", value)
        }
        guard range.contains(number) else {
            throw UsageError("\(number) is out of range \(range.lowerBound)...\(range.upperBound)", setting: key(path))
        }
        return number
    }

    /// A string converted by `convert`, which returns nil when the text is not acceptable;
    /// `expected` describes acceptable values for the error message.
    package func string<T>(_ path: String, as expected: String, _ convert: (String) -> T?) throws(UsageError) -> T? {
        guard let text = try string(path) else { return nil }
        guard let converted = convert(text) else {
            throw UsageError("expected \(expected), found \"\(text)\"", setting: key(path))
        }
        return converted
    }

    package func stringArray(_ path: String) throws(UsageError) -> [String]? {
        guard let value = value(path) else { return nil }
        guard case .array(let elements) = value else { throw mismatch(path, "an array of strings", value) }
        var strings: [String] = []
        for element in elements {
            guard case .string(let text) = element else { throw mismatch(path, "an array of strings", value) }
            strings.append(text)
        }
        return strings
    }

    /// Fails naming the first key (in sorted order) that no getter asked for.
    package func rejectUnknownKeys() throws(UsageError) {
        if let unknown = unknownKeys(in: root, prefix: "").sorted().first {
            throw UsageError("unknown configuration key", setting: key(unknown))
        }
    }

    private func unknownKeys(in object: [String: JSONValue], prefix: String) -> [String] {
        object.flatMap { name, value -> [String] in
            let path = prefix.isEmpty ? name : "\(prefix).\(name)"
            if consumed.contains(path) { return [] }
            // A section no getter looked inside is unknown as a whole, even when empty (`"limts": {}`).
            guard case .object(let inner) = value, consumed.contains(where: { $0.hasPrefix(path + ".") }) else {
                return [path]
            }
            return unknownKeys(in: inner, prefix: path)
        }
    }

    private func key(_ path: String) -> String { "\(source): \(path)" }

    private func mismatch(_ path: String, _ expected: String, _ found: JSONValue) -> UsageError {
        UsageError("expected \(expected), found \(found.kindName)", setting: key(path))
    }

    private static func describe(_ error: any Error) -> String {
        guard let decoding = error as? DecodingError else { return "\(error)" }
        switch decoding {
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return underlying ?? context.debugDescription
        default:
            return "\(decoding)"
        }
    }
}

@available(*, unavailable, message: "read a configuration file on one thread, then pass on the settings")
extension ConfigurationFile: Sendable {}
