/// The series key of a line protocol field: `measurement[,tag=value…] field` with tags sorted by key
/// and `\`, `,`, `=` and space escaped by a backslash in every part, so it maps back to exactly one
/// (measurement, tags, field). Shared by the edge importer, which makes keys, and the collector,
/// which turns them back into line protocol for export.
package enum LineProtocolSeriesKey {
    package static func make(measurement: String, tags: [(String, String)], field: String) -> String {
        prefix(measurement: measurement, tags: tags) + " " + escape(field)
    }

    package static func prefix(measurement: String, tags: [(String, String)]) -> String {
        var key = escape(measurement)
        // Sorted by bytes, not by String comparison (which equates canonically equivalent spellings).
        for (name, value) in tags.sorted(by: { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }) {
            key += "," + escape(name) + "=" + escape(value)
        }
        return key
    }

    /// Backslash, comma, equals sign and space get a backslash in front.
    ///
    /// Works on UTF-8 bytes: iterating Characters would let a grapheme cluster swallow a delimiter
    /// (U+0605 followed by a space is one Character), and the key would not split back.
    package static func escape(_ text: String) -> String {
        guard text.utf8.contains(where: isSpecial) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 4)
        for byte in text.utf8 {
            if isSpecial(byte) { out.append(backslash) }
            out.append(byte)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Splits a key made by `make` back into its parts; `nil` when `key` is not such a key.
    package static func parse(_ key: String) -> (measurement: String, tags: [(String, String)], field: String)? {
        var parts: [[UInt8]] = [[]]
        var separators: [UInt8] = []
        var escaped = false
        for byte in key.utf8 {
            if escaped {
                parts[parts.count - 1].append(byte)
                escaped = false
            } else if byte == backslash {
                escaped = true
            } else if byte == comma || byte == equals || byte == space {
                separators.append(byte)
                parts.append([])
            } else {
                parts[parts.count - 1].append(byte)
            }
        }
        // measurement (',' key '=' value)* ' ' field
        guard !escaped, separators.count % 2 == 1, separators.last == space,
            parts.allSatisfy({ !$0.isEmpty })
        else { return nil }
        let text = parts.map { String(decoding: $0, as: UTF8.self) }
        var tags: [(String, String)] = []
        for pair in 0..<separators.count / 2 {
            guard separators[2 * pair] == comma, separators[2 * pair + 1] == equals else { return nil }
            tags.append((text[1 + 2 * pair], text[2 + 2 * pair]))
        }
        return (text[0], tags, text[text.count - 1])
    }

    private static let backslash = UInt8(ascii: "\\")
    private static let comma = UInt8(ascii: ",")
    private static let equals = UInt8(ascii: "=")
    private static let space = UInt8(ascii: " ")

    private static func isSpecial(_ byte: UInt8) -> Bool {
        byte == backslash || byte == comma || byte == equals || byte == space
    }
}
