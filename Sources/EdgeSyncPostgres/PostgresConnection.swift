import CPostgres
import Foundation

/// One libpq connection, used from one thread at a time (it is not `Sendable`; `PostgresPool`
/// gives each connection its own serial queue).
///
/// Parameters are sent as text and results read as text: PostgreSQL prints `double precision`
/// shortest-exact since version 12, so values round-trip bit for bit. Bulk rows go in with COPY
/// (`copy(_:format:_:)`).
package final class PostgresConnection {
    private let handle: OpaquePointer

    /// Connects to `url` (`postgres://user:password@host:port/database?...` or a libpq keyword
    /// string). `connectTimeoutSeconds` and `applicationName` apply unless the URL sets them.
    package init(url: String, applicationName: String = "edge-sync", connectTimeoutSeconds: Int = 5)
        throws(PostgresError)
    {
        // libpq's own parse errors quote the URL, password included: check it first and say only
        // that it is malformed.
        var parseError: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(url, &parseError) else {
            if let parseError { PQfreemem(parseError) }
            throw PostgresError(
                "the database URL \(postgresRedactedURL(url)) is malformed (not shown: it may hold a password)")
        }
        PQconninfoFree(parsed)
        // Keywords are processed in order and the last value wins, so the URL (expanded from
        // `dbname`) overrides the defaults given before it, except `client_encoding`, which comes
        // after it: every collector must send the same bytes for the same device and series. TCP keepalives and a user timeout make
        // a database that vanished without closing the connection (a dead host, a dropped route)
        // an error within about half a minute instead of a writer blocked for hours.
        let keys = [
            "connect_timeout", "application_name", "keepalives_idle", "keepalives_interval", "keepalives_count",
            "tcp_user_timeout", "dbname", "client_encoding",
        ]
        let values = [String(connectTimeoutSeconds), applicationName, "10", "5", "3", "30000", url, "UTF8"]
        let connection: OpaquePointer? = withCStringArray(keys) { keys in
            withCStringArray(values) { values in PQconnectdbParams(keys, values, 1) }
        }
        guard let connection else { throw PostgresError("out of memory connecting", isConnectionFailure: true) }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.message(PQerrorMessage(connection))
            PQfinish(connection)
            // libpq's message spans lines ("…failed: Connection refused\n\tIs the server running…"):
            // one line for the log.
            var oneLine = message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .joined(separator: " ")
            if let password = URLComponents(string: url)?.password, !password.isEmpty {
                oneLine = oneLine.replacingOccurrences(of: password, with: "***")
            }
            throw PostgresError(
                "cannot connect to \(postgresRedactedURL(url)): \(oneLine)", isConnectionFailure: true)
        }
        cpostgres_silence_notices(connection)
        handle = connection
    }

    deinit { PQfinish(handle) }

    /// Whether the connection was lost (the server closed it, restarted, or the network broke).
    package var isBroken: Bool { PQstatus(handle) != CONNECTION_OK }

    /// Runs one or more statements without parameters (schema scripts, `BEGIN`, `COMMIT`).
    package func execute(_ sql: String) throws(PostgresError) {
        let result = PQexec(handle, sql)
        _ = try check(result, sql: sql)
    }

    /// Runs one statement with text parameters (`$1`, `$2`...; `nil` is NULL) and returns its rows.
    @discardableResult
    package func query(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresRows {
        // A C string ends at the first NUL: a value holding one would silently be cut short.
        if parameters.contains(where: { $0?.utf8.contains(0) == true }) {
            throw PostgresError("a parameter contains a NUL character, which PostgreSQL text cannot hold")
        }
        let result: OpaquePointer? = withOptionalCStringArray(parameters) { values in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        return try check(result, sql: sql)
    }

    /// Runs `body` inside `BEGIN` ... `COMMIT`; rolls back when it throws (when the connection
    /// still stands) and rethrows.
    package func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body(self)
            try commit()
            return value
        } catch {
            if !isBroken { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// `COMMIT`, checking that it committed: in a transaction that already failed, PostgreSQL
    /// answers COMMIT with a successful "ROLLBACK".
    package func commit() throws(PostgresError) {
        let result = PQexec(handle, "COMMIT")
        let rows = try check(result, sql: "COMMIT")
        guard rows.commandStatus == "COMMIT" else {
            throw PostgresError("COMMIT rolled back: the transaction had failed (\(rows.commandStatus))")
        }
    }

    /// Streams rows into `COPY ... FROM STDIN`: `sql` is the COPY statement (its `FORMAT` must match
    /// `format`), `body` appends rows to the writer it is given. Returns the number of rows copied.
    /// When `body` throws, the copy is aborted and nothing of it is stored.
    @discardableResult
    package func copy(
        _ sql: String, format: PostgresCopyFormat, _ body: (PostgresCopyWriter) throws -> Void
    ) throws -> Int {
        let start = PQexec(handle, sql)
        guard let start, PQresultStatus(start) == PGRES_COPY_IN else {
            // Not a COPY: `check` takes over the result (freeing it once) and throws the server's
            // error when there is one.
            _ = try check(start, sql: sql)
            throw PostgresError("\(sql.prefix(60)) did not start a COPY FROM STDIN")
        }
        PQclear(start)
        let writer = PostgresCopyWriter(connection: self, format: format)
        do {
            try body(writer)
            try writer.finish()
        } catch {
            _ = PQputCopyEnd(handle, "aborted by the client")
            drainResults()
            throw error
        }
        guard PQputCopyEnd(handle, nil) == 1 else { throw connectionError("ending COPY") }
        let result = PQgetResult(handle)
        let rows = try check(result, sql: sql)
        drainResults()
        return rows.affectedRows
    }

    /// Sends `bytes` as COPY data; blocks until libpq has queued them.
    func sendCopyData(_ bytes: UnsafeRawBufferPointer) throws(PostgresError) {
        guard !bytes.isEmpty else { return }
        let sent = bytes.withMemoryRebound(to: CChar.self) { chars in
            PQputCopyData(handle, chars.baseAddress, Int32(chars.count))
        }
        guard sent == 1 else { throw connectionError("sending COPY data") }
    }

    private func drainResults() {
        while let result = PQgetResult(handle) { PQclear(result) }
    }

    private func connectionError(_ doing: String) -> PostgresError {
        PostgresError(
            "\(doing): \(Self.message(PQerrorMessage(handle)))", isConnectionFailure: isBroken)
    }

    /// Turns a result into rows, or into the error it reports (and clears it then).
    private func check(_ result: OpaquePointer?, sql: String) throws(PostgresError) -> PostgresRows {
        guard let result else {
            throw PostgresError(
                "no result: \(Self.message(PQerrorMessage(handle)))", isConnectionFailure: true)
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(result)
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            var message = Self.message(PQresultErrorMessage(result))
            if message.isEmpty { message = Self.message(PQerrorMessage(handle)) }
            PQclear(result)
            throw PostgresError(
                message, sqlState: state, isConnectionFailure: state == nil && isBroken)
        }
    }

    static func message(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "" }
        var message = String(cString: text)
        while message.last?.isNewline == true || message.last == " " { message.removeLast() }
        return message
    }
}

/// The rows of one statement's result, read as text. Owns the libpq result.
package final class PostgresRows {
    private let result: OpaquePointer

    init(_ result: OpaquePointer) { self.result = result }
    deinit { PQclear(result) }

    package var count: Int { Int(PQntuples(result)) }

    /// The command tag (`INSERT 0 3`, `COMMIT`, `ROLLBACK`...).
    package var commandStatus: String { PQcmdStatus(result).map { String(cString: $0) } ?? "" }

    /// Rows a command changed or copied (`INSERT`, `UPDATE`, `COPY`...), 0 when it does not say.
    package var affectedRows: Int {
        guard let text = PQcmdTuples(result) else { return 0 }
        return Int(String(cString: text)) ?? 0
    }

    package func isNull(_ row: Int, _ column: Int) -> Bool {
        PQgetisnull(result, Int32(row), Int32(column)) == 1
    }

    package func string(_ row: Int, _ column: Int) -> String? {
        if isNull(row, column) { return nil }
        return String(cString: PQgetvalue(result, Int32(row), Int32(column)))
    }

    /// The column as a 64-bit integer; `nil` for NULL.
    package func int64(_ row: Int, _ column: Int) throws(PostgresError) -> Int64? {
        if isNull(row, column) { return nil }
        guard let value = Int64(String(cString: PQgetvalue(result, Int32(row), Int32(column)))) else {
            throw PostgresError("column \(column) of row \(row) is not a 64-bit integer")
        }
        return value
    }

    /// The column as a double (`NaN`, `Infinity`, `-Infinity` included); `nil` for NULL.
    package func double(_ row: Int, _ column: Int) throws(PostgresError) -> Double? {
        if isNull(row, column) { return nil }
        let text = String(cString: PQgetvalue(result, Int32(row), Int32(column)))
        switch text {
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        case "NaN": return .nan
        default:
            guard let value = Double(text) else {
                throw PostgresError("column \(column) of row \(row) is not a number: \(text.prefix(40))")
            }
            return value
        }
    }

    /// A column that must not be NULL, as a 64-bit integer.
    package func requiredInt64(_ row: Int, _ column: Int) throws(PostgresError) -> Int64 {
        guard let value = try int64(row, column) else {
            throw PostgresError("column \(column) of row \(row) is unexpectedly NULL")
        }
        return value
    }
}

/// Calls `body` with a NULL-terminated array of C strings that live for the call.
private func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    withOptionalCStringArray(strings + [nil]) { pointers in body(pointers!) }
}

/// Calls `body` with an array of C strings (NULL for `nil`) that live for the call; `nil` when empty.
private func withOptionalCStringArray<R>(
    _ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R
) -> R {
    if strings.isEmpty { return body(nil) }
    // One buffer holding every string with its terminator, then pointers into it.
    var storage: [CChar] = []
    var offsets: [Int?] = []
    for string in strings {
        guard let string else {
            offsets.append(nil)
            continue
        }
        offsets.append(storage.count)
        storage.append(contentsOf: string.utf8CString)
    }
    return storage.withUnsafeBufferPointer { buffer in
        let pointers: [UnsafePointer<CChar>?] = offsets.map { offset in offset.map { buffer.baseAddress! + $0 } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
    }
}
