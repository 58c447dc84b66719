import Foundation

/// What the agent answers on InfluxDB 1.x's `/query`: it stores writes and queries nothing, so it
/// answers as InfluxDB does for a database it does not have, in a shape every client prints.
///
/// Per statement (`;`-separated, outside quotes), as InfluxDB 1.x would for a server without the
/// database: `CREATE DATABASE` (Telegraf and the 1.x CLI send it before writing) and the other
/// `CREATE`/`DROP`/`ALTER` statements succeed and do nothing (any database name is accepted for
/// writes); `SHOW DATABASES` answers an empty `databases` list; anything else (`SELECT`,
/// `SHOW MEASUREMENTS`, …) gets `database not found: NAME` (or `database name required` without
/// `db`), which the `influx` CLI prints as `ERR: …` and client libraries raise. The HTTP status is
/// 200 with the error inside the statement's result, exactly as InfluxDB answers.
package enum InfluxQueryAnswer {
    /// At most this many statements are answered; more is a request error.
    package static let maximumStatements = 100

    /// The JSON body for the statements in `query`, or nil when there are more than `maximumStatements`.
    package static func body(query: String, database: String?) -> String? {
        let statements = split(query)
        guard statements.count <= maximumStatements else { return nil }
        let results = statements.enumerated().map { id, statement in
            result(id: id, statement: statement, database: database)
        }
        return document(Document(results: results))
    }

    private struct Document: Encodable {
        var results: [Result]
    }

    private struct Result: Encodable {
        var statementID: Int
        var series: [Series]?
        var error: String?

        enum CodingKeys: String, CodingKey {
            case statementID = "statement_id"
            case series, error
        }
    }

    private struct Series: Encodable {
        var name: String
        var columns: [String]
    }

    private static func result(id: Int, statement: [UInt8], database: String?) -> Result {
        let words = statement.split(whereSeparator: { $0 == .space || $0 == .tab || $0 == 0x0A || $0 == 0x0D })
        let first = words.first.map(Array.init) ?? []
        let second = words.dropFirst().first.map(Array.init) ?? []
        if isKeyword(first, "CREATE") || isKeyword(first, "DROP") || isKeyword(first, "ALTER") {
            return Result(statementID: id)
        }
        if isKeyword(first, "SHOW"), isKeyword(second, "DATABASES") {
            return Result(statementID: id, series: [Series(name: "databases", columns: ["name"])])
        }
        guard let database, !database.isEmpty else {
            return Result(statementID: id, error: "database name required")
        }
        let hint = "edge-agent stores writes and answers no queries; query the collector"
        return Result(statementID: id, error: "database not found: \(database) (\(hint))")
    }

    /// ASCII-case-insensitive comparison of a word with an upper-case keyword, byte by byte.
    private static func isKeyword(_ word: [UInt8], _ keyword: StaticString) -> Bool {
        guard word.count == keyword.utf8CodeUnitCount else { return false }
        return keyword.withUTF8Buffer { expected in
            zip(word, expected).allSatisfy { byte, upper in
                (byte >= 0x61 && byte <= 0x7A ? byte - 0x20 : byte) == upper
            }
        }
    }

    /// The statements of `query`: split on `;` outside single and double quotes, blank ones dropped.
    private static func split(_ query: String) -> [[UInt8]] {
        var statements: [[UInt8]] = []
        var current: [UInt8] = []
        var quote: UInt8?
        for byte in query.utf8 {
            if let open = quote {
                if byte == open { quote = nil }
            } else if byte == UInt8(ascii: "'") || byte == .quote {
                quote = byte
            } else if byte == UInt8(ascii: ";") {
                statements.append(current)
                current.removeAll()
                continue
            }
            current.append(byte)
        }
        statements.append(current)
        return statements.filter { statement in
            statement.contains { $0 != .space && $0 != .tab && $0 != 0x0A && $0 != 0x0D }
        }
    }

    private static func document(_ value: Document) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? #"{"results":[]}"#
    }
}
