import CloudCollector
import EdgeSyncCodec
import EdgeSyncPostgres
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import Testing

/// `PostgresReadingQueries` answers like `SQLiteReadingQueries`: the same batches go into both
/// stores and every query method is asked the same questions of both. Reading ids differ between
/// the backends (PostgreSQL draws them in chunks), so readings are compared by what they hold and
/// pages by the readings they end at; ids are compared only for order within one backend.
@Suite(.serialized) struct PostgresQueryTests {
    static let base: Int64 = 1_700_000_000_000_000_000
    static let second: Int64 = 1_000_000_000

    /// A reading as both backends must return it: everything but the storage id.
    struct Seen: Hashable, CustomStringConvertible {
        var timestamp: Int64
        var stream: UInt64
        var seq: Int64
        var bits: UInt64

        init(_ reading: QueriedReading) {
            timestamp = reading.timestamp
            stream = reading.stream
            seq = reading.seq
            bits = reading.value.bitPattern
        }

        var description: String { "\(stream)#\(seq)@\(timestamp)=\(Double(bitPattern: bits))" }
    }

    static let awkward: [Double] = [
        -0.0, 0.0, .nan, -Double.nan, Double(bitPattern: 0x7FF0_0000_0000_0001),
        Double(bitPattern: 0xFFF8_DEAD_BEEF_0042), .infinity, -.infinity, .leastNonzeroMagnitude,
        .greatestFiniteMagnitude, 0.1, -1e-300, 21.5, 1e200, -1e200, 3.25,
    ]

    /// Groups of batches to store, each with its receive time: several devices and streams, keys
    /// with LIKE wildcards, a series of more than 10,000 readings with shared timestamps, late and
    /// out-of-order readings (blocks overlapping in time), awkward values, clock skew samples.
    static func groups() -> [(batches: [Batch], receivedAt: Int64)] {
        let keys = ["big", "temp%_x", "temp_x", "tempAx", "odd"]
        func first(_ seq: UInt64, count: Int, offset: Int) -> Batch {
            var readings: [Reading] = (0..<count).map { index in
                let i = offset + index
                // Pairs share a timestamp, so paging must break ties by id.
                return Reading(series: 0, timestamp: base + Int64(i / 2) * second, value: Double(i % 997) * 0.5)
            }
            // A few readings of the small series, interleaved (stored grouped by series).
            for index in stride(from: 0, to: 60, by: 1) {
                readings.insert(
                    Reading(
                        series: 1 + index % 3, timestamp: base + Int64(offset + index) * second,
                        value: Double(index) - 20),
                    at: index * 7)
            }
            return Batch(
                device: "gw-a", stream: 1, firstSequence: seq, seriesKeys: keys, readings: readings,
                sentAt: base + Int64(offset) * second)
        }
        let one = first(1, count: 6_000, offset: 0)
        let two = first(UInt64(one.readings.count) + 1, count: 6_500, offset: 6_000)
        // A second stream of the same device arriving late: timestamps throughout the first
        // streams' span, some exactly on theirs (ties across streams), some a nanosecond after.
        let lateReadings = (0..<1_500).map { (j: Int) -> Reading in
            let timestamp: Int64 = base + Int64(j * 4) * second + Int64(j % 2)
            return Reading(series: 0, timestamp: timestamp, value: Double(j % 50) + 0.25)
        }
        let late = Batch(
            device: "gw-a", stream: 2, firstSequence: 1, seriesKeys: ["big"], readings: lateReadings,
            sentAt: base - 300 * second)
        // Out of order within one batch: one block spans a wide range backwards in time.
        let jumbled = Batch(
            device: "gw-a", stream: 1, firstSequence: two.firstSequence + UInt64(two.readings.count),
            seriesKeys: ["big"],
            readings: (0..<300).map { (j: Int) -> Reading in
                let timestamp: Int64 = base + Int64(7_000 - j * 20) * second + 7
                return Reading(series: 0, timestamp: timestamp, value: Double(-j))
            })
        let odd = Batch(
            device: "gw-b", stream: 0xFFFF_FFFF_FFFF_FFF0, firstSequence: 10, seriesKeys: ["odd", "temp%_x"],
            readings: awkward.enumerated().flatMap { index, value in
                [
                    Reading(series: 0, timestamp: base + Int64(index / 3) * second, value: value),
                    Reading(series: 1, timestamp: base - Int64(index) * second, value: value),
                ]
            }, sentAt: base + 5 * second)
        let empty = Batch(device: "gw-c", stream: 3, firstSequence: 1, seriesKeys: ["unused"], readings: [])
        return [
            ([one], base + 10 * second),
            ([two, odd], base + 20 * second),
            ([late, empty], base + 30 * second),
            ([jumbled, one], base + 40 * second),  // `one` again: all duplicates
        ]
    }

    static let dropped: [(DroppedRangesReport, Int64)] = [
        (DroppedRangesReport(device: "gw-a", stream: 1, dropped: [SequenceRange(50_000, 50_010)]), base + 50 * second),
        (DroppedRangesReport(device: "gw-d", stream: 9, dropped: [SequenceRange(1, 5), SequenceRange(8, 8)]), base),
    ]

    /// Runs `body` with SQLite and PostgreSQL queries over the same stored data.
    static func withBothBackends(
        groups: [(batches: [Batch], receivedAt: Int64)], dropped: [(DroppedRangesReport, Int64)] = [],
        _ body: (_ sqlite: any ReadingQueries, _ postgres: any ReadingQueries, _ postgresURL: String) async throws ->
            Void
    ) async throws {
        try await withPostgresDatabase { url in
            try await withTemporaryDirectory(prefix: "pg-query-parity") { directory in
                let path = directory + "/collector.sqlite"
                let sqliteStore = try SQLiteReadingStore(path: path)
                let postgresStore = try PostgresReadingStore(session: PostgresSession.Configuration(url: url))
                for group in groups {
                    let a = try sqliteStore.store(group.batches, receivedAt: group.receivedAt)
                    let b = try postgresStore.store(group.batches, receivedAt: group.receivedAt)
                    try #require(a.outcomes == b.outcomes)
                }
                for (report, receivedAt) in dropped {
                    try sqliteStore.recordDropped(report, device: report.device, receivedAt: receivedAt)
                    try postgresStore.recordDropped(report, device: report.device, receivedAt: receivedAt)
                }
                let sqlite = try SQLiteReadingQueries(databasePath: path)
                let pool = PostgresPool(
                    configuration: PostgresSession.Configuration(url: url), count: 2, label: "test.query")
                try await body(sqlite, PostgresReadingQueries(pool: pool), url)
            }
        }
    }

    /// Pages through `[from, to)` as the readings endpoint does (page ends first, then fetches of
    /// `fetch` up to each end); returns the pages. Checks that positions strictly increase.
    static func walk(
        _ queries: any ReadingQueries, _ series: SeriesReference, from: Int64, to: Int64, limit: Int, fetch: Int,
        after start: ReadingPosition? = nil
    ) async throws -> [(end: ReadingPosition, hasMore: Bool, readings: [QueriedReading])] {
        var pages: [(end: ReadingPosition, hasMore: Bool, readings: [QueriedReading])] = []
        var after = start
        var previous: ReadingPosition?
        while true {
            guard let end = try await queries.pageEnd(of: series, after: after, from: from, to: to, limit: limit) else {
                break
            }
            var page: [QueriedReading] = []
            var position = after
            while true {
                let fetched = try await queries.readings(
                    of: series, after: position, through: end.last, from: from, to: to, limit: fetch)
                page += fetched
                guard fetched.count == fetch, let last = fetched.last else { break }
                position = last.position
            }
            for reading in page {
                if let previous { #expect(previous < reading.position) }
                previous = reading.position
                #expect(reading.timestamp >= from && reading.timestamp < to)
            }
            #expect(page.count <= limit && page.count >= 1)
            #expect(page.last?.position == end.last)
            pages.append((end.last, end.hasMore, page))
            if !end.hasMore { break }
            after = end.last
            try #require(pages.count <= 20_000)
        }
        return pages
    }

    /// Both backends page `[from, to)` into the same pages of the same readings.
    static func expectSameWalk(
        _ sqlite: any ReadingQueries, _ sqliteSeries: SeriesReference, _ postgres: any ReadingQueries,
        _ postgresSeries: SeriesReference, from: Int64, to: Int64, limit: Int, fetch: Int,
        expectedCount: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let a = try await walk(sqlite, sqliteSeries, from: from, to: to, limit: limit, fetch: fetch)
        let b = try await walk(postgres, postgresSeries, from: from, to: to, limit: limit, fetch: fetch)
        let context = Comment(rawValue: "\(sqliteSeries.key) [\(from), \(to)) limit \(limit) fetch \(fetch)")
        #expect(a.map(\.readings.count) == b.map(\.readings.count), context, sourceLocation: sourceLocation)
        #expect(a.map(\.hasMore) == b.map(\.hasMore), context, sourceLocation: sourceLocation)
        #expect(a.map(\.end.timestamp) == b.map(\.end.timestamp), context, sourceLocation: sourceLocation)
        let left = a.flatMap(\.readings).map(Seen.init)
        let right = b.flatMap(\.readings).map(Seen.init)
        #expect(left == right, context, sourceLocation: sourceLocation)
        if let expectedCount {
            #expect(left.count == expectedCount, context, sourceLocation: sourceLocation)
            #expect(Set(left).count == expectedCount, context, sourceLocation: sourceLocation)
        }
    }

    /// Both sides page one series the same way over the whole range and over ranges whose edges lie
    /// exactly at readings, one past them, empty or inverted, each reading once.
    static func expectSameWalks(
        _ groups: [(batches: [Batch], receivedAt: Int64)], _ summary: SeriesSummary,
        _ lhs: any ReadingQueries, _ a: SeriesReference, _ rhs: any ReadingQueries, _ b: SeriesReference,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let first = summary.firstTimestamp ?? base
        let last = summary.lastTimestamp ?? base
        let stored = expectedCount(groups, device: summary.device, key: summary.series, from: .min, to: .max)
        for limit in summary.series == "big" ? [997, 5_000, 20_000] : [1, 3, 16, 1_000] {
            for fetch in [limit, 256] {
                try await expectSameWalk(
                    lhs, a, rhs, b, from: .min, to: .max, limit: limit, fetch: fetch, expectedCount: stored,
                    sourceLocation: sourceLocation)
            }
        }
        let edges: [(Int64, Int64)] = [
            (first, last), (first, last + 1), (first + 1, last), (first, first), (last, last),
            (first, first + 1), (last, last + 1), (last + 1, .max), (.min, first), (last, first),
            (first + (last - first) / 3, first + 2 * (last - first) / 3),
        ]
        for (from, to) in edges {
            let expected = expectedCount(groups, device: summary.device, key: summary.series, from: from, to: to)
            for limit in summary.series == "big" ? [1_000, 7_919] : [1, 2, 50] {
                try await expectSameWalk(
                    lhs, a, rhs, b, from: from, to: to, limit: limit, fetch: 300, expectedCount: expected,
                    sourceLocation: sourceLocation)
            }
        }
    }

    @Test func everyQueryAnswersAsOnSQLite() async throws {
        let groups = Self.groups()
        try await Self.withBothBackends(groups: groups, dropped: Self.dropped) { sqlite, postgres, _ in
            // Series listings, with prefixes holding % and _ that must match only themselves.
            for device in [nil, "gw-a", "gw-b", "gw-c", "nobody"] as [String?] {
                for prefix in ["", "temp", "temp%", "temp_", "temp%_", "tempA", "%", "_", "b", "big", "bigger", "odd"] {
                    for limit in [1, 2, 100, -1] {
                        let a = try await sqlite.series(device: device, prefix: prefix, limit: limit)
                        let b = try await postgres.series(device: device, prefix: prefix, limit: limit)
                        #expect(a == b, "device \(device ?? "nil") prefix \(prefix) limit \(limit)")
                    }
                }
            }
            let listed = try await sqlite.series(device: nil, prefix: "temp%", limit: 100)
            #expect(listed.map(\.series) == ["temp%_x", "temp%_x"])

            // Lookups; then everything about each series.
            #expect(try await postgres.series(device: "gw-a", key: "nothing") == nil)
            #expect(try await postgres.series(device: "gw-b", key: "big") == nil)
            let all = try await sqlite.series(device: nil, prefix: "", limit: 100)
            #expect(all.count >= 7)
            for summary in all {
                let a = try #require(try await sqlite.series(device: summary.device, key: summary.series))
                let b = try #require(try await postgres.series(device: summary.device, key: summary.series))
                #expect(a.device == b.device && a.key == b.key)
                let first = summary.firstTimestamp ?? Self.base
                let last = summary.lastTimestamp ?? Self.base
                try await Self.expectSameWalks(groups, summary, sqlite, a, postgres, b)
                try await Self.expectSameAfterPositions(sqlite, a, postgres, b, from: first, to: last + 1)
                // Aggregates with several steps, aligned and not.
                let steps: [Int64] = [1, 999_999_999, Self.second, 7 * Self.second, 3_600 * Self.second, .max]
                for step in steps {
                    for (from, to) in [
                        (first, last + 1), (first - 1, last), (first + 5, first + 5), (.min / 2, .max / 2),
                    ] {
                        if step == 1, to - from > 100 { continue }
                        let x = try await sqlite.aggregate(of: a, from: from, to: to, step: step)
                        let y = try await postgres.aggregate(of: b, from: from, to: to, step: step)
                        #expect(
                            x.map(BucketBits.init) == y.map(BucketBits.init),
                            "\(summary.series) aggregate [\(from), \(to)) step \(step)")
                    }
                }
            }

            // Streams, ranges (received and dropped) and stats.
            let a = try await sqlite.streams()
            let b = try await postgres.streams()
            #expect(a == b)
            #expect(a.count >= 4)
            #expect(b.first { $0.stream == 9 }?.dropped.ranges == [SequenceRange(1, 5), SequenceRange(8, 8)])
            #expect(b.first { $0.stream == 1 }?.skewSamples == 2)
        }
    }

    /// A bucket with its doubles as bits, so NaN and -0 compare exactly.
    struct BucketBits: Hashable {
        var start: Int64
        var count: Int64
        var min: UInt64?
        var max: UInt64?
        var mean: UInt64?
        init(_ bucket: AggregateBucket) {
            start = bucket.start
            count = bucket.count
            min = bucket.min?.bitPattern
            max = bucket.max?.bitPattern
            mean = bucket.mean?.bitPattern
        }
    }

    /// Pages that start after a given reading (its own id on each backend) or between readings.
    static func expectSameAfterPositions(
        _ sqlite: any ReadingQueries, _ sqliteSeries: SeriesReference, _ postgres: any ReadingQueries,
        _ postgresSeries: SeriesReference, from: Int64, to: Int64
    ) async throws {
        let a = try await walk(sqlite, sqliteSeries, from: from, to: to, limit: 100_000, fetch: 100_000)
            .flatMap(\.readings)
        let b = try await walk(postgres, postgresSeries, from: from, to: to, limit: 100_000, fetch: 100_000)
            .flatMap(\.readings)
        try #require(a.map(Seen.init) == b.map(Seen.init))
        guard !a.isEmpty else { return }
        var indices = Set([0, 1, a.count / 2, a.count - 2, a.count - 1].filter { $0 >= 0 && $0 < a.count })
        indices.insert(a.count * 9 / 10)
        for index in indices.sorted() {
            let positions: [(ReadingPosition, ReadingPosition)] = [
                (a[index].position, b[index].position),
                (
                    ReadingPosition(timestamp: a[index].timestamp, readingID: .min),
                    ReadingPosition(timestamp: b[index].timestamp, readingID: .min)
                ),
                (
                    ReadingPosition(timestamp: a[index].timestamp, readingID: .max),
                    ReadingPosition(timestamp: b[index].timestamp, readingID: .max)
                ),
            ]
            for (left, right) in positions {
                for limit in [1, 2, 999] {
                    let x = try await sqlite.pageEnd(of: sqliteSeries, after: left, from: from, to: to, limit: limit)
                    let y = try await postgres.pageEnd(
                        of: postgresSeries, after: right, from: from, to: to, limit: limit)
                    #expect(x?.hasMore == y?.hasMore && x?.last.timestamp == y?.last.timestamp, "after #\(index)")
                    guard let x, let y else {
                        #expect(x == nil && y == nil)
                        continue
                    }
                    let p = try await sqlite.readings(
                        of: sqliteSeries, after: left, through: x.last, from: from, to: to, limit: limit)
                    let q = try await postgres.readings(
                        of: postgresSeries, after: right, through: y.last, from: from, to: to, limit: limit)
                    #expect(p.map(Seen.init) == q.map(Seen.init), "after #\(index) limit \(limit)")
                    #expect(p.last?.position == x.last && q.last?.position == y.last)
                }
            }
        }
    }

    /// How many distinct readings `groups` stored for one series in `[from, to)`.
    static func expectedCount(
        _ groups: [(batches: [Batch], receivedAt: Int64)], device: String, key: String, from: Int64, to: Int64
    ) -> Int {
        var seen: Set<[UInt64]> = []
        for batch in groups.flatMap(\.batches) where batch.device == device {
            for (index, reading) in batch.readings.enumerated()
            where batch.seriesKeys[reading.series] == key && reading.timestamp >= from && reading.timestamp < to {
                seen.insert([batch.stream, batch.firstSequence + UInt64(index)])
            }
        }
        return seen.count
    }

    /// Keys and devices that are hard to quote are stored, listed, found and read back as they are.
    @Test func hostileKeysAndDevicesAreData() async throws {
        let hostile = [
            "it's", "\"quoted\"", "back\\slash", "\\", "'; DROP TABLE readings; --", "x' OR '1'='1", "%", "_", "%%_",
            "温度,site=東京", "e\u{301}", "emoji 🌡️", "tab\there", "new\nline", "$1", "$$dollar$$",
            "E'\\x00'", "COPY readings FROM STDIN",
        ]
        let batches = ["gw'1", "gw\\2", "ünï\"cødé"].enumerated().map { index, device in
            Batch(
                device: device, stream: UInt64(index + 1), firstSequence: 1, seriesKeys: hostile,
                readings: hostile.indices.map {
                    Reading(series: $0, timestamp: Self.base + Int64($0), value: Double($0))
                })
        }
        try await Self.withBothBackends(groups: [(batches, Self.base)]) { sqlite, postgres, _ in
            for device in ["gw'1", "gw\\2", "ünï\"cødé"] {
                let listed = try await postgres.series(device: device, prefix: "", limit: 100)
                #expect(listed == (try await sqlite.series(device: device, prefix: "", limit: 100)))
                #expect(Set(listed.map(\.series)) == Set(hostile))
                for (index, key) in hostile.enumerated() {
                    let prefixed = try await postgres.series(device: device, prefix: key, limit: 100)
                    #expect(prefixed == (try await sqlite.series(device: device, prefix: key, limit: 100)), "\(key)")
                    #expect(prefixed.allSatisfy { $0.series.utf8.starts(with: key.utf8) }, "\(key)")
                    #expect(prefixed.contains { $0.series == key })
                    let a = try #require(try await sqlite.series(device: device, key: key))
                    let b = try #require(try await postgres.series(device: device, key: key))
                    #expect(a.key == key && b.key == key && b.device == device)
                    let readings = try await Self.walk(
                        postgres, b, from: .min, to: .max, limit: 10, fetch: 10
                    ).flatMap(\.readings)
                    #expect(
                        readings.map(\.value) == [Double(index)]
                            && readings.map(\.timestamp) == [Self.base + Int64(index)])
                }
            }
            // Listed in byte order, as SQLite's BINARY collation has it: 0x6D ("m") before 0xCC.
            #expect(
                try await postgres.series(device: "gw'1", prefix: "e", limit: 10).map(\.series) == [
                    "emoji 🌡️", "e\u{301}",
                ])
            #expect(try await postgres.series(device: "gw'1'", key: "it's") == nil)
            #expect(try await sqlite.streams() == (try await postgres.streams()))
        }
    }

    /// PostgreSQL's float8 `sum` and `avg` raise "value out of range" where finite values overflow
    /// (`avg` already when squares do, near 1e154); the aggregate must answer anyway. Where the
    /// sum only overflows part-way, the mean is the exact sum's, not infinity as SQLite's
    /// left-to-right sum gives.
    @Test func largeValuesNeitherFailTheAggregateNorOverflowItsMean() async throws {
        let values: [[Double]] = [
            [1e200, -1e200, 4], [1e300, 1e300],
            [.greatestFiniteMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude],
            [.greatestFiniteMagnitude, .greatestFiniteMagnitude], [Double("-1e-310")!, Double("3e-320")!, .leastNonzeroMagnitude],
            [.nan, 1e308, 1e308],
        ]
        let readings = values.enumerated().flatMap { bucket, values in
            values.map { Reading(series: 0, timestamp: Self.base + Int64(bucket) * Self.second, value: $0) }
        }
        let batch = Batch(device: "d", stream: 1, firstSequence: 1, seriesKeys: ["k"], readings: readings)
        try await Self.withBothBackends(groups: [([batch], Self.base)]) { sqlite, postgres, _ in
            let a = try #require(try await sqlite.series(device: "d", key: "k"))
            let b = try #require(try await postgres.series(device: "d", key: "k"))
            let to = Self.base + Int64(values.count) * Self.second
            let x = try await sqlite.aggregate(of: a, from: Self.base, to: to, step: Self.second)
            let y = try await postgres.aggregate(of: b, from: Self.base, to: to, step: Self.second)
            #expect(y.map(\.count) == values.map { Int64($0.count) })
            #expect(x.map(\.count) == y.map(\.count))
            #expect(x.map(\.min) == y.map(\.min) && x.map(\.max) == y.map(\.max))
            let means = y.map(\.mean)
            #expect(means[0] == 4.0 / 3 && x[0].mean == 4.0 / 3)
            #expect(means[1] == 1e300 && x[1].mean == 1e300)
            #expect(means[4] == x[4].mean && means[4] != nil)
            // gfm + gfm - gfm: SQLite's running sum overflows to infinity; the exact mean is gfm / 3.
            #expect(x[2].mean == .infinity && means[2] == .greatestFiniteMagnitude / 3)
            #expect(means[3] == .infinity && x[3].mean == .infinity)
            #expect(means[5] == .infinity && x[5].mean == .infinity)
        }
    }

    /// On a populated, analyzed database, pages read blocks from `series_blocks_by_end` and
    /// readings by primary key: no statement scans all of readings, wherever the window lies.
    @Test func pagesReadBlocksAndThePrimaryKeyNeverAllReadings() async throws {
        try await withPostgresDatabase { url in
            let store = try PostgresReadingStore(session: PostgresSession.Configuration(url: url))
            let keys = (0..<20).map { "s\($0)" }
            for chunk in 0..<40 {
                let readings = (0..<5_000).map { index -> Reading in
                    let n = chunk * 5_000 + index
                    return Reading(series: n % 20, timestamp: Self.base + Int64(n / 20) * Self.second, value: Double(n))
                }
                let batch = Batch(
                    device: "d", stream: 1, firstSequence: UInt64(chunk * 5_000 + 1), seriesKeys: keys,
                    readings: readings)
                _ = try store.store([batch], receivedAt: Self.base)
            }
            try PostgresConnection(url: url).execute("VACUUM ANALYZE")
            let queries = PostgresReadingQueries(
                pool: PostgresPool(
                    configuration: PostgresSession.Configuration(url: url), count: 1, label: "test.plans"))
            let series = try #require(try await queries.series(device: "d", key: "s7"))
            let last = Self.base + 10_000 * Self.second
            let windows: [(Int64, Int64, Bool)] = [
                (Self.base, Self.base + 1_000 * Self.second, false),
                (Self.base + 5_000 * Self.second, Self.base + 6_000 * Self.second, true),
                (last - 1_000 * Self.second, .max, true),
            ]
            for (from, to, late) in windows {
                let plans = try await queries.plans(of: series, from: from, to: to, step: 3_600 * Self.second)
                try #require(plans.count == 5)
                for plan in plans {
                    #expect(!plan.contains("Seq Scan on readings"), "\(plan)")
                }
                for plan in plans.dropFirst() {
                    #expect(plan.contains("readings_pkey"), "\(plan)")
                }
                if late {
                    // Early windows may start from series_blocks_by_start: every block of the
                    // series lies after `from` there, so both indexes read the same entries.
                    for plan in plans.prefix(4) {
                        #expect(plan.contains("series_blocks_by_end"), "\(plan)")
                    }
                }
            }
        }
    }

    /// A database nobody answers for: every query fails as unavailable (the API's 503), quickly.
    @Test func anUnreachableDatabaseIsUnavailable() async throws {
        let port = try freeLoopbackPort()
        var configuration = PostgresSession.Configuration(url: "postgres://postgres@127.0.0.1:\(port)/nothing")
        configuration.connectTimeoutSeconds = 2
        let queries = PostgresReadingQueries(
            pool: PostgresPool(configuration: configuration, count: 1, label: "test.down"))
        let series = SeriesReference(device: "d", key: "k", id: 1)
        let calls: [@Sendable () async throws -> Void] = [
            { _ = try await queries.series(device: nil, prefix: "", limit: 10) },
            { _ = try await queries.series(device: "d", key: "k") },
            { _ = try await queries.pageEnd(of: series, after: nil, from: 0, to: 10, limit: 5) },
            { _ = try await queries.aggregate(of: series, from: 0, to: 10, step: 1) },
            { _ = try await queries.streams() },
        ]
        for call in calls {
            do {
                try await call()
                Issue.record("a query against a closed port succeeded")
            } catch let error as PostgresError {
                #expect(error.isUnavailable, "\(error)")
            }
        }
    }
}
