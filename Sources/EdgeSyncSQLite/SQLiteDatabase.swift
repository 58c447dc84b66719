import CSQLite

/// One SQLite connection.
///
/// A connection is not `Sendable`: it belongs to exactly one owner (an `SQLiteConnectionQueue`, or a
/// single thread in a command-line tool) and never leaves it. Statements made with `statement(_:)`
/// are cached for the life of the connection.
package final class SQLiteDatabase {
    /// How a connection is opened. Every property has the default the project relies on.
    package struct Configuration: Sendable {
        package enum Synchronous: String, Sendable, CaseIterable {
            /// No fsync: a power cut can lose committed transactions or corrupt the file.
            case off = "OFF"
            /// In WAL mode: commits survive a process crash; a power cut can lose the last ones.
            case normal = "NORMAL"
            /// In WAL mode: every commit is fsynced before it returns, so it survives a power cut.
            case full = "FULL"
        }

        /// Open without write access (readers of a database that a writer owns).
        package var isReadOnly = false
        /// Create the file when it does not exist (ignored when read-only).
        package var createsFile = true
        /// Write-ahead logging. Checked after it is set: a database that cannot use WAL is an error.
        package var usesWAL = true
        package var synchronous = Synchronous.full
        /// How long a statement waits for another connection's lock before failing with `SQLITE_BUSY`.
        package var busyTimeout = Duration.seconds(5)
        /// `PRAGMA wal_autocheckpoint` in pages; `nil` leaves SQLite's default (1000).
        package var walAutocheckpointPages: Int?
        /// `PRAGMA page_size` for a new database (set before WAL, ignored for an existing file).
        package var pageSize: Int?

        package init() {}
    }

    let handle: OpaquePointer
    package let path: String
    /// `PRAGMA synchronous` in force (the configured level, or the one `withSynchronous` set).
    package private(set) var synchronous: Configuration.Synchronous
    private var statements: [String: SQLiteStatement] = [:]
    private var walHook: WALHookBox?

    /// Opens (or creates) the database at `path` and applies `configuration`.
    package init(path: String, configuration: Configuration = Configuration()) throws(SQLiteError) {
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        if configuration.isReadOnly {
            flags |= SQLITE_OPEN_READONLY
        } else {
            flags |= SQLITE_OPEN_READWRITE
            if configuration.createsFile { flags |= SQLITE_OPEN_CREATE }
        }
        var connection: OpaquePointer?
        let rc = sqlite3_open_v2(path, &connection, flags, nil)
        guard rc == SQLITE_OK, let connection else {
            let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close_v2(connection)
            throw SQLiteError(extendedCode: rc, message: message, context: "open \(path)")
        }
        self.handle = connection
        self.path = path
        self.synchronous = configuration.synchronous
        sqlite3_extended_result_codes(connection, 1)
        let milliseconds =
            configuration.busyTimeout.components.seconds * 1000
            + configuration.busyTimeout.components.attoseconds / 1_000_000_000_000_000
        sqlite3_busy_timeout(connection, Int32(clamping: milliseconds))

        if let pageSize = configuration.pageSize, !configuration.isReadOnly {
            try execute("PRAGMA page_size = \(pageSize)")
        }
        if configuration.usesWAL && !configuration.isReadOnly {
            let mode = try pragmaText("journal_mode = WAL")
            guard mode?.lowercased() == "wal" else {
                throw SQLiteError(
                    extendedCode: SQLITE_CANTOPEN,
                    message: "journal_mode is \(mode ?? "unknown") after asking for WAL",
                    context: "open \(path)"
                )
            }
        }
        try execute("PRAGMA synchronous = \(configuration.synchronous.rawValue)")
        if let pages = configuration.walAutocheckpointPages {
            try execute("PRAGMA wal_autocheckpoint = \(pages)")
        }
    }

    deinit {
        if walHook != nil { sqlite3_wal_hook(handle, nil, nil) }
        statements.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Runs `body` with `PRAGMA synchronous` lowered to `level` (never raised), then restores it.
    ///
    /// In WAL mode a commit made at `normal` is not synced by itself, but the next commit at `full`
    /// (or the next checkpoint) syncs the log, and with it every frame before: for commits whose loss
    /// in a power cut is harmless and that should not each pay a sync (deleting what a peer already
    /// holds durably).
    package func withSynchronous<T>(_ level: Configuration.Synchronous, _ body: () throws -> T) throws -> T {
        let configured = synchronous
        let order: [Configuration.Synchronous] = [.off, .normal, .full]
        guard let wanted = order.firstIndex(of: level), let current = order.firstIndex(of: configured),
            wanted < current
        else { return try body() }
        try execute("PRAGMA synchronous = \(level.rawValue)")
        synchronous = level
        let result: T
        do {
            result = try body()
        } catch {
            try restoreSynchronous(configured)
            throw error
        }
        // A failure to restore is thrown, never swallowed: later commits must not run at the lower level.
        try restoreSynchronous(configured)
        return result
    }

    private func restoreSynchronous(_ level: Configuration.Synchronous) throws(SQLiteError) {
        try execute("PRAGMA synchronous = \(level.rawValue)")
        synchronous = level
    }

    /// Runs one or more SQL statements that take no parameters.
    package func execute(_ sql: String) throws(SQLiteError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        guard rc == SQLITE_OK else {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(message)
            throw SQLiteError(extendedCode: sqlite3_extended_errcode(handle), message: text, context: sql)
        }
    }

    /// A prepared statement for `sql`, cached: hot paths prepare once per connection.
    package func statement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        let statement = try SQLiteStatement(database: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    /// An uncached prepared statement, for SQL that runs once.
    package func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        try SQLiteStatement(database: self, sql: sql)
    }

    package enum TransactionKind: String, Sendable {
        /// Takes the write lock at the first write.
        case deferred = "DEFERRED"
        /// Takes the write lock at BEGIN, so a writer never fails half-way on `SQLITE_BUSY`.
        case immediate = "IMMEDIATE"
    }

    /// Runs `body` in a transaction: committed when `body` returns, rolled back when it throws.
    package func transaction<T, E: Error>(
        _ kind: TransactionKind = .immediate,
        _ body: (SQLiteDatabase) throws(E) -> T
    ) throws -> T {
        try execute("BEGIN \(kind.rawValue)")
        let result: T
        do {
            result = try body(self)
        } catch {
            rollbackQuietly()
            throw error
        }
        do {
            try execute("COMMIT")
        } catch {
            rollbackQuietly()
            throw error
        }
        return result
    }

    /// Rolls back an open transaction, if any; used on error paths where the first error matters.
    package func rollbackQuietly() {
        if sqlite3_get_autocommit(handle) == 0 {
            sqlite3_exec(handle, "ROLLBACK", nil, nil, nil)
        }
    }

    package var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }
    package var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    /// Rows changed by the most recent INSERT, UPDATE or DELETE.
    package var changes: Int { Int(sqlite3_changes64(handle)) }

    /// The first column of the first row of `PRAGMA <body>` as text.
    package func pragmaText(_ body: String) throws(SQLiteError) -> String? {
        let statement = try prepare("PRAGMA \(body)")
        guard try statement.step() else { return nil }
        return statement.text(at: 0)
    }

    /// The first column of the first row of `PRAGMA <body>` as an integer.
    package func pragmaInteger(_ body: String) throws(SQLiteError) -> Int64? {
        let statement = try prepare("PRAGMA \(body)")
        guard try statement.step() else { return nil }
        return statement.int64(at: 0)
    }

    /// The problems `PRAGMA integrity_check` finds, at most `limit`; empty when the file is sound.
    package func integrityProblems(limit: Int = 20) throws(SQLiteError) -> [String] {
        let statement = try prepare("PRAGMA integrity_check(\(limit))")
        var problems: [String] = []
        while try statement.step() {
            let line = statement.text(at: 0) ?? ""
            if line != "ok" { problems.append(line) }
        }
        return problems
    }

    /// The problems `PRAGMA quick_check` finds, at most `limit`: the structural checks of
    /// `integrity_check` without index cross-checks, fast enough to run at every open.
    package func quickCheckProblems(limit: Int = 20) throws(SQLiteError) -> [String] {
        let statement = try prepare("PRAGMA quick_check(\(limit))")
        var problems: [String] = []
        while try statement.step() {
            let line = statement.text(at: 0) ?? ""
            if line != "ok" { problems.append(line) }
        }
        return problems
    }

    /// The problems `PRAGMA quick_check` finds in `table` (and its indexes), or in the whole file
    /// when `table` is nil, at most `limit`; `nil` when the check did not finish by `deadline` (it
    /// is interrupted through SQLite's progress handler, so a big file cannot hold the caller).
    package func quickCheckProblems(
        table: String? = nil, limit: Int = 20, deadline: ContinuousClock.Instant
    ) throws(SQLiteError) -> [String]? {
        let argument = table.map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" } ?? String(limit)
        let statement = try prepare("PRAGMA quick_check(\(argument))")
        let box = DeadlineBox(deadline)
        sqlite3_progress_handler(
            handle, 4096,
            { context in
                guard let context else { return 0 }
                return Unmanaged<DeadlineBox>.fromOpaque(context).takeUnretainedValue().deadline < .now ? 1 : 0
            }, Unmanaged.passUnretained(box).toOpaque())
        defer { sqlite3_progress_handler(handle, 0, nil, nil) }
        var problems: [String] = []
        do {
            while try statement.step() {
                let line = statement.text(at: 0) ?? ""
                if line != "ok" { problems.append(line) }
            }
        } catch let error where error.code == SQLITE_INTERRUPT {
            return nil
        }
        return problems
    }

    package enum CheckpointMode: Int32, Sendable {
        case passive = 0  // SQLITE_CHECKPOINT_PASSIVE
        case full = 1  // SQLITE_CHECKPOINT_FULL
        case restart = 2  // SQLITE_CHECKPOINT_RESTART
        /// Also truncates the WAL file to zero bytes, returning its space to the file system.
        case truncate = 3  // SQLITE_CHECKPOINT_TRUNCATE
    }

    /// Copies the WAL into the database file. Returns (frames in the log, frames checkpointed).
    @discardableResult
    package func checkpoint(_ mode: CheckpointMode) throws(SQLiteError) -> (logFrames: Int, checkpointed: Int) {
        var logFrames: Int32 = 0
        var checkpointed: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(handle, nil, mode.rawValue, &logFrames, &checkpointed)
        guard rc == SQLITE_OK else { throw error(rc, context: "wal_checkpoint") }
        return (Int(logFrames), Int(checkpointed))
    }

    /// Calls `body` with the number of frames in the WAL after each commit of this connection.
    ///
    /// Installing a hook replaces SQLite's automatic checkpoints on this connection (they use the
    /// same hook, and a later `PRAGMA wal_autocheckpoint` replaces this hook). With
    /// `checkpointingAt` the hook does what SQLite's own one does: a passive checkpoint once the
    /// log holds that many frames. Without it the owner checkpoints, for example from another
    /// connection on another thread.
    package func onWALCommit(checkpointingAt pages: Int? = nil, _ body: @escaping (Int) -> Void) {
        let box = WALHookBox(body, checkpointPages: pages)
        walHook = box
        sqlite3_wal_hook(
            handle,
            { context, connection, name, frames in
                guard let context else { return SQLITE_OK }
                let box = Unmanaged<WALHookBox>.fromOpaque(context).takeUnretainedValue()
                box.body(Int(frames))
                if let pages = box.checkpointPages, Int(frames) >= pages {
                    // As SQLite's default hook: a busy or failed checkpoint leaves the frames for the next.
                    sqlite3_wal_checkpoint_v2(connection, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
                }
                return SQLITE_OK
            }, Unmanaged.passUnretained(box).toOpaque())
    }

    func error(_ rc: Int32, context: String?) -> SQLiteError {
        let extended = sqlite3_extended_errcode(handle)
        // sqlite3_extended_errcode reflects the last failing API call; prefer it when it agrees.
        let code = (extended & 0xff) == (rc & 0xff) ? extended : rc
        return SQLiteError(extendedCode: code, message: String(cString: sqlite3_errmsg(handle)), context: context)
    }
}

/// The deadline a progress handler compares against, kept alive for the statement it watches.
private final class DeadlineBox {
    let deadline: ContinuousClock.Instant
    init(_ deadline: ContinuousClock.Instant) { self.deadline = deadline }
}

/// Keeps a WAL hook's closure alive for as long as the connection holds it.
private final class WALHookBox {
    let body: (Int) -> Void
    let checkpointPages: Int?
    init(_ body: @escaping (Int) -> Void, checkpointPages: Int?) {
        self.body = body
        self.checkpointPages = checkpointPages
    }
}

@available(*, unavailable, message: "a connection belongs to one owner; use SQLiteConnectionQueue to share it")
extension SQLiteDatabase: Sendable {}
