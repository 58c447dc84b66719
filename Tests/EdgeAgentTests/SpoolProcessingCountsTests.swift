import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

@testable import EdgeAgent

/// The spool's `processing_counts` table: per-rule counts committed with the readings they belong
/// to, kept across restarts, shown by `status`, and spools of the release before the table.
@Suite struct SpoolProcessingCountsTests {
    static let second: Int64 = 1_000_000_000
    static let now: Int64 = 1_700_000_000 * second

    static let rules: [ProcessingRule] = {
        var range = ProcessingRule.Validation()
        range.maximum = 100
        var flag = ProcessingRule.Validation()
        flag.minimum = 0
        flag.action = .flag(tag: "flag")
        return [
            ProcessingRule(name: "range", match: SeriesMatch(measurement: Glob("room")), action: .validate(range)),
            ProcessingRule(name: "negative", match: SeriesMatch(measurement: Glob("room")), action: .validate(flag)),
            ProcessingRule(name: "debug", match: SeriesMatch(measurement: Glob("debug")), action: .drop),
            ProcessingRule(
                name: "steady", match: SeriesMatch(field: Glob("temp")),
                action: .deadband(.init(delta: 0.5, heartbeat: 3600 * second))),
        ]
    }()

    func sink(_ spool: Spool) -> ProcessingSink {
        ProcessingSink(rules: Self.rules, capacity: 100, inner: spool, now: { Self.now })
    }

    func readings(_ values: [Double]) -> [Reading] {
        values.enumerated().map {
            Reading(series: 0, timestamp: Self.now + Int64($0.offset) * Self.second, value: $0.element)
        }
    }

    func stored(_ spool: Spool) async throws -> [String: ProcessingCounts] {
        Dictionary(uniqueKeysWithValues: try await spool.processingCounts().map { ($0.rule, $0.counts) })
    }

    @Test func countsAreStoredWithTheirWritesAndSurviveAReopen() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            var spool = try await Spool.open(spoolConfiguration(directory))
            let processing = sink(spool)
            // 20 stored, 20.2 reduced, 500 dropped, -3 flagged (and stored in its sibling), 21 stored.
            let range = try await processing.appendWhole(
                seriesKeys: ["room temp"], readings: readings([20, 20.2, 500, -3, 21]))
            #expect(range == SequenceRange(1, 3))
            // Every reading dropped: nothing stored, the counts are.
            #expect(try await processing.appendWhole(seriesKeys: ["debug x"], readings: readings([1, 2, 3])) == nil)
            #expect(
                try await processing.appendAdmitting(seriesKeys: ["debug y"], readings: readings([4])).range == nil)
            // Untouched by any rule: no counts, nothing changes.
            #expect(try await processing.appendWhole(seriesKeys: ["other v"], readings: readings([1])) != nil)

            let expected: [String: ProcessingCounts] = [
                "range": ProcessingCounts(dropped: 1, kept: 4), "negative": ProcessingCounts(flagged: 1, kept: 3),
                "debug": ProcessingCounts(dropped: 4),
                // The flagged reading passes the deadband unreduced: kept there.
                "steady": ProcessingCounts(reduced: 1, kept: 3),
            ]
            #expect(try await stored(spool) == expected)
            let inMemory = Dictionary(uniqueKeysWithValues: processing.counts.map { ($0.rule.name, $0.counts) })
            #expect(inMemory == expected)
            #expect(try await spool.status().nextSequence == 5, "dropped readings used no sequence number")

            spool = try await Spool.open(spoolConfiguration(directory))
            #expect(try await stored(spool) == expected)
            let again = sink(spool)
            _ = try await again.appendWhole(seriesKeys: ["debug x"], readings: readings([9]))
            var more = expected
            more["debug"] = ProcessingCounts(dropped: 5)
            #expect(try await stored(spool) == more, "added to, not replaced")

            let status = try Spool.inspect(dataDirectory: directory)
            #expect(status.processing.map(\.rule) == ["debug", "negative", "range", "steady"])
            #expect(status.processing.first?.type == "drop")
            let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(status)) as? [String: Any]
            let rows = try #require(json?["processing"] as? [[String: Any]])
            #expect(rows.first?["rule"] as? String == "debug")
            #expect(rows.first?["dropped"] as? Int == 5)
            #expect(rows.last?["reduced"] as? Int == 1)
            #expect(rows.last?["kept"] as? Int == 3)
        }
    }

    @Test func aWriteTheSpoolRefusesAddsNoCounts() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            var configuration = spoolConfiguration(directory)
            configuration.maxSeries = 1
            let spool = try await Spool.open(configuration)
            let processing = sink(spool)
            #expect(try await processing.appendWhole(seriesKeys: ["other a"], readings: readings([1])) != nil)
            // A second series past the limit refuses the whole write: its drop is not counted.
            await #expect(throws: SpoolError.self) {
                _ = try await processing.appendWhole(
                    seriesKeys: ["room temp", "debug x"],
                    readings: [
                        Reading(series: 0, timestamp: Self.now, value: 5),
                        Reading(series: 1, timestamp: Self.now, value: 1),
                    ])
            }
            #expect(try await stored(spool).isEmpty)
            #expect(processing.counts.allSatisfy { $0.counts.isZero })
        }
    }

    @Test func aSpoolOfThePreviousReleaseWithoutTheTableOpensAndCounts() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            // The previous release's spool: everything but processing_counts.
            do {
                let spool = try await Spool.open(spoolConfiguration(directory))
                _ = try await spool.append(seriesKeys: ["old v"], readings: readings([1, 2]))
            }
            let database = try SQLiteDatabase(path: Spool.databasePath(in: directory))
            try database.execute("DROP TABLE processing_counts")
            let tables = try database.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'processing_counts'")
            #expect(try tables.step() && tables.int64(at: 0) == 0)
            tables.reset()

            // `status` of such a spool (it does not change the file) shows no rule counts.
            let before = try Spool.inspect(dataDirectory: directory)
            #expect(before.processing.isEmpty)
            #expect(before.queuedReadings == 2)

            let spool = try await Spool.open(spoolConfiguration(directory))
            #expect(try await spool.processingCounts().isEmpty)
            let processing = sink(spool)
            #expect(
                try await processing.appendWhole(seriesKeys: ["room temp"], readings: readings([20, 20.1, 900]))
                    == SequenceRange(3, 3))
            #expect(
                try await stored(spool) == [
                    "range": ProcessingCounts(dropped: 1, kept: 2), "negative": ProcessingCounts(kept: 2),
                    "steady": ProcessingCounts(reduced: 1, kept: 1),
                ])
            #expect(try await storedReadings(spool).map(\.key) == ["old v", "old v", "room temp"])
        }
    }
}

extension SpoolProcessingCountsTests {
    /// Development builds made the table without `kept`; such a spool gets the column at open.
    @Test func aTableOfTheFirstShapeGetsTheKeptColumn() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            do {
                let spool = try await Spool.open(spoolConfiguration(directory))
                _ = try await spool.append(seriesKeys: ["old v"], readings: readings([1]))
            }
            let database = try SQLiteDatabase(path: Spool.databasePath(in: directory))
            try database.execute(
                """
                DROP TABLE processing_counts;
                CREATE TABLE processing_counts(rule TEXT PRIMARY KEY, type TEXT NOT NULL,
                    dropped INTEGER NOT NULL DEFAULT 0, flagged INTEGER NOT NULL DEFAULT 0,
                    reduced INTEGER NOT NULL DEFAULT 0, emitted INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
                INSERT INTO processing_counts VALUES ('range', 'validate', 7, 0, 0, 0);
                """)
            let spool = try await Spool.open(spoolConfiguration(directory))
            #expect(try await stored(spool)["range"] == ProcessingCounts(dropped: 7))
            _ = try await sink(spool).appendWhole(seriesKeys: ["room temp"], readings: readings([20, 900]))
            #expect(try await stored(spool)["range"] == ProcessingCounts(dropped: 8, kept: 1))
        }
    }
}
