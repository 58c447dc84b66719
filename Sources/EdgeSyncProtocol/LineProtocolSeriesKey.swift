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
        for (name, value) in tags.sorted(by: { $0.0 < $1.0 }) {
            key += "," + escape(name) + "=" + escape(value)
        }
        return key
    }

    package static func escape(_ text: String) -> String {
        // Backslash, comma, equals sign, space.
        guard text.utf8.contains(where: { $0 == 0x5C || $0 == 0x2C || $0 == 0x3D || $0 == 0x20 }) else {
            return text
        }
        var out = ""
        for character in text {
            if character == "\\" || character == "," || character == "=" || character == " " { out.append("\\") }
            out.append(character)
        }
        return out
    }

    /// Splits a key made by `make` back into its parts; `nil` when `key` is not such a key.
    package static func parse(_ key: String) -> (measurement: String, tags: [(String, String)], field: String)? {
        var parts: [String] = [""]
        var separators: [Character] = []
        var escaped = false
        for character in key {
            if escaped {
                parts[parts.count - 1].append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "," || character == "=" || character == " " {
                separators.append(character)
                parts.append("")
            } else {
                parts[parts.count - 1].append(character)
            }
        }
        // measurement (',' key '=' value)* ' ' field
        guard !escaped, separators.count % 2 == 1, separators.last == " " else { return nil }
        var tags: [(String, String)] = []
        for pair in 0..<separators.count / 2 {
            guard separators[2 * pair] == ",", separators[2 * pair + 1] == "=" else { return nil }
            tags.append((parts[1 + 2 * pair], parts[2 + 2 * pair]))
        }
        guard parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        return (parts[0], tags, parts[parts.count - 1])
    }
}
