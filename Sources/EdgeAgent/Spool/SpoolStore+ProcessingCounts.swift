import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite

/// What one processing rule did, as the spool keeps it: its name, its type and its counts.
package struct ProcessingRuleCounts: Sendable, Hashable, Encodable {
    package var rule: String
    package var type: String
    package var counts: ProcessingCounts

    package init(rule: String, type: String, counts: ProcessingCounts) {
        self.rule = rule
        self.type = type
        self.counts = counts
    }

    enum CodingKeys: String, CodingKey {
        case rule, type, kept, dropped, flagged, reduced, emitted
    }

    /// `{"rule": …, "type": …, "kept": …, "dropped": …, "flagged": …, "reduced": …, "emitted": …}` in
    /// `edge-agent status --json` (`Docs/edge-agent.md`).
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rule, forKey: .rule)
        try container.encode(type, forKey: .type)
        try container.encode(counts.kept, forKey: .kept)
        try container.encode(counts.dropped, forKey: .dropped)
        try container.encode(counts.flagged, forKey: .flagged)
        try container.encode(counts.reduced, forKey: .reduced)
        try container.encode(counts.emitted, forKey: .emitted)
    }
}

/// The `processing_counts` table: per rule (by name), the readings it kept, dropped, flagged,
/// reduced and emitted since the spool was created, added in the transaction of the write they belong to,
/// so the counts and the readings are durable together (a crash loses neither alone). Added after
/// the `deliveries` and `series` tables shipped: created when missing at open, so a spool of the
/// previous release opens unchanged, and a previous release ignores the table.
extension SpoolStore {
    func createProcessingCountsTableIfMissing() throws {
        try database.execute(
            """
            CREATE TABLE IF NOT EXISTS processing_counts(
                rule TEXT PRIMARY KEY,
                type TEXT NOT NULL,
                dropped INTEGER NOT NULL DEFAULT 0,
                flagged INTEGER NOT NULL DEFAULT 0,
                reduced INTEGER NOT NULL DEFAULT 0,
                emitted INTEGER NOT NULL DEFAULT 0,
                kept INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID
            """)
        // The table's first shape (development builds before `kept`) gets the column.
        if (try? database.prepare("SELECT kept FROM processing_counts LIMIT 0")) == nil {
            try database.execute("ALTER TABLE processing_counts ADD COLUMN kept INTEGER NOT NULL DEFAULT 0")
        }
    }

    /// Adds the counts of `writes`; runs inside the commit transaction. A rule's row keeps its
    /// totals when the rule is removed from the configuration (and its type follows the rule of
    /// that name now).
    func recordProcessingCounts(_ writes: [PendingWrite]) throws {
        guard writes.contains(where: { !$0.processingCounts.isEmpty }) else { return }
        var sums: [String: ProcessingRuleCounts] = [:]
        var order: [String] = []
        for write in writes {
            for row in write.processingCounts where !row.counts.isZero {
                if sums[row.rule] == nil {
                    order.append(row.rule)
                    sums[row.rule] = ProcessingRuleCounts(rule: row.rule, type: row.type, counts: ProcessingCounts())
                }
                sums[row.rule]?.counts += row.counts
            }
        }
        let upsert = try database.statement(
            """
            INSERT INTO processing_counts(rule, type, dropped, flagged, reduced, emitted, kept)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
            ON CONFLICT(rule) DO UPDATE SET type = excluded.type,
                dropped = dropped + excluded.dropped, flagged = flagged + excluded.flagged,
                reduced = reduced + excluded.reduced, emitted = emitted + excluded.emitted,
                kept = kept + excluded.kept
            """)
        for name in order {
            guard let row = sums[name] else { continue }
            try upsert.bind(row.rule, at: 1)
            try upsert.bind(row.type, at: 2)
            try upsert.bind(row.counts.dropped, at: 3)
            try upsert.bind(row.counts.flagged, at: 4)
            try upsert.bind(row.counts.reduced, at: 5)
            try upsert.bind(row.counts.emitted, at: 6)
            try upsert.bind(row.counts.kept, at: 7)
            try upsert.run()
        }
    }

    /// Every rule's stored totals, by name.
    func processingCounts() throws -> [ProcessingRuleCounts] {
        let select = try database.statement(
            "SELECT rule, type, dropped, flagged, reduced, emitted, kept FROM processing_counts ORDER BY rule")
        defer { select.reset() }
        var rows: [ProcessingRuleCounts] = []
        while try select.step() {
            rows.append(
                ProcessingRuleCounts(
                    rule: select.text(at: 0) ?? "", type: select.text(at: 1) ?? "",
                    counts: ProcessingCounts(
                        dropped: select.int64(at: 2), flagged: select.int64(at: 3), reduced: select.int64(at: 4),
                        emitted: select.int64(at: 5), kept: select.int64(at: 6))))
        }
        return rows
    }
}

/// A sink that stores the processing rules' counts of a write in the write's own transaction
/// (the spool). `ProcessingSink` uses it when its inner sink is one; otherwise the counts stay in
/// memory (`/metrics`).
package protocol ProcessingCountStore: ReadingSink {
    /// Stores `readings` (which may be empty when `counts` is not: the rules left nothing) and
    /// adds `counts`, atomically. `dropsOverLimit` as in `Spool.appendAdmitting`; when false, a new
    /// series past the limit refuses the whole write (`.seriesLimit`), as `Spool.append` does.
    func append(
        seriesKeys: [String], readings: [Reading], deliveries: DeliveryRecord?, counts: [ProcessingRuleCounts],
        dropsOverLimit: Bool
    ) async throws(SpoolError) -> Spool.Admitted

    /// The totals stored so far, per rule.
    func processingCounts() async throws(SpoolError) -> [ProcessingRuleCounts]
}

extension Spool: ProcessingCountStore {
    package func append(
        seriesKeys: [String], readings: [Reading], deliveries: DeliveryRecord?, counts: [ProcessingRuleCounts],
        dropsOverLimit: Bool
    ) async throws(SpoolError) -> Spool.Admitted {
        let write = PendingWrite(
            seriesKeys: seriesKeys, readings: readings, deliveries: deliveries, processingCounts: counts)
        let admitted = try await submit(write, dropsOverLimit: dropsOverLimit)
        if !dropsOverLimit, !readings.isEmpty, admitted.range == nil {
            throw SpoolError(.seriesLimit, "no readings stored")
        }
        return admitted
    }

    package func processingCounts() async throws(SpoolError) -> [ProcessingRuleCounts] {
        try await run("reading the processing counts") { store in try store.processingCounts() }
    }
}
