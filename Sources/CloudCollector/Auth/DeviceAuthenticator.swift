import EdgeSyncPostgres
import EdgeSyncSQLite
import HTTPCore

/// Resolves `Authorization: Bearer <token>` to the device the token belongs to, on connections of
/// their own so authentication never waits for the writer.
package final class DeviceAuthenticator: Sendable {
    private let lookup: @Sendable (DeviceToken) async throws -> String?

    /// Opens `readerCount` read-only connections to the SQLite database at `path` (which must exist).
    package init(databasePath path: String, readerCount: Int = 2) throws {
        let readers = try SQLiteReaderPool(path: path, count: readerCount, label: "cloud-collector.auth")
        lookup = { token in try await readers.run { db in try TokenStore.device(for: token, in: db) } }
    }

    /// Looks tokens up in PostgreSQL through `pool`.
    package init(postgres pool: PostgresPool) {
        lookup = { token in try await pool.run { connection in try PostgresTokenStore.device(for: token, in: connection) } }
    }

    /// The device of the request's bearer token.
    ///
    /// - Throws: `CollectorError` 401 when the header is missing, malformed or names no stored token.
    package func device(forAuthorization header: String?) async throws -> String {
        guard let header else {
            throw CollectorError(.unauthorized, "unauthorized", "missing Authorization: Bearer <token>")
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, ASCIICase.equal(parts[0], "bearer") else {
            throw CollectorError(.unauthorized, "unauthorized", "Authorization must be \"Bearer <token>\"")
        }
        let token = DeviceToken(text: String(parts[1]).trimmingSpaces())
        let device = try await lookup(token)
        guard let device else {
            throw CollectorError(.unauthorized, "unauthorized", "unknown or revoked token")
        }
        return device
    }
}

extension String {
    func trimmingSpaces() -> String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return String(text)
    }
}
