import EdgeSyncLogging
import EdgeSyncSQLite
import Foundation
import Synchronization

/// Whether the embedded database can be trusted with new readings: checked with `PRAGMA
/// quick_check` when the collector starts and again, one table at a time, while it runs.
///
/// A 2xx tells a gateway to delete its only copy, so once damage is found it sticks: batches are
/// refused with 503 (the edge keeps its readings and retries) and `/readyz` fails, until an operator
/// has restored or recovered the file and restarted the collector.
package final class DatabaseIntegrity: Sendable {
    package struct Configuration: Sendable {
        /// How long the whole-file check at start may take. A file too big to check in this time
        /// gets the bookkeeping tables that every acknowledgement depends on checked instead (small
        /// whatever the number of readings), and the rest is left to the background check.
        package var startupBudget = Duration.seconds(10)
        /// Pause between two tables of the background check; `nil` turns it off.
        package var backgroundInterval: Duration? = .seconds(60)

        package init() {}
    }

    /// The tables an acknowledgement depends on besides `readings` and `series_blocks`: received
    /// ranges, streams, series, tokens. Checked at start even when the whole file cannot be.
    static let bookkeepingTables = [
        "collector_schema", "streams", "received_ranges", "dropped_ranges", "series", "stream_stats", "device_tokens",
    ]

    package let databasePath: String
    private let configuration: Configuration
    private let damage = Mutex<String?>(nil)
    private let logger: Logger
    /// A read-only connection of its own, so checks never hold the writer.
    private let connection: SQLiteConnectionQueue?
    private let nextTable = Mutex(0)

    /// A check that never finds anything: PostgreSQL checks its own pages.
    package init() {
        databasePath = ""
        configuration = Configuration()
        logger = .discard
        connection = nil
    }

    /// Runs the startup check of the database at `path` (which must exist) before returning.
    package init(
        databasePath path: String, configuration: Configuration = Configuration(),
        logger: Logger
    ) throws {
        databasePath = path
        self.configuration = configuration
        self.logger = logger
        var options = SQLiteDatabase.Configuration()
        options.isReadOnly = true
        options.createsFile = false
        let connection = try Self.open(path, options)
        self.connection = connection
        try connection.runBlocking { database in try startupCheck(database) }
    }

    private static func open(_ path: String, _ options: SQLiteDatabase.Configuration) throws -> SQLiteConnectionQueue {
        let result = Result { () throws(SQLiteError) in
            try SQLiteConnectionQueue(path: path, configuration: options, label: "cloud-collector.integrity")
        }
        switch result {
        case .success(let connection): return connection
        case .failure(let error) where error.isCorrupt:
            throw CollectorStorageError(advice(path: path, finding: "\(error)"))
        case .failure(let error): throw error
        }
    }

    /// Why the database must not take writes, or nil.
    package var problem: String? { damage.withLock { $0 } }

    /// Records damage found anywhere (a check, or SQLite reporting corruption to the writer).
    package func markDamaged(_ finding: String) {
        let message = Self.advice(path: databasePath, finding: finding)
        let isNew = damage.withLock { current in
            guard current == nil else { return false }
            current = message
            return true
        }
        if isNew {
            logger.error(
                "database_damaged",
                [
                    "file": "\(databasePath)", "finding": .quoted(finding),
                    "action": .quoted(
                        "refusing batches (503); stop the collector, restore \(databasePath) from a backup"
                            + " or recover it (sqlite3 \(databasePath) .recover), then start it again"),
                ])
        }
    }

    /// Checks the tables one after another, one per `backgroundInterval`, until cancelled.
    package func run() async {
        guard let interval = configuration.backgroundInterval, connection != nil else { return }
        while !Task.isCancelled, problem == nil {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            await checkNextTable()
        }
    }

    /// One step of the background check: the next table in `sqlite_master` order, and its indexes.
    package func checkNextTable() async {
        guard let connection else { return }
        do {
            let finding: String? = try await connection.run { database in
                let names = try database.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                var tables: [String] = []
                while try names.step() { tables.append(names.text(at: 0) ?? "") }
                guard !tables.isEmpty else { return nil }
                let table = self.nextTable.withLock { next in
                    defer { next = (next + 1) % tables.count }
                    return tables[next % tables.count]
                }
                // No deadline: this runs beside the writer on its own connection and thread.
                let problems = try database.quickCheckProblems(table: table, deadline: .now + .seconds(86_400)) ?? []
                return problems.isEmpty ? nil : "quick_check(\(table)): " + problems.prefix(3).joined(separator: "; ")
            }
            if let finding { markDamaged(finding) }
        } catch let error as SQLiteError where error.isCorrupt {
            markDamaged("\(error)")
        } catch {
            logger.warning("integrity_check_failed", ["file": "\(databasePath)", "error": .quoted(error)])
        }
    }

    private func startupCheck(_ database: SQLiteDatabase) throws {
        do {
            try quickCheckAtStart(database)
        } catch {
            guard error.isCorrupt else { throw error }
            markDamaged("\(error)")
        }
    }

    private func quickCheckAtStart(_ database: SQLiteDatabase) throws(SQLiteError) {
        let start = ContinuousClock.now
        if let problems = try database.quickCheckProblems(deadline: start + configuration.startupBudget) {
            if !problems.isEmpty { markDamaged("quick_check: " + problems.prefix(3).joined(separator: "; ")) }
            return
        }
        let interval = configuration.backgroundInterval.map { "one table every \($0)" } ?? "off"
        logger.warning(
            "integrity_check_partial",
            [
                "file": "\(databasePath)", "reason": .quoted("quick_check did not finish within \(configuration.startupBudget)"),
                "checked": .quoted("bookkeeping tables"), "background_check": .quoted(interval),
            ])
        let existing = try database.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        var tables = Set<String>()
        while try existing.step() { tables.insert(existing.text(at: 0) ?? "") }
        for table in Self.bookkeepingTables where tables.contains(table) {
            let problems = try database.quickCheckProblems(table: table, deadline: .now + .seconds(86_400)) ?? []
            if !problems.isEmpty {
                markDamaged("quick_check(\(table)): " + problems.prefix(3).joined(separator: "; "))
                return
            }
        }
    }

    /// What an operator reads: which file, what is wrong, what the collector does, what to do.
    static func advice(path: String, finding: String) -> String {
        "the database file \(path) is damaged (\(finding)); the collector refuses batches so gateways keep their"
            + " readings: stop it, restore the file from a backup or recover it (sqlite3 \(path) .recover),"
            + " then start it again"
    }
}
