import EdgeSyncPostgres
import EdgeSyncSQLite

/// Device tokens in the central database: one token per device, kept only as its SHA-256.
///
/// The functions take a connection from their caller: the command-line tool uses its own, the
/// server's authenticator uses read-only ones.
package enum TokenStore {
    package struct Entry: Hashable, Sendable {
        package var device: String
        /// Unix seconds.
        package var createdAt: Int64
    }

    /// Creates (or replaces) the device's token and returns it; the only time the token is visible.
    /// Throws unless `device` is a device id a token can be made for: 1 to 256 bytes of UTF-8.
    package static func checkDevice(_ device: String) throws(CollectorStorageError) {
        guard !device.isEmpty, device.utf8.count <= 256 else {
            throw CollectorStorageError("device id must be 1 to 256 bytes of UTF-8")
        }
    }

    package static func add(device: String, in database: SQLiteDatabase, now: Int64) throws -> DeviceToken {
        try checkDevice(device)
        let token = DeviceToken.generate()
        let upsert = try database.statement(
            """
            INSERT INTO device_tokens (device, token_hash, created_at) VALUES (?, ?, ?)
            ON CONFLICT (device) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at
            """)
        try upsert.bind(device, at: 1)
        try upsert.bind(bytes: token.hash, at: 2)
        try upsert.bind(now, at: 3)
        try upsert.run()
        return token
    }

    package static func list(in database: SQLiteDatabase) throws -> [Entry] {
        let select = try database.statement("SELECT device, created_at FROM device_tokens ORDER BY device")
        var entries: [Entry] = []
        while try select.step() {
            entries.append(Entry(device: select.text(at: 0) ?? "", createdAt: select.int64(at: 1)))
        }
        return entries
    }

    /// Removes the device's token; `false` when the device had none.
    package static func revoke(device: String, in database: SQLiteDatabase) throws -> Bool {
        let delete = try database.statement("DELETE FROM device_tokens WHERE device = ?")
        try delete.bind(device, at: 1)
        try delete.run()
        return database.changes > 0
    }

    /// The device a presented token belongs to, or `nil` when no stored hash matches.
    package static func device(for token: DeviceToken, in database: SQLiteDatabase) throws -> String? {
        let digest = token.hash
        let select = try database.statement("SELECT device, token_hash FROM device_tokens WHERE token_hash = ?")
        try select.bind(bytes: digest, at: 1)
        guard try select.step() else { return nil }
        let device = select.text(at: 0)
        let stored = select.blob(at: 1)
        select.reset()
        // The index lookup already matched; the constant-time check keeps the decision itself
        // independent of where two digests differ.
        return DeviceToken.digestsMatch(stored, digest) ? device : nil
    }
}

/// The same device tokens in a PostgreSQL database (`device_tokens`, token hashes as `bytea`).
package enum PostgresTokenStore {
    package static func add(device: String, in connection: PostgresConnection, now: Int64) throws -> DeviceToken {
        try TokenStore.checkDevice(device)
        let token = DeviceToken.generate()
        try connection.query(
            """
            INSERT INTO device_tokens (device, token_hash, created_at) VALUES ($1, decode($2, 'hex'), $3)
            ON CONFLICT (device) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at
            """, [device, hexString(token.hash), String(now)])
        return token
    }

    package static func list(in connection: PostgresConnection) throws -> [TokenStore.Entry] {
        let rows = try connection.query("SELECT device, created_at FROM device_tokens ORDER BY device")
        return try (0..<rows.count).map { row in
            TokenStore.Entry(device: rows.string(row, 0) ?? "", createdAt: try rows.requiredInt64(row, 1))
        }
    }

    package static func revoke(device: String, in connection: PostgresConnection) throws -> Bool {
        try connection.query("DELETE FROM device_tokens WHERE device = $1", [device]).affectedRows > 0
    }

    package static func device(for token: DeviceToken, in connection: PostgresConnection) throws -> String? {
        let digest = token.hash
        let rows = try connection.query(
            "SELECT device, encode(token_hash, 'hex') FROM device_tokens WHERE token_hash = decode($1, 'hex')",
            [hexString(digest)])
        guard rows.count == 1, let device = rows.string(0, 0), let stored = rows.string(0, 1) else { return nil }
        return DeviceToken.digestsMatch(Array(stored.utf8), Array(hexString(digest).utf8)) ? device : nil
    }
}
