import CloudCollector
import EdgeSyncCodec
import EdgeSyncPostgres
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

/// `POST /v1/processing`: the edge's per-rule totals, kept per stream and shown by `/v1/devices`.
struct ProcessingCountsTests {
    static func report(stream: UInt64 = 0xABCD, dropped: Int64, reduced: Int64) -> ProcessingCountsReport {
        ProcessingCountsReport(
            device: "gateway-1", stream: stream,
            rules: [
                .init(rule: "range", type: "validate", dropped: dropped, flagged: 1, reduced: 0, emitted: 0),
                .init(rule: "steady", type: "deadband", dropped: 0, flagged: 0, reduced: reduced, emitted: 0),
            ])
    }

    func post(_ collector: RunningCollector, _ report: ProcessingCountsReport, token: String?) async throws
        -> BlockingHTTPClient.Response
    {
        try await collector.post(
            ProtocolPath.processingCounts, body: Array(try JSONEncoder().encode(report)), token: token,
            contentType: "application/json")
    }

    func streams(_ collector: RunningCollector) async throws -> [DevicesReport.Stream] {
        let response = try await collector.get("/v1/devices", token: QueryAPITests.operatorToken)
        try #require(response.status == 200)
        return try JSONDecoder().decode(DevicesReport.self, from: Data(response.body)).devices.flatMap(\.streams)
    }

    @Test func reportsAreKeptPerStreamAsTheLargestTotalsAndShownWithTheDevice() async throws {
        try await QueryAPITests.withKnownData { collector, tokens in
            #expect(try await streams(collector).first?.processing == [], "no report yet: an empty list")
            let text = try await collector.get("/v1/devices", token: QueryAPITests.operatorToken).text
            #expect(text.contains("\"processing\":[]"), "the key is always there")

            #expect(
                try await post(collector, Self.report(dropped: 5, reduced: 40), token: tokens["gateway-1"]).status
                    == 200)
            // A late, older report (smaller totals) changes nothing; a newer one raises them.
            #expect(
                try await post(collector, Self.report(dropped: 3, reduced: 10), token: tokens["gateway-1"]).status
                    == 200)
            var stream = try #require(try await streams(collector).first)
            #expect(stream.processing == Self.report(dropped: 5, reduced: 40).rules)
            #expect(
                try await post(collector, Self.report(dropped: 6, reduced: 41), token: tokens["gateway-1"]).status
                    == 200)
            stream = try #require(try await streams(collector).first)
            #expect(stream.processing.map(\.dropped) == [6, 0])
            #expect(stream.processing.map(\.reduced) == [0, 41])
            #expect(stream.readings == 55, "counted readings are not gaps or readings")
            #expect(stream.gapReadings == 0)

            // Another device's token cannot report for gateway-1; a malformed body is 400.
            #expect(
                try await post(collector, Self.report(dropped: 99, reduced: 99), token: tokens["gateway-2"]).status
                    == 403)
            var negative = Self.report(dropped: 1, reduced: 1)
            negative.rules[0].dropped = -1
            #expect(try await post(collector, negative, token: tokens["gateway-1"]).status == 400)
            let malformed = try await collector.post(
                ProtocolPath.processingCounts, body: Array("{\"device\":".utf8), token: tokens["gateway-1"],
                contentType: "application/json")
            #expect(malformed.status == 400)
            #expect(try await post(collector, Self.report(dropped: 1, reduced: 1), token: nil).status == 401)
            stream = try #require(try await streams(collector).first)
            #expect(stream.processing.map(\.dropped) == [6, 0])
        }
    }

    @Test func aDatabaseOfAnEarlierCollectorWithoutTheTableAnswersDevicesAndTakesReports() async throws {
        try await QueryAPITests.withKnownData { collector, tokens in
            let database = try SQLiteDatabase(path: collector.databasePath)
            let tables = try database.prepare(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'processing_counts'")
            #expect(try tables.step() && tables.int64(at: 0) == 0, "created by the first report only")
            tables.reset()
            #expect(try await streams(collector).count == 1)
            #expect(
                try await post(collector, Self.report(dropped: 2, reduced: 3), token: tokens["gateway-1"]).status == 200
            )
            #expect(try tables.step() && tables.int64(at: 0) == 1)
            tables.reset()
            #expect(try await streams(collector).first?.processing.map(\.reduced) == [0, 3])
        }
    }
}

extension ProcessingCountsTests {
    /// Development builds made the table without `kept`: it reads as 0, and the next report adds it.
    @Test func aTableOfTheFirstShapeIsReadAndGetsTheKeptColumn() async throws {
        try await QueryAPITests.withKnownData { collector, tokens in
            let database = try SQLiteDatabase(path: collector.databasePath)
            try database.execute(
                """
                CREATE TABLE processing_counts (device TEXT NOT NULL, stream TEXT NOT NULL, rule TEXT NOT NULL,
                    type TEXT NOT NULL, dropped INTEGER NOT NULL, flagged INTEGER NOT NULL, reduced INTEGER NOT NULL,
                    emitted INTEGER NOT NULL, reported_at INTEGER NOT NULL, PRIMARY KEY (device, stream, rule)) WITHOUT ROWID;
                INSERT INTO processing_counts VALUES ('gateway-1', '\(0xABCD)', 'range', 'validate', 4, 0, 0, 0, 1);
                """)
            var stream = try #require(try await streams(collector).first)
            #expect(stream.processing.map(\.dropped) == [4])
            #expect(stream.processing.map(\.kept) == [0])
            var report = Self.report(dropped: 5, reduced: 1)
            report.rules[0].kept = 70
            #expect(try await post(collector, report, token: tokens["gateway-1"]).status == 200)
            stream = try #require(try await streams(collector).first)
            #expect(stream.processing.map(\.kept) == [70, 0])
        }
    }
}

/// Both backends keep the same processing counts for the same reports.
struct ProcessingCountsBackendTests {
    @Test func sqliteAndPostgresKeepTheLargestTotalsPerStreamAndRule() async throws {
        try await withPostgresDatabase { url in
            try await withTemporaryDirectory(prefix: "pg-processing") { directory in
                let path = directory + "/collector.sqlite"
                let sqlite = try SQLiteReadingStore(path: path)
                let postgres = try PostgresReadingStore(session: PostgresSession.Configuration(url: url))
                let reports = [
                    ProcessingCountsTests.report(stream: 1, dropped: 5, reduced: 7),
                    ProcessingCountsTests.report(stream: 2, dropped: 1, reduced: 1),
                    ProcessingCountsTests.report(stream: 1, dropped: 4, reduced: 9),
                ]
                for (index, report) in reports.enumerated() {
                    try sqlite.recordProcessing(report, device: "gateway-1", receivedAt: Int64(index))
                    try postgres.recordProcessing(report, device: "gateway-1", receivedAt: Int64(index))
                }
                let fromSQLite = try await SQLiteReadingQueries(databasePath: path).processingCounts()
                let pool = PostgresPool(configuration: PostgresSession.Configuration(url: url), count: 1, label: "test")
                let fromPostgres = try await PostgresReadingQueries(pool: pool).processingCounts()
                #expect(fromSQLite == fromPostgres)
                let first = try #require(fromSQLite[StreamKey(device: "gateway-1", stream: 1)])
                #expect(first.map(\.dropped) == [5, 0])
                #expect(first.map(\.reduced) == [0, 9])
                #expect(fromSQLite[StreamKey(device: "gateway-1", stream: 2)]?.map(\.dropped) == [1, 0])
            }
        }
    }
}
