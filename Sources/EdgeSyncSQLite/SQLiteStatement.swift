import CSQLite

/// A prepared statement. Belongs to the `SQLiteDatabase` that made it and shares its owner.
package final class SQLiteStatement {
    let handle: OpaquePointer
    private unowned let database: SQLiteDatabase
    package let sql: String

    init(database: SQLiteDatabase, sql: String) throws(SQLiteError) {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(database.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw database.error(rc, context: sql)
        }
        self.handle = statement
        self.database = database
        self.sql = sql
    }

    deinit {
        sqlite3_finalize(handle)
    }

    // MARK: Binding (indices start at 1, as in SQLite)

    package func bind(_ value: Int64, at index: Int32) throws(SQLiteError) {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    package func bind(_ value: Int, at index: Int32) throws(SQLiteError) {
        try bind(Int64(value), at: index)
    }

    package func bind(_ value: Double, at index: Int32) throws(SQLiteError) {
        try check(sqlite3_bind_double(handle, index, value))
    }

    package func bind(_ value: String, at index: Int32) throws(SQLiteError) {
        var value = value
        let rc = value.withUTF8 { utf8 in
            csqlite_bind_text_transient(handle, index, utf8.baseAddress, Int32(utf8.count))
        }
        try check(rc)
    }

    /// Binds a copy of the bytes as a blob (an empty buffer binds a zero-length blob, not NULL).
    package func bind(bytes: UnsafeRawBufferPointer, at index: Int32) throws(SQLiteError) {
        let rc: Int32
        if let base = bytes.baseAddress {
            rc = csqlite_bind_blob_transient(handle, index, base, Int32(bytes.count))
        } else {
            rc = sqlite3_bind_zeroblob(handle, index, 0)
        }
        try check(rc)
    }

    package func bind(bytes: [UInt8], at index: Int32) throws(SQLiteError) {
        let rc = bytes.withUnsafeBytes { buffer in
            buffer.baseAddress.map { csqlite_bind_blob_transient(handle, index, $0, Int32(buffer.count)) }
                ?? sqlite3_bind_zeroblob(handle, index, 0)
        }
        try check(rc)
    }

    package func bindNull(at index: Int32) throws(SQLiteError) {
        try check(sqlite3_bind_null(handle, index))
    }

    // MARK: Stepping

    /// Advances to the next row; `false` when the statement is done.
    @discardableResult
    package func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            // The statement is left reset so a later use starts cleanly.
            sqlite3_reset(handle)
            throw database.error(rc, context: sql)
        }
    }

    /// Resets the statement and clears its bindings so it can run again.
    package func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Runs a statement that returns no rows (or whose rows are ignored), then resets it.
    package func run() throws(SQLiteError) {
        defer { reset() }
        while try step() {}
    }

    // MARK: Columns (indices start at 0, as in SQLite)

    package func int64(at column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    package func double(at column: Int32) -> Double { sqlite3_column_double(handle, column) }
    package func isNull(at column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    package func text(at column: Int32) -> String? {
        guard let pointer = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    /// Lends the column's bytes without copying; valid only inside `body`.
    package func withBlob<T, E: Error>(
        at column: Int32,
        _ body: (UnsafeRawBufferPointer) throws(E) -> T
    ) throws(E) -> T {
        let pointer = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        return try body(UnsafeRawBufferPointer(start: count > 0 ? pointer : nil, count: count))
    }

    /// The size of a blob or text column in bytes, without copying it.
    package func byteCount(at column: Int32) -> Int { Int(sqlite3_column_bytes(handle, column)) }

    package func blob(at column: Int32) -> [UInt8] {
        withBlob(at: column) { Array($0) }
    }

    private func check(_ rc: Int32) throws(SQLiteError) {
        guard rc == SQLITE_OK else { throw database.error(rc, context: sql) }
    }
}

@available(*, unavailable, message: "a statement belongs to its connection's owner")
extension SQLiteStatement: Sendable {}
