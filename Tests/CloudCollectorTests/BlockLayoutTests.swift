import CloudCollector
import EdgeSyncCodec
import EdgeSyncCommandLine
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

/// The column-block layout (`storage.layout = blocks`, decision 0027) against the row layout as
/// the oracle: the same batches go into one store of each layout, and every query must answer the
/// same. Reading ids differ between the layouts, so readings are compared by what they hold.
@Suite struct BlockLayoutTests {
    typealias Groups = [(batches: [Batch], receivedAt: Int64)]

    /// Runs `body` with row and block queries over the same stored data, after checking that both
    /// stores gave the same outcome for every batch (exactly-once is the dedup's, not the layout's).
    static func withBothLayouts(
        groups: Groups, blockReadings: Int = 4_096,
        _ body: (_ rows: any ReadingQueries, _ blocks: any ReadingQueries, _ blocksPath: String) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory(prefix: "block-layout") { directory in
            let rowsPath = directory + "/rows.sqlite"
            let blocksPath = directory + "/blocks.sqlite"
            var configuration = SQLiteReadingStore.Configuration()
            let rowStore = try SQLiteReadingStore(path: rowsPath, configuration: configuration)
            configuration.layout = .blocks
            configuration.blockReadings = blockReadings
            let blockStore = try SQLiteReadingStore(path: blocksPath, configuration: configuration)
            #expect(rowStore.layout == .rows && blockStore.layout == .blocks)
            for group in groups {
                let a = try rowStore.store(group.batches, receivedAt: group.receivedAt)
                let b = try blockStore.store(group.batches, receivedAt: group.receivedAt)
                try #require(a.outcomes == b.outcomes)
                #expect(a.committedRanges == b.committedRanges)
            }
            try await body(
                try SQLiteReadingQueries(databasePath: rowsPath), try SQLiteReadingQueries(databasePath: blocksPath),
                blocksPath)
        }
    }

    /// The mean of `values` from their exact sum, as the block layout defines it.
    static func exactMean(_ values: [Double]) -> Double? {
        var sum = ExactSum()
        var numbers = 0
        for value in values where !value.isNaN {
            sum.add(value == 0 ? 0 : value)
            numbers += 1
        }
        guard numbers > 0 else { return nil }
        let mean = sum.value / Double(numbers)
        return mean.isNaN ? nil : mean
    }

    /// Every query of `PostgresQueryTests`' data set (ties, late and out-of-order readings, wide
    /// blocks, awkward values, hostile keys) answers the same on blocks as on rows, with blocks cut
    /// small (97 readings) so windows, pages and buckets cross many block edges.
    @Test(arguments: [97, 4_096])
    func everyQueryAnswersAsOnRows(blockReadings: Int) async throws {
        let groups = PostgresQueryTests.groups()
        try await Self.withBothLayouts(groups: groups, blockReadings: blockReadings) { rows, blocks, _ in
            try await Self.expectSameAnswers(groups, rows, blocks)
        }
    }

    /// Every query of `everyQueryAnswersAsOnRows` on `rows` and on `blocks`.
    static func expectSameAnswers(
        _ groups: Groups, _ rows: any ReadingQueries, _ blocks: any ReadingQueries,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        do {
            for device in [nil, "gw-a", "gw-b", "gw-c", "nobody"] as [String?] {
                for prefix in ["", "temp", "temp%", "temp_", "big", "odd"] {
                    for limit in [1, 2, 100, -1] {
                        let a = try await rows.series(device: device, prefix: prefix, limit: limit)
                        let b = try await blocks.series(device: device, prefix: prefix, limit: limit)
                        #expect(a == b, "device \(device ?? "nil") prefix \(prefix) limit \(limit)")
                    }
                }
            }
            let all = try await rows.series(device: nil, prefix: "", limit: 100)
            #expect(all.count >= 7)
            for summary in all {
                let a = try #require(try await rows.series(device: summary.device, key: summary.series))
                let b = try #require(try await blocks.series(device: summary.device, key: summary.series))
                let first = summary.firstTimestamp ?? PostgresQueryTests.base
                let last = summary.lastTimestamp ?? PostgresQueryTests.base
                try await PostgresQueryTests.expectSameWalks(groups, summary, rows, a, blocks, b)
                try await PostgresQueryTests.expectSameAfterPositions(rows, a, blocks, b, from: first, to: last + 1)

                let values = Self.values(groups, device: summary.device, key: summary.series)
                let steps: [Int64] = [1, 999_999_999, PostgresQueryTests.second, 7 * PostgresQueryTests.second, .max]
                for step in steps {
                    for (from, to) in [(first, last + 1), (first - 1, last), (first + 5, first + 5), (.min / 2, .max / 2)] {
                        if step == 1, to - from > 100 { continue }
                        let x = try await rows.aggregate(of: a, from: from, to: to, step: step)
                        let y = try await blocks.aggregate(of: b, from: from, to: to, step: step)
                        let context = Comment(rawValue: "\(summary.series) aggregate [\(from), \(to)) step \(step)")
                        #expect(x.map(\.start) == y.map(\.start), context)
                        #expect(x.map(\.count) == y.map(\.count), context)
                        #expect(x.map { $0.min?.bitPattern } == y.map { $0.min?.bitPattern }, context)
                        #expect(x.map { $0.max?.bitPattern } == y.map { $0.max?.bitPattern }, context)
                        // The mean is the exact sum's; SQLite's running sum agrees wherever it is
                        // exact, which it is for every series but the one of awkward values.
                        let exact = y.map { bucket in
                            Self.exactMean(
                                values.filter {
                                    $0.timestamp >= from && $0.timestamp < to
                                        && ($0.timestamp - from) / step == (bucket.start - from) / step
                                }.map(\.value))
                        }
                        #expect(y.map { $0.mean?.bitPattern } == exact.map { $0?.bitPattern }, context)
                        if summary.series != "odd" {
                            #expect(x.map { $0.mean?.bitPattern } == y.map { $0.mean?.bitPattern }, context)
                        }
                    }
                }
            }
            #expect(try await rows.streams() == (try await blocks.streams()))
        }
    }

    /// The distinct readings `groups` stored for one series: (timestamp, value).
    static func values(_ groups: Groups, device: String, key: String) -> [(timestamp: Int64, value: Double)] {
        var seen: [[UInt64]: (Int64, Double)] = [:]
        for batch in groups.flatMap(\.batches) where batch.device == device {
            for (index, reading) in batch.readings.enumerated() where batch.seriesKeys[reading.series] == key {
                seen[[batch.stream, batch.firstSequence + UInt64(index)]] = (reading.timestamp, reading.value)
            }
        }
        return seen.values.map { (timestamp: $0.0, value: $0.1) }
    }

    /// Large values whose running sum overflows or cancels: the block mean is the exact one.
    @Test func meansComeFromTheExactSum() async throws {
        let base = PostgresQueryTests.base
        let second = PostgresQueryTests.second
        let buckets: [[Double]] = [
            [1e200, -1e200, 4], [1e300, 1e300], [.greatestFiniteMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude],
            [.infinity, 1], [.infinity, -.infinity, 2], [.nan, .nan], [21.5, 1e200, -1e200], [0.1, 0.2, 0.3],
        ]
        let readings = buckets.enumerated().flatMap { bucket, values in
            values.map { Reading(series: 0, timestamp: base + Int64(bucket) * second, value: $0) }
        }
        let batch = Batch(device: "d", stream: 1, firstSequence: 1, seriesKeys: ["k"], readings: readings)
        // Two readings a block: buckets are made of whole blocks and of split ones.
        try await Self.withBothLayouts(groups: [([batch], base)], blockReadings: 2) { rows, blocks, _ in
            let series = try #require(try await blocks.series(device: "d", key: "k"))
            let to = base + Int64(buckets.count) * second
            let answer = try await blocks.aggregate(of: series, from: base, to: to, step: second)
            #expect(answer.map(\.count) == buckets.map { Int64($0.count) })
            #expect(answer[0].mean == 4.0 / 3)
            #expect(answer[1].mean == 1e300)
            #expect(answer[2].mean == .greatestFiniteMagnitude / 3)
            #expect(answer[3].mean == .infinity)
            #expect(answer[4].mean == nil && answer[4].min == -.infinity && answer[4].max == .infinity)
            #expect(answer[5].mean == nil && answer[5].min == nil && answer[5].count == 2)
            #expect(answer[6].mean == 21.5 / 3)
            #expect(answer[7].mean == 0.6 / 3)  // the exact sum rounds to 0.6; a running sum gives 0.6000000000000001
            let one = try await blocks.aggregate(of: series, from: base, to: to, step: .max)
            #expect(one.count == 1 && one[0].mean == nil)  // +inf and -inf in one bucket
            let rowSeries = try #require(try await rows.series(device: "d", key: "k"))
            let rowAnswer = try await rows.aggregate(of: rowSeries, from: base, to: to, step: second)
            #expect(rowAnswer.map(\.count) == answer.map(\.count))
        }
    }

    @Test func exactSumIsOrderFreeAndRoundsToNearestEven() {
        func sum(_ values: [Double]) -> Double {
            var sum = ExactSum()
            for value in values { sum.add(value) }
            return sum.value
        }
        #expect(sum([]) == 0 && sum([]).sign == .plus)
        #expect(sum([0x1p53, 1]) == 0x1p53)  // a tie: to even
        #expect(sum([0x1p53, 1, 0x1p-1074]) == 0x1p53 + 2)  // just above the tie
        #expect(sum([0x1p53, 3]) == 0x1p53 + 4)
        #expect(sum([-0x1p53, -1, -0x1p-1074]) == -(0x1p53 + 2))
        #expect(sum([.leastNonzeroMagnitude, .leastNonzeroMagnitude]) == 2 * .leastNonzeroMagnitude)
        #expect(sum([1e308, 1e308]) == .infinity && sum([-1e308, -1e308]) == -.infinity)
        #expect(sum([1, -1]) == 0 && sum([-3, 1]) == -2)
        #expect(sum([.greatestFiniteMagnitude, -.greatestFiniteMagnitude, 0x1p-1074]) == 0x1p-1074)
        // Integers times powers of two: every partial sum is exact, so any order gives the integer sum.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let scale = Double(sign: .plus, exponent: Int.random(in: -1000...900, using: &generator), significand: 1)
            let integers = (0..<Int.random(in: 1...300, using: &generator)).map { _ in
                Int64.random(in: -(1 << 40)...(1 << 40), using: &generator)
            }
            let expected = Double(integers.reduce(0, +)) * scale
            #expect(sum(integers.map { Double($0) * scale }) == expected)
            #expect(sum(integers.shuffled().map { Double($0) * scale }) == expected)
        }
        // Splitting into partial sums and merging them (blocks, then buckets) changes nothing.
        let values = (0..<1_000).map { Double($0 % 97) * 0.1 + 1e-9 * Double($0) }
        var whole = ExactSum()
        for value in values { whole.add(value) }
        var merged = ExactSum()
        for chunk in stride(from: 0, to: values.count, by: 33) {
            var part = ExactSum()
            for value in values[chunk..<min(chunk + 33, values.count)].reversed() { part.add(value) }
            merged.add(part)
        }
        #expect(merged.value == whole.value)
    }

    /// A schema-4 database as the previous release wrote it (its DDL frozen here) opens in the row
    /// layout and answers queries; asking for blocks on it is refused by name, since it holds readings.
    @Test func aSchemaFourDatabaseOfThePreviousReleaseKeepsWorking() async throws {
        try await withTemporaryDirectory(prefix: "schema-4") { directory in
            let path = directory + "/collector.sqlite"
            do {
                let database = try SQLiteDatabase(path: path)
                try database.execute(Self.schemaFour)
            }
            var blocks = SQLiteReadingStore.Configuration()
            blocks.layout = .blocks
            #expect {
                _ = try SQLiteReadingStore(path: path, configuration: blocks)
            } throws: { error in
                "\(error)".contains("stores readings as rows, storage.layout asks for blocks")
            }
            let store = try SQLiteReadingStore(path: path)
            #expect(store.layout == .rows)
            // Seq 1-3 are stored: a re-sent batch 1...5 adds only 4 and 5.
            let resent = Batch(
                device: "gw", stream: 42, firstSequence: 1, seriesKeys: ["t"],
                readings: (0..<5).map { Reading(series: 0, timestamp: 1_000 + Int64($0), value: Double($0) + 0.5) })
            let outcome = try store.store([resent], receivedAt: 5_000)
            #expect(outcome.outcomes == [StoreOutcome(accepted: 2, duplicates: 3)])
            let queries = try SQLiteReadingQueries(databasePath: path)
            let series = try #require(try await queries.series(device: "gw", key: "t"))
            let end = try #require(try await queries.pageEnd(of: series, after: nil, from: .min, to: .max, limit: 100))
            let readings = try await queries.readings(
                of: series, after: nil, through: end.last, from: .min, to: .max, limit: 100)
            #expect(readings.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(readings.map(\.value) == [0.5, 1.5, 2.5, 3.5, 4.5])
            #expect(try Fixtures.storedReadings(databasePath: path).count == 5)
        }
    }

    /// Schema 4 as the previous release created it, with three readings of one series stored.
    static let schemaFour = """
        CREATE TABLE collector_schema (version INTEGER NOT NULL);
        INSERT INTO collector_schema VALUES (4);
        CREATE TABLE device_tokens (device TEXT PRIMARY KEY, token_hash BLOB NOT NULL UNIQUE, created_at INTEGER NOT NULL);
        CREATE TABLE streams (stream_ref INTEGER PRIMARY KEY, device TEXT NOT NULL, stream TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 0, last_seen INTEGER, UNIQUE (device, stream));
        CREATE TABLE received_ranges (stream_ref INTEGER NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
            PRIMARY KEY (stream_ref, first_seq)) WITHOUT ROWID;
        CREATE TABLE dropped_ranges (stream_ref INTEGER NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
            reported_at INTEGER NOT NULL, PRIMARY KEY (stream_ref, first_seq, last_seq)) WITHOUT ROWID;
        CREATE TABLE series (series_id INTEGER PRIMARY KEY, device TEXT NOT NULL, series_key TEXT NOT NULL,
            max_block_span INTEGER NOT NULL DEFAULT 0, UNIQUE (device, series_key));
        CREATE TABLE readings (reading_id INTEGER PRIMARY KEY, stream_ref INTEGER NOT NULL, seq INTEGER NOT NULL,
            series_id INTEGER NOT NULL, timestamp INTEGER NOT NULL, value REAL, value_bits INTEGER);
        CREATE TABLE series_blocks (series_id INTEGER NOT NULL, min_timestamp INTEGER NOT NULL,
            max_timestamp INTEGER NOT NULL, first_reading_id INTEGER NOT NULL, last_reading_id INTEGER NOT NULL);
        CREATE INDEX series_blocks_by_start ON series_blocks (series_id, min_timestamp);
        CREATE INDEX series_blocks_by_end
            ON series_blocks (series_id, max_timestamp, min_timestamp, first_reading_id, last_reading_id);
        CREATE TABLE stream_stats (stream_ref INTEGER PRIMARY KEY, skew_ns REAL, last_skew_ns INTEGER,
            skew_samples INTEGER NOT NULL DEFAULT 0, newest_timestamp INTEGER, oldest_timestamp INTEGER,
            future_readings INTEGER NOT NULL DEFAULT 0, past_readings INTEGER NOT NULL DEFAULT 0);
        CREATE VIEW readings_view AS SELECT streams.device AS device, series.series_key AS series_key,
            readings.timestamp AS timestamp, readings.value AS value, streams.stream AS stream, readings.seq AS seq,
            readings.value_bits AS value_bits
            FROM readings JOIN streams ON streams.stream_ref = readings.stream_ref
            JOIN series ON series.series_id = readings.series_id;
        INSERT INTO streams (stream_ref, device, stream, version, last_seen) VALUES (1, 'gw', '42', 7, 100);
        INSERT INTO received_ranges VALUES (1, 1, 3);
        INSERT INTO series (series_id, device, series_key, max_block_span) VALUES (1, 'gw', 't', 2);
        INSERT INTO readings (stream_ref, seq, series_id, timestamp, value) VALUES
            (1, 1, 1, 1000, 0.5), (1, 2, 1, 1001, 1.5), (1, 3, 1, 1002, 2.5);
        INSERT INTO series_blocks VALUES (1, 1000, 1002, 1, 3);
        """

    /// A database without readings takes the configured layout, whichever it was created with
    /// (`token add` runs before the first `serve`); its tokens stay.
    @Test func anEmptyDatabaseSwitchesLayout() throws {
        try withTemporaryDirectory(prefix: "layout-switch") { directory in
            let path = directory + "/collector.sqlite"
            do {
                let database = try SQLiteDatabase(path: path)
                #expect(try SQLiteReadingStore.createSchema(database) == .rows)
                try database.execute("INSERT INTO device_tokens VALUES ('gw', x'00', 1)")
            }
            var configuration = SQLiteReadingStore.Configuration()
            configuration.layout = .blocks
            do {
                let store = try SQLiteReadingStore(path: path, configuration: configuration)
                #expect(store.layout == .blocks)
                _ = try store.store([Fixtures.batch(first: 1, count: 10)], receivedAt: 1)
            }
            let database = try SQLiteDatabase(path: path)
            #expect(try Fixtures.count(database, "device_tokens") == 1)
            #expect(try Fixtures.count(database, "reading_blocks") == 3)
            #expect(throws: (any Error).self) { try Fixtures.count(database, "readings") }
            // Now it holds blocks: rows are refused, blocks reopen.
            #expect(throws: (any Error).self) { _ = try SQLiteReadingStore(path: path) }
            #expect(try SQLiteReadingStore(path: path, configuration: configuration).layout == .blocks)
        }
    }

    /// Without the extension, `readings_view` on a block database fails with an error naming the
    /// missing decoder: it never looks empty.
    @Test func theViewWithoutTheExtensionIsAnErrorNotAnEmptyTable() async throws {
        try await Self.withBothLayouts(groups: [([Fixtures.batch(first: 1, count: 30)], 1)]) { _, _, path in
            #expect {
                _ = try Fixtures.storedReadings(databasePath: path)
            } throws: { error in
                "\(error)".contains("edge_sync_block_readings")
            }
        }
    }

    /// `readings_view` fails on a block database even before anything is stored (the decoder is
    /// missing when the statement is prepared), and its definition says why to `.schema` readers.
    @Test func theViewOfAnEmptyBlockDatabaseFailsAndExplainsItself() throws {
        try withTemporaryDirectory(prefix: "block-view") { directory in
            let path = directory + "/collector.sqlite"
            let database = try SQLiteDatabase(path: path)
            #expect(try SQLiteReadingStore.createSchema(database, layout: .blocks) == .blocks)
            #expect(throws: (any Error).self) { try database.prepare("SELECT count(*) FROM readings_view") }
            let definition = try database.prepare("SELECT sql FROM sqlite_master WHERE name = 'readings_view'")
            _ = try definition.step()
            let sql = definition.text(at: 0) ?? ""
            #expect(sql.contains("storage.layout = blocks") && sql.contains("reading_blocks_view"))
        }
    }

    /// `reading_blocks_view`, what plain SQL reads of a block database, agrees per series and
    /// stream with `readings_view` of the row layout on count, time span, non-NaN count, min and max.
    @Test(arguments: [97, 4_096])
    func theBlockSummaryViewAgreesWithTheRowView(blockReadings: Int) async throws {
        let groups = PostgresQueryTests.groups()
        try await Self.withBothLayouts(groups: groups, blockReadings: blockReadings) { _, _, blocksPath in
            func grouped(_ path: String, _ sql: String) throws -> [String] {
                let database = try SQLiteDatabase(path: path)
                let select = try database.prepare(sql)
                var rows: [String] = []
                while try select.step() {
                    rows.append(
                        (0..<9).map { column in
                            select.isNull(at: column)
                                ? "NULL" : column >= 7 ? "\(select.double(at: column).bitPattern)" : select.text(at: column) ?? ""
                        }.joined(separator: "|"))
                }
                return rows
            }
            let rowsPath = blocksPath.replacingOccurrences(of: "blocks.sqlite", with: "rows.sqlite")
            let fromRows = try grouped(
                rowsPath,
                """
                SELECT device, series_key, stream, count(*), min(timestamp), max(timestamp), count(value), min(value), max(value)
                FROM readings_view GROUP BY device, series_key, stream ORDER BY device, series_key, stream
                """)
            let fromBlocks = try grouped(
                blocksPath,
                """
                SELECT device, series_key, stream, sum(readings), min(min_timestamp), max(max_timestamp), sum(value_count),
                       min(min_value), max(max_value)
                FROM reading_blocks_view GROUP BY device, series_key, stream ORDER BY device, series_key, stream
                """)
            #expect(fromRows.count >= 7)
            #expect(fromRows == fromBlocks)
        }
    }

    /// `storage.layout` and `storage.block_readings` as `serve` reads them: rows and 4,096 by
    /// default, every bad value (and blocks on PostgreSQL) an error naming the key.
    @Test func layoutSettings() throws {
        func parse(_ json: String) throws -> CollectorService.Configuration {
            try withTemporaryDirectory(prefix: "layout-config") { directory in
                let path = directory + "/collector.json"
                try Data(json.utf8).write(to: URL(fileURLWithPath: path))
                return try CollectorService.Configuration(
                    arguments: ArgumentParser(options: CollectorService.Configuration.options).parse(["--config", path]),
                    environment: [:], readsOperatorToken: false)
            }
        }
        func failure(_ json: String) -> String {
            do {
                _ = try parse(json)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        let plain = try parse(#"{"data_dir": "/d"}"#)
        #expect(plain.storage.layout == .rows && plain.storage.blockReadings == 4_096)
        let blocks = try parse(#"{"data_dir": "/d", "storage": {"layout": "blocks", "block_readings": 97}}"#)
        #expect(blocks.storage.layout == .blocks && blocks.storage.blockReadings == 97)
        #expect(failure(#"{"data_dir": "/d", "storage": {"layout": "columns"}}"#).contains("storage.layout"))
        for bad in ["0", "65537", "\"4096\""] {
            #expect(failure(#"{"data_dir": "/d", "storage": {"block_readings": \#(bad)}}"#).contains("storage.block_readings"))
        }
        let postgres = failure(#"{"database": "postgres://u@127.0.0.1:5432/db", "storage": {"layout": "blocks"}}"#)
        #expect(postgres.contains("storage.layout") && postgres.contains("PostgreSQL"))
    }

    /// A damaged block (its bytes overwritten, cut short, or its summary wrong) makes the query
    /// that needs it fail with the block named; nothing crashes and nothing is silently skipped.
    @Test(arguments: ["UPDATE reading_blocks SET data = substr(data, 1, length(data) - 3)",
                      "UPDATE reading_blocks SET data = x'0105'", "UPDATE reading_blocks SET data = x''",
                      "UPDATE reading_blocks SET readings = readings + 1", "UPDATE reading_blocks SET last_seq = last_seq + 1",
                      "UPDATE reading_blocks SET max_timestamp = min_timestamp",
                      "UPDATE reading_blocks SET data = x'02' || substr(data, 2)"])
    func damagedBlocksAreClearErrors(damage: String) async throws {
        let batch = Fixtures.batch(first: 1, count: 300)
        try await Self.withBothLayouts(groups: [([batch], 1)]) { _, blocks, path in
            do {
                let database = try SQLiteDatabase(path: path)
                try database.execute(damage)
            }
            let series = try #require(try await blocks.series(device: "gateway-1", key: batch.seriesKeys[0]))
            await #expect {
                _ = try await blocks.pageEnd(of: series, after: nil, from: .min, to: .max, limit: 1_000)
            } throws: { error in
                "\(error)".contains("reading_blocks block")
            }
        }
    }

    /// Every cut of a block and every single-byte change either decodes to a block of the stated
    /// count or throws a codec error: never a crash, never more readings than stated.
    @Test func hostileColumnBlocksThrow() throws {
        let count = 50
        let offsets = (0..<count).map { Int64($0 * 3) }
        let timestamps = (0..<count).map { 1_700_000_000_000_000_000 + Int64($0) * 1_000_000_000 }
        let values = (0..<count).map { $0 == 7 ? Double.nan : Double($0) * 0.25 - 3 }
        let block = offsets.withUnsafeBufferPointer { o in
            timestamps.withUnsafeBufferPointer { t in
                values.withUnsafeBufferPointer { v in ColumnBlock.encode(sequenceOffsets: o, timestamps: t, values: v) }
            }
        }
        let decoded = try block.withUnsafeBytes { try ColumnBlock.decode($0, expectedCount: count) }
        #expect(decoded.sequenceOffsets == offsets && decoded.timestamps == timestamps)
        #expect(decoded.values.map(\.bitPattern) == values.map(\.bitPattern))
        #expect(throws: CodecError.self) { try block.withUnsafeBytes { try ColumnBlock.decode($0, expectedCount: count + 1) } }
        for length in 0..<block.count {
            #expect(throws: CodecError.self) {
                try Array(block[0..<length]).withUnsafeBytes { try ColumnBlock.decode($0, expectedCount: count) }
            }
        }
        #expect(throws: CodecError.self) { try (block + [0]).withUnsafeBytes { try ColumnBlock.decode($0, expectedCount: count) } }
        for index in block.indices {
            for flip: UInt8 in [0x01, 0x80, 0xFF] {
                var changed = block
                changed[index] ^= flip
                if let columns = try? changed.withUnsafeBytes({ try ColumnBlock.decode($0, expectedCount: count) }) {
                    #expect(columns.timestamps.count == count && columns.values.count == count)
                }
            }
        }
    }

    /// A clean stop leaves an empty WAL even when the background checkpointer is busy with the
    /// log at that moment (a checkpoint after every commit here): it waits for it, then truncates.
    @Test(arguments: ReadingLayout.allCases)
    func aCleanStopTruncatesTheWALWhileABackgroundCheckpointRuns(layout: ReadingLayout) throws {
        try withTemporaryDirectory(prefix: "clean-stop") { directory in
            for attempt in 0..<8 {
                let path = directory + "/\(attempt).sqlite"
                var configuration = SQLiteReadingStore.Configuration()
                configuration.layout = layout
                configuration.backgroundCheckpoint.checkpointPages = 1
                let store = try SQLiteReadingStore(path: path, configuration: configuration)
                for batch in 0..<12 {
                    _ = try store.store([Fixtures.batch(first: UInt64(batch * 20_000 + 1), count: 20_000)], receivedAt: 1)
                }
                store.finishForShutdown()
                #expect(SQLiteDatabase.fileSizes(ofDatabaseAt: path).wal == 0, "attempt \(attempt)")
            }
        }
    }

    /// Blocks at rest are far smaller than rows for regular sensor data (the benchmark measures real data).
    @Test func blocksTakeAFractionOfTheRowsSpace() throws {
        let batches = (0..<20).map { Fixtures.batch(first: UInt64($0 * 5_000 + 1), count: 5_000) }
        try withTemporaryDirectory(prefix: "block-size") { directory in
            var sizes: [ReadingLayout: Int64] = [:]
            for layout in ReadingLayout.allCases {
                let path = directory + "/\(layout.rawValue).sqlite"
                var configuration = SQLiteReadingStore.Configuration()
                configuration.layout = layout
                let store = try SQLiteReadingStore(path: path, configuration: configuration)
                for batch in batches { _ = try store.store([batch], receivedAt: 1) }
                store.finishForShutdown()
                let files = SQLiteDatabase.fileSizes(ofDatabaseAt: path)
                #expect(files.wal == 0)
                sizes[layout] = files.database
            }
            let rows = try #require(sizes[.rows])
            let blocks = try #require(sizes[.blocks])
            #expect(blocks * 5 < rows, "rows \(rows) bytes, blocks \(blocks) bytes")
        }
    }
}
