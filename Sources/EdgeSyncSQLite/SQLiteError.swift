import CSQLite

/// An error reported by SQLite, keeping its extended result code so callers can match by family
/// (`isDiskFull`, `isCorrupt`) and operators can look the number up.
package struct SQLiteError: Error, CustomStringConvertible, Sendable {
    /// The extended result code (`SQLITE_IOERR_FSYNC`, `SQLITE_BUSY_SNAPSHOT`, …).
    package let extendedCode: Int32
    /// SQLite's message for the failure, or the text of `sqlite3_errstr` when there is none.
    package let message: String
    /// The statement or operation that failed, for the log.
    package let context: String?

    package init(extendedCode: Int32, message: String, context: String? = nil) {
        self.extendedCode = extendedCode
        self.message = message
        self.context = context
    }

    /// The primary result code (`SQLITE_IOERR` for every `SQLITE_IOERR_*`).
    package var code: Int32 { extendedCode & 0xff }

    /// The disk or the size cap (`max_page_count`) is full.
    package var isDiskFull: Bool { code == SQLITE_FULL }
    /// The file is not a database or its structure is damaged.
    package var isCorrupt: Bool { code == SQLITE_CORRUPT || code == SQLITE_NOTADB }
    /// The operating system reported a read, write or sync failure.
    package var isIOError: Bool { code == SQLITE_IOERR }
    /// Another connection holds a conflicting lock past the busy timeout.
    package var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }
    package var isConstraintViolation: Bool { code == SQLITE_CONSTRAINT }

    package var description: String {
        var text = "SQLite error \(extendedCode) (\(String(cString: sqlite3_errstr(extendedCode)))): \(message)"
        if let context { text += " [\(context)]" }
        return text
    }
}
