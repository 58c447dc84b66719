import CloudCollector
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

/// The pieces under the query API without HTTP: timestamp parsing, the devices report, the schema
/// upgrade; and the operator token settings of the real binary.
struct QuerySupportTests {
    @Test(
        arguments: [
            ("1700000000000000000", 1_700_000_000_000_000_000),
            ("-5", -5),
            ("1970-01-01T00:00:00Z", 0),
            ("2023-11-14T22:13:20Z", 1_700_000_000_000_000_000),
            ("2023-11-14t22:13:20z", 1_700_000_000_000_000_000),
            ("2023-11-14 22:13:20Z", 1_700_000_000_000_000_000),
            ("2023-11-14T22:13:20.5Z", 1_700_000_000_500_000_000),
            ("2023-11-14T22:13:20.000000001Z", 1_700_000_000_000_000_001),
            ("2023-11-14T23:43:20+01:30", 1_700_000_000_000_000_000),
            ("2023-11-14T20:13:20-02:00", 1_700_000_000_000_000_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000_000_000),
            ("1969-12-31T23:59:59.999999999Z", -1),
            ("1900-01-01T00:00:00Z", -2_208_988_800_000_000_000),
        ] as [(String, Int64)])
    func timestampsParse(text: String, nanoseconds: Int64) {
        #expect(Timestamp.parse(text) == nanoseconds)
    }

    @Test(arguments: [
        "", "abc", "1e9", "1.5", "2023-11-14", "2023-11-14T22:13:20", "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20.1234567891Z", "2023-02-29T00:00:00Z", "2023-13-01T00:00:00Z", "2023-11-14T24:00:00Z",
        "2023-11-14T22:60:00Z", "2023-11-14T22:13:20+1:00", "2023-11-14T22:13:20Zjunk", "3000-01-01T00:00:00Z",
        "1600-01-01T00:00:00Z", "99999999999999999999",
    ])
    func malformedTimestampsAreRefused(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func droppedRangesAreNeitherReceivedNorGaps() {
        let facts = StreamFacts(
            device: "d", stream: 1,
            received: SequenceRangeSet([SequenceRange(1, 10), SequenceRange(16, 20)]),
            dropped: SequenceRangeSet([SequenceRange(8, 12), SequenceRange(25, 30)]), lastSeen: 5,
            newestTimestamp: 1_000_000_000)
        let report = DevicesReport(streams: [facts], now: 3_000_000_000)
        let stream = report.devices[0].streams[0]
        // 11...12 dropped (8...10 arrived after all), 13...15 and 21...24 missing, 25...30 dropped.
        #expect(stream.gaps == [SequenceRange(13, 15), SequenceRange(21, 24)])
        #expect(stream.readings == 15 && stream.gapReadings == 7 && stream.droppedReadings == 8)
        #expect(stream.completeness == 15.0 / 22.0)
        #expect(stream.lagSeconds == 2)
        #expect(report.devices[0].lagSeconds == 2)
    }

    @Test func aStreamWithNothingKnownHasNoCompleteness() {
        let report = DevicesReport(
            streams: [
                StreamFacts(
                    device: "d", stream: 1, received: SequenceRangeSet(), dropped: SequenceRangeSet(), lastSeen: nil)
            ],
            now: 0)
        #expect(report.devices[0].completeness == nil && report.devices[0].streams[0].lagSeconds == nil)
    }

    @Test func aLargeSmoothedSkewFlagsTheClock() {
        let skewed = StreamFacts(
            device: "d", stream: 1, received: SequenceRangeSet([SequenceRange(1, 1)]), dropped: SequenceRangeSet(),
            lastSeen: 1, skewNanoseconds: -400e9, skewSamples: 3)
        let report = DevicesReport(streams: [skewed], now: 0, skewToleranceNanoseconds: 300_000_000_000)
        #expect(report.devices[0].implausibleTimestamps && report.devices[0].clockSkewSeconds == -400)
    }

    /// A version-1 database (no query index, no stream_stats), a version-2 one (a per-reading
    /// index instead of series_blocks) or a version-3 one (no block spans) opens, is upgraded and
    /// keeps its data, queryable.
    @Test(arguments: [1, 2, 3]) func olderDatabaseIsUpgradedInPlace(version old: Int) throws {
        try withTemporaryDirectory(prefix: "collector-upgrade") { directory in
            let path = directory + "/collector.sqlite"
            do {
                let store = try SQLiteReadingStore(path: path)
                _ = try store.store([Fixtures.batch(first: 1, count: 30)], receivedAt: 1)
            }
            let database = try SQLiteDatabase(path: path)
            let shape =
                switch old {
                case 1: "DROP TABLE series_blocks; DROP TABLE stream_stats;"
                case 2: "DROP TABLE series_blocks; CREATE INDEX readings_by_series_time ON readings (series_id, timestamp);"
                default: ""
                }
            try database.execute(
                """
                \(shape)
                ALTER TABLE series DROP COLUMN max_block_span;
                UPDATE collector_schema SET version = \(old);
                """)
            let store = try SQLiteReadingStore(path: path)
            _ = try store.store([Fixtures.batch(first: 31, count: 30)], receivedAt: 2)
            let version = try database.prepare("SELECT version FROM collector_schema")
            _ = try version.step()
            #expect(version.int64(at: 0) == CollectorSchema.version)
            let tables = try database.prepare(
                """
                SELECT count(*), sum(name = 'readings_by_series_time') FROM sqlite_master
                WHERE name IN ('readings_by_series_time', 'stream_stats', 'series_blocks')
                """)
            _ = try tables.step()
            #expect(tables.int64(at: 0) == 2 && tables.int64(at: 1) == 0)
            #expect(try Fixtures.readingCount(databasePath: path) == 60)
            // Every reading lies in exactly one block of its series, old and new alike.
            let covered = try database.prepare(
                """
                SELECT count(*) FROM readings AS r JOIN series_blocks AS b
                  ON r.reading_id BETWEEN b.first_reading_id AND b.last_reading_id AND b.series_id = r.series_id
                 AND r.timestamp BETWEEN b.min_timestamp AND b.max_timestamp
                """)
            _ = try covered.step()
            #expect(covered.int64(at: 0) == 60)
            // Each series' block span is filled from its blocks, old and new.
            let spans = try database.prepare(
                """
                SELECT count(*) FROM series AS s
                WHERE s.max_block_span = (SELECT max(max_timestamp - min_timestamp) FROM series_blocks
                                          WHERE series_id = s.series_id) AND s.max_block_span > 0
                """)
            _ = try spans.step()
            #expect(spans.int64(at: 0) == 3)

            // A database from a newer collector is refused, naming both versions.
            try database.execute("UPDATE collector_schema SET version = 99")
            #expect(throws: (any Error).self) { try SQLiteReadingStore(path: path) }
        }
    }

    /// A long batch of one series is cut into blocks of at most `rowsPerBlock` readings, each
    /// spanning its own readings exactly.
    @Test func longRunsAreCutIntoBoundedBlocks() throws {
        try withTemporaryDirectory(prefix: "collector-blocks") { directory in
            let path = directory + "/collector.sqlite"
            let store = try SQLiteReadingStore(path: path)
            let count = SQLiteReadingStore.rowsPerBlock * 3 * 2 + 5  // three series
            _ = try store.store([Fixtures.batch(first: 1, count: count)], receivedAt: 1)
            let database = try SQLiteDatabase(path: path)
            let blocks = try database.prepare(
                """
                SELECT max(last_reading_id - first_reading_id + 1), sum(last_reading_id - first_reading_id + 1),
                       sum((SELECT min(timestamp) FROM readings WHERE reading_id BETWEEN first_reading_id AND last_reading_id
                            AND series_id = b.series_id) = min_timestamp
                           AND (SELECT max(timestamp) FROM readings WHERE reading_id BETWEEN first_reading_id
                            AND last_reading_id AND series_id = b.series_id) = max_timestamp),
                       count(*)
                FROM series_blocks AS b
                """)
            _ = try blocks.step()
            #expect(blocks.int64(at: 0) <= Int64(SQLiteReadingStore.rowsPerBlock))
            #expect(blocks.int64(at: 1) == Int64(count))
            #expect(blocks.int64(at: 2) == blocks.int64(at: 3))
        }
    }
}

/// `cloud-collector serve` reads the operator token from a file, the environment or the config
/// file, refuses weak ones with exit 64, and never prints it.
struct OperatorTokenSettingsTests {
    @Test func weakOrUnreadableTokensExitWith64WithoutShowingThem() async throws {
        try await withTemporaryDirectory(prefix: "collector-operator") { directory in
            let binary = try CollectorBinary.url
            let short = try await ChildProcess.run(
                binary, ["serve", "--data-dir", directory], environment: ["CLOUD_COLLECTOR_OPERATOR_TOKEN": "sesame"])
            #expect(short.status == 64 && short.stderr.contains("CLOUD_COLLECTOR_OPERATOR_TOKEN"))
            #expect(!short.stderr.contains("sesame"))
            let missing = try await CollectorBinary.run(
                ["serve", "--data-dir", directory, "--operator-token-file", directory + "/nope"])
            #expect(missing.status == 64 && missing.stderr.contains("--operator-token-file"))
            let config = directory + "/collector.json"
            let tokenFile = directory + "/token"
            try Data("with space 0123456789abcdef\n".utf8).write(to: URL(fileURLWithPath: tokenFile))
            try Data(#"{"data_dir": "\#(directory)", "operator_token_file": "\#(tokenFile)"}"#.utf8)
                .write(to: URL(fileURLWithPath: config))
            let spaced = try await CollectorBinary.run(["serve", "--config", config])
            #expect(spaced.status == 64 && spaced.stderr.contains("operator_token_file"))
            #expect(!spaced.stderr.contains("0123456789abcdef"))
        }
    }

    @Test func tokenFileOpensTheQueryAPI() async throws {
        try await withTemporaryDirectory(prefix: "collector-operator") { directory in
            let tokenFile = directory + "/token"
            let token = "f00dfeedf00dfeedf00dfeedf00dfeed"
            try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: tokenFile))
            let server = try await CollectorProcess.start(
                dataDirectory: directory + "/data", extraArguments: ["--operator-token-file", tokenFile])
            let port = server.port
            let (open, closed) = try await onDedicatedThread {
                let client = BlockingHTTPClient(port: port)
                defer { client.close() }
                let open = try client.send(
                    method: "GET", path: "/v1/devices", headers: [("Authorization", "Bearer \(token)")])
                let closed = try client.send(method: "GET", path: "/v1/devices")
                return (open, closed)
            }
            #expect(open.status == 200 && open.text.contains("\"devices\":[]"))
            #expect(closed.status == 401)
            server.signal(SIGTERM)
            #expect(try await server.waitForExit() == 0)
        }
    }
}

@Suite struct LineProtocolExportEscapingTests {
    @Test(arguments: [
        ("a b,c", false, #"a\ b\,c"#),
        ("k=v", true, #"k\=v"#),
        ("k=v", false, "k=v"),
        ("line\r\nbreak", true, #"line\ \ break"#),
        ("x\u{605} y", true, "x\u{605}\\ y"),
        (#"ends\"#, true, #"ends\\"#),
        (#"a\b"#, true, #"a\b"#),
        (#"a\ b"#, true, #"a\\\ b"#),
    ])
    func partsAreEscapedOnBytesSoNothingEndsTheLineOrEatsADelimiter(text: String, alsoEquals: Bool, expected: String) {
        #expect(ReadingFormatter.escape(text, alsoEquals: alsoEquals) == expected)
    }
}
