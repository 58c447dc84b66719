import EdgeSyncPostgres
import EdgeSyncProtocol
import EdgeSyncSQLite

/// The `processing_counts` table: per device, stream and rule the latest totals an edge reported
/// (`POST /v1/processing`, `ProcessingCountsReport`), shown by `/v1/devices` beside completeness so
/// a reading a rule dropped is not mistaken for one that is missing.
///
/// Kept apart from the ingest schema on purpose: the table is created by the first report (`CREATE
/// TABLE IF NOT EXISTS`), readers treat a missing table as "no reports", and nothing else depends on
/// it, so a database of an earlier collector needs no migration and an earlier collector ignores
/// the table. Keyed by the stream id as text, not `stream_ref`, so a report may arrive before the
/// stream's first batch. An upsert keeps the largest value of each count: the counts are totals, so
/// a repeated or late report changes nothing.
package enum ProcessingCountsTable {
    static let columns = "device, stream, rule, type, dropped, flagged, reduced, emitted, reported_at, kept"

    static let sqliteTable = table(text: "TEXT", integer: "INTEGER", suffix: " WITHOUT ROWID")
    static let postgresTable = table(text: "text", integer: "bigint", suffix: "")

    /// The one table in either dialect.
    private static func table(text: String, integer: String, suffix: String) -> String {
        let counts = ["dropped", "flagged", "reduced", "emitted", "reported_at", "kept"].map {
            "\($0) \(integer) NOT NULL"
        }
        let keys = ["device", "stream", "rule", "type"].map { "\($0) \(text) NOT NULL" }
        return "CREATE TABLE IF NOT EXISTS processing_counts ("
            + (keys + counts).joined(separator: ", ") + ", PRIMARY KEY (device, stream, rule))" + suffix
    }

    /// Parameters 1-10 in `columns` order.
    static func upsert(_ placeholders: [String], greatest: String) -> String {
        """
        INSERT INTO processing_counts (\(columns)) VALUES (\(placeholders.joined(separator: ", ")))
        ON CONFLICT (device, stream, rule) DO UPDATE SET type = excluded.type,
            dropped = \(greatest)(processing_counts.dropped, excluded.dropped),
            flagged = \(greatest)(processing_counts.flagged, excluded.flagged),
            reduced = \(greatest)(processing_counts.reduced, excluded.reduced),
            emitted = \(greatest)(processing_counts.emitted, excluded.emitted),
            kept = \(greatest)(processing_counts.kept, excluded.kept),
            reported_at = excluded.reported_at
        """
    }

    static let select =
        "SELECT device, stream, rule, type, dropped, flagged, reduced, emitted, kept FROM processing_counts"
        + " ORDER BY device, stream, rule"

    /// Whether the table has `kept` (its first shape, in development builds, had not): readers
    /// then read 0 for it.
    static func hasKeptColumn(_ db: SQLiteDatabase) throws -> Bool {
        let probe = try db.statement(
            "SELECT count(*) FROM pragma_table_info('processing_counts') WHERE name = 'kept'")
        defer { probe.reset() }
        return try probe.step() && probe.int64(at: 0) > 0
    }

    static func select(kept: Bool) -> String {
        select.replacingOccurrences(of: ", kept FROM", with: kept ? ", kept FROM" : ", 0 FROM")
    }

    /// Most rules one report may name (the edge allows 256 in its configuration).
    static let maximumRules = 1024

    /// Throws unless every rule has a name and no count is negative.
    static func check(_ report: ProcessingCountsReport) throws(CollectorStorageError) {
        guard report.rules.count <= maximumRules else {
            throw CollectorStorageError("\(report.rules.count) rules in one report; at most \(maximumRules)")
        }
        for rule in report.rules {
            guard (1...256).contains(rule.rule.utf8.count), !rule.rule.utf8.contains(0), !rule.type.utf8.contains(0),
                rule.dropped >= 0, rule.flagged >= 0, rule.reduced >= 0, rule.emitted >= 0, rule.kept >= 0
            else {
                throw CollectorStorageError(
                    "rule \(rule.rule.prefix(80).debugDescription): a name of 1...256 bytes and counts ≥ 0 are needed")
            }
        }
    }
}

/// A store that keeps processing reports (both backends).
package protocol ProcessingCountsStore {
    func recordProcessing(_ report: ProcessingCountsReport, device: String, receivedAt: Int64) throws
}

/// Queries that read them back for `/v1/devices` (both backends).
package protocol ProcessingCountsQueries: Sendable {
    /// Every stream's reported rules, by stream; empty when no edge ever reported.
    func processingCounts() async throws -> [StreamKey: [ProcessingCountsReport.Rule]]
}

extension SQLiteReadingStore: ProcessingCountsStore {
    package func recordProcessing(_ report: ProcessingCountsReport, device: String, receivedAt: Int64) throws {
        try ProcessingCountsTable.check(report)
        try database.transaction(.immediate) { db in
            try db.execute(ProcessingCountsTable.sqliteTable)
            if !(try ProcessingCountsTable.hasKeptColumn(db)) {
                try db.execute("ALTER TABLE processing_counts ADD COLUMN kept INTEGER NOT NULL DEFAULT 0")
            }
            let upsert = try db.statement(
                ProcessingCountsTable.upsert((1...10).map { "?\($0)" }, greatest: "max"))
            for rule in report.rules {
                try upsert.bind(device, at: 1)
                try upsert.bind(String(report.stream.value), at: 2)
                try upsert.bind(rule.rule, at: 3)
                try upsert.bind(rule.type, at: 4)
                try upsert.bind(rule.dropped, at: 5)
                try upsert.bind(rule.flagged, at: 6)
                try upsert.bind(rule.reduced, at: 7)
                try upsert.bind(rule.emitted, at: 8)
                try upsert.bind(receivedAt, at: 9)
                try upsert.bind(rule.kept, at: 10)
                try upsert.run()
            }
        }
    }
}

extension PostgresReadingStore: ProcessingCountsStore {
    package func recordProcessing(_ report: ProcessingCountsReport, device: String, receivedAt: Int64) throws {
        try ProcessingCountsTable.check(report)
        try session.withConnection { connection in
            try connection.execute(ProcessingCountsTable.postgresTable)
            try connection.execute(
                "ALTER TABLE processing_counts ADD COLUMN IF NOT EXISTS kept bigint NOT NULL DEFAULT 0")
            try connection.transaction { connection in
                for rule in report.rules {
                    try connection.query(
                        ProcessingCountsTable.upsert((1...10).map { "$\($0)" }, greatest: "greatest"),
                        [
                            device, String(report.stream.value), rule.rule, rule.type, String(rule.dropped),
                            String(rule.flagged), String(rule.reduced), String(rule.emitted), String(receivedAt),
                            String(rule.kept),
                        ])
                }
            }
        }
    }
}

extension SQLiteReadingQueries: ProcessingCountsQueries {
    package func processingCounts() async throws -> [StreamKey: [ProcessingCountsReport.Rule]] {
        try await run { db in
            let exists = try db.statement(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'processing_counts'")
            defer { exists.reset() }
            guard try exists.step(), exists.int64(at: 0) > 0 else { return [:] }
            let select = try db.statement(
                ProcessingCountsTable.select(kept: try ProcessingCountsTable.hasKeptColumn(db)))
            defer { select.reset() }
            var counts: [StreamKey: [ProcessingCountsReport.Rule]] = [:]
            while try select.step() {
                guard let stream = UInt64(select.text(at: 1) ?? "") else { continue }
                counts[StreamKey(device: select.text(at: 0) ?? "", stream: stream), default: []].append(
                    ProcessingCountsReport.Rule(
                        rule: select.text(at: 2) ?? "", type: select.text(at: 3) ?? "", kept: select.int64(at: 8),
                        dropped: select.int64(at: 4),
                        flagged: select.int64(at: 5), reduced: select.int64(at: 6), emitted: select.int64(at: 7)))
            }
            return counts
        }
    }
}

extension PostgresReadingQueries: ProcessingCountsQueries {
    package func processingCounts() async throws -> [StreamKey: [ProcessingCountsReport.Rule]] {
        try await pool.run { connection in
            let exists = try connection.query("SELECT to_regclass('processing_counts') IS NOT NULL")
            guard exists.count > 0, exists.string(0, 0) == "t" else { return [:] }
            let column = try connection.query(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'processing_counts' AND column_name = 'kept'"
            )
            let rows = try connection.query(ProcessingCountsTable.select(kept: (try column.int64(0, 0) ?? 0) > 0))
            var counts: [StreamKey: [ProcessingCountsReport.Rule]] = [:]
            for row in 0..<rows.count {
                guard let stream = UInt64(rows.string(row, 1) ?? "") else { continue }
                counts[StreamKey(device: rows.string(row, 0) ?? "", stream: stream), default: []].append(
                    ProcessingCountsReport.Rule(
                        rule: rows.string(row, 2) ?? "", type: rows.string(row, 3) ?? "",
                        kept: try rows.requiredInt64(row, 8), dropped: try rows.requiredInt64(row, 4),
                        flagged: try rows.requiredInt64(row, 5),
                        reduced: try rows.requiredInt64(row, 6), emitted: try rows.requiredInt64(row, 7)))
            }
            return counts
        }
    }
}
