import CloudCollector
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Synchronization
import Testing

/// The query API over real loopback sockets against known data: range edges, empty ranges, paging
/// through everything with cursors, every format parsed back bit-exactly, aggregates, completeness
/// and clock figures, operator authentication and hostile parameters.
struct QueryAPITests {
    static let operatorToken = "operator-token-0123456789abcdef"
    /// 2023-11-14T22:13:20Z.
    static let base: Int64 = 1_700_000_000_000_000_000
    static let second: Int64 = 1_000_000_000
    static let keys = ["temperature,site=a celsius", "odd\\ name,tag=x\\=y value", "humidity,site=a percent"]
    static let nanWithPayload = Double(bitPattern: 0x7FF8_0000_0000_0123)

    /// 50 readings of series 0, two per second (pairs share a timestamp, so paging must break
    /// ties), with NaN, -0.0 and the infinities among them; then 5 readings of series 1.
    static func knownBatch() -> Batch {
        var readings: [Reading] = (0..<50).map { index in
            let value: Double =
                switch index {
                case 3: nanWithPayload
                case 4: -0.0
                case 5: .infinity
                case 6: -.infinity
                default: Double(index) * 0.1
                }
            return Reading(series: 0, timestamp: base + Int64(index / 2) * second, value: value)
        }
        readings += (0..<5).map { Reading(series: 1, timestamp: base + Int64($0) * second, value: 1.5 + Double($0)) }
        return Batch(device: "gateway-1", stream: 0xABCD, firstSequence: 1, seriesKeys: keys, readings: readings)
    }

    /// Series 0 of `knownBatch` in query order: (timestamp, seq, value).
    static var expectedSeries0: [(Int64, Int64, Double)] {
        knownBatch().readings.enumerated().filter { $0.element.series == 0 }
            .map { ($0.element.timestamp, Int64($0.offset + 1), $0.element.value) }
    }

    static func withKnownData<T>(
        now: @escaping @Sendable () -> Int64 = { base + 100 * second },
        configure: @escaping (inout CollectorService.Configuration) -> Void = { _ in },
        _ body: (RunningCollector, [String: String]) async throws -> T
    ) async throws -> T {
        try await RunningCollector.with(
            configure: { configuration in
                configuration.operatorToken = operatorToken
                configure(&configuration)
            }, now: now
        ) {
            collector, tokens in
            let response = try await collector.post(
                ProtocolPath.batches, body: try BatchEncoder().encode(knownBatch()), token: tokens["gateway-1"])
            try #require(response.status == 200)
            return try await body(collector, tokens)
        }
    }

    func get(_ collector: RunningCollector, _ target: String) async throws -> BlockingHTTPClient.Response {
        try await collector.get(target, token: Self.operatorToken)
    }

    static func encoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
    }

    static let series0 = "/v1/readings?device=gateway-1&series=" + encoded(keys[0])

    // MARK: Decoding answers

    struct Page: Decodable {
        var device: String
        var series: String
        var readings: [Row]
        var nextCursor: String?

        enum CodingKeys: String, CodingKey {
            case device, series, readings
            case nextCursor = "next_cursor"
        }
    }

    struct Row: Decodable {
        var timestamp: Int64
        var value: Double
        var stream: String
        var seq: Int64

        enum CodingKeys: String, CodingKey {
            case timestamp, value, stream, seq
            case valueBits = "value_bits"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            timestamp = try container.decode(Int64.self, forKey: .timestamp)
            stream = try container.decode(String.self, forKey: .stream)
            seq = try container.decode(Int64.self, forKey: .seq)
            if let number = try? container.decode(Double.self, forKey: .value) {
                value = number
            } else {
                let text = try container.decode(String.self, forKey: .value)
                if let bits = try container.decodeIfPresent(String.self, forKey: .valueBits) {
                    value = Double(bitPattern: UInt64(bits, radix: 16) ?? 0)
                } else {
                    value = text == "inf" ? .infinity : (text == "-inf" ? -.infinity : .nan)
                }
            }
        }
    }

    func page(_ response: BlockingHTTPClient.Response) throws -> Page {
        try JSONDecoder().decode(Page.self, from: Data(response.body))
    }

    func triples(_ page: Page) -> [(Int64, Int64, UInt64)] {
        page.readings.map { ($0.timestamp, $0.seq, $0.value.bitPattern) }
    }

    static func bits(_ rows: [(Int64, Int64, Double)]) -> [(Int64, Int64, UInt64)] {
        rows.map { ($0.0, $0.1, $0.2.bitPattern) }
    }

    // MARK: Readings

    @Test(arguments: ReadingLayout.allCases)
    func jsonKeepsEveryValueBitExactInTimestampOrder(layout: ReadingLayout) async throws {
        try await Self.withKnownData(configure: { $0.storage.layout = layout }) { collector, _ in
            let response = try await get(collector, Self.series0)
            #expect(response.status == 200)
            #expect(response.header("content-type") == "application/json")
            #expect(response.header("transfer-encoding") == "chunked")
            #expect(response.header("x-next-cursor") == nil)
            let page = try page(response)
            #expect(page.device == "gateway-1" && page.series == Self.keys[0] && page.nextCursor == nil)
            #expect(page.readings.allSatisfy { $0.stream == String(0xABCD) })
            #expect(triples(page).elementsEqual(Self.bits(Self.expectedSeries0), by: ==))
        }
    }

    @Test func fromIsInclusiveAndToExclusiveInEveryNotation() async throws {
        try await Self.withKnownData { collector, _ in
            // Seconds 3...5 of the series: readings 6 through 11.
            let expected = Array(Self.bits(Self.expectedSeries0)[6..<12])
            for (from, to) in [
                (String(Self.base + 3 * Self.second), String(Self.base + 6 * Self.second)),
                ("2023-11-14T22:13:23Z", "2023-11-14T22:13:26Z"),
                ("2023-11-14T23:13:23.000000000+01:00", "2023-11-14T22:13:25.999999999Z"),
            ] {
                let target = Self.series0 + "&from=" + Self.encoded(from) + "&to=" + Self.encoded(to)
                let page = try page(try await get(collector, target))
                let got = triples(page)
                let want = to.hasSuffix(".999999999Z") ? Array(expected) : expected
                #expect(got.elementsEqual(want, by: ==), "\(from) ..< \(to)")
            }
            // One nanosecond either side of an edge.
            let justAfter = try page(
                try await get(
                    collector,
                    Self.series0 + "&from=\(Self.base + 3 * Self.second + 1)&to=\(Self.base + 4 * Self.second)"))
            #expect(justAfter.readings.isEmpty)
            let justBefore = try page(
                try await get(
                    collector,
                    Self.series0 + "&from=\(Self.base + 3 * Self.second)&to=\(Self.base + 3 * Self.second + 1)"))
            #expect(justBefore.readings.map(\.seq) == [7, 8])
        }
    }

    @Test func emptyRangesAnswerAnEmptyList() async throws {
        try await Self.withKnownData { collector, _ in
            for range in [
                "&from=\(Self.base)&to=\(Self.base)",  // from == to
                "&to=\(Self.base)",  // before the first reading
                "&from=\(Self.base + 25 * Self.second)",  // after the last
            ] {
                for format in ["json", "csv", "lp"] {
                    let response = try await get(collector, Self.series0 + range + "&format=\(format)")
                    #expect(response.status == 200)
                    switch format {
                    case "json": #expect(try page(response).readings.isEmpty)
                    case "csv": #expect(response.text == "timestamp,value,stream,seq\n")
                    default: #expect(response.text.isEmpty)
                    }
                }
            }
            // A series with no readings at all.
            let empty = try await get(
                collector, "/v1/readings?device=gateway-1&series=" + Self.encoded(Self.keys[2]))
            #expect(try page(empty).readings.isEmpty)
        }
    }

    @Test(arguments: ReadingLayout.allCases, [1, 7, 25, 49, 50, 51])
    func cursorsPageThroughEverythingOnce(layout: ReadingLayout, limit: Int) async throws {
        try await Self.withKnownData(configure: { $0.storage.layout = layout }) { collector, _ in
            var target = Self.series0 + "&limit=\(limit)"
            var collected: [(Int64, Int64, UInt64)] = []
            var pages = 0
            while true {
                let response = try await get(collector, target)
                try #require(response.status == 200)
                let page = try page(response)
                pages += 1
                #expect(page.readings.count <= limit)
                collected += triples(page)
                #expect(response.header("x-next-cursor") == page.nextCursor)
                guard let cursor = page.nextCursor else {
                    #expect(response.header("link") == nil)
                    break
                }
                #expect(page.readings.count == limit)
                let link = try #require(response.header("link"))
                #expect(link == "<\(Self.series0)&limit=\(limit)&cursor=\(cursor)>; rel=\"next\"")
                target = Self.series0 + "&limit=\(limit)&cursor=\(cursor)"
                try #require(pages <= 60)
            }
            #expect(pages == (50 + limit - 1) / limit)
            #expect(collected.elementsEqual(Self.bits(Self.expectedSeries0), by: ==))
        }
    }

    /// Tiny fetches and chunks: a page is many database steps and many chunks, with fetch
    /// boundaries inside runs of equal timestamps.
    @Test(arguments: [1, 7, 50])
    func smallFetchesAndChunksStreamTheSameReadings(limit: Int) async throws {
        try await Self.withKnownData(configure: { configuration in
            configuration.query.readingsPerFetch = 3
            configuration.query.chunkBytes = 16
        }) { collector, _ in
            var collected: [(Int64, Int64, UInt64)] = []
            var target = Self.series0 + "&limit=\(limit)"
            while true {
                let page = try page(try await get(collector, target))
                collected += triples(page)
                guard let cursor = page.nextCursor else { break }
                target = Self.series0 + "&limit=\(limit)&cursor=\(cursor)"
            }
            #expect(collected.elementsEqual(Self.bits(Self.expectedSeries0), by: ==))
            let csv = try await get(collector, Self.series0 + "&format=csv")
            #expect(csv.text.split(separator: "\n").count == 51)
        }
    }

    /// Readings committed while a client pages through a series appear once, on a later page,
    /// when they sort after the cursor; the pages already fetched are not repeated.
    @Test func readingsArrivingWhilePagingAppearExactlyOnce() async throws {
        try await Self.withKnownData { collector, tokens in
            let first = try page(try await get(collector, Self.series0 + "&limit=20"))
            let cursor = try #require(first.nextCursor)
            // 10 more readings of series 0, stamped after everything stored.
            let later = Batch(
                device: "gateway-1", stream: 0xABCD, firstSequence: 56, seriesKeys: Self.keys,
                readings: (0..<10).map {
                    Reading(series: 0, timestamp: Self.base + Int64(100 + $0) * Self.second, value: Double($0))
                })
            let posted = try await collector.post(
                ProtocolPath.batches, body: try BatchEncoder().encode(later), token: tokens["gateway-1"])
            try #require(posted.status == 200)
            var collected = first.readings.map(\.seq)
            var target = Self.series0 + "&limit=20&cursor=\(cursor)"
            while true {
                let page = try page(try await get(collector, target))
                collected += page.readings.map(\.seq)
                guard let next = page.nextCursor else { break }
                target = Self.series0 + "&limit=20&cursor=\(next)"
            }
            #expect(collected == Self.expectedSeries0.map(\.1) + Array(56...65))
        }
    }

    @Test(arguments: ReadingLayout.allCases)
    func csvParsesBack(layout: ReadingLayout) async throws {
        try await Self.withKnownData(configure: { $0.storage.layout = layout }) { collector, _ in
            let response = try await get(collector, Self.series0 + "&format=csv")
            #expect(response.header("content-type") == "text/csv; charset=utf-8")
            var lines = response.text.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.removeFirst() == "timestamp,value,stream,seq")
            #expect(lines.removeLast() == "")
            let rows = try lines.map { line -> (Int64, Int64, Double) in
                let fields = line.split(separator: ",")
                try #require(fields.count == 4)
                #expect(fields[2] == "\(0xABCD)")
                let value = try #require(Double(String(fields[1])))  // Swift reads NaN, inf, -inf
                return (try #require(Int64(fields[0])), try #require(Int64(fields[3])), value)
            }
            #expect(rows.count == 50)
            for (got, want) in zip(rows, Self.expectedSeries0) {
                #expect(got.0 == want.0 && got.1 == want.1)
                // CSV spells NaN without its payload; everything else is bit-exact.
                #expect(want.2.isNaN ? got.2.isNaN : got.2.bitPattern == want.2.bitPattern)
            }
        }
    }

    @Test(arguments: ReadingLayout.allCases)
    func lineProtocolRebuildsMeasurementTagsAndFieldAndSkipsNonFiniteValues(layout: ReadingLayout) async throws {
        try await Self.withKnownData(configure: { $0.storage.layout = layout }) { collector, _ in
            let odd = try await get(
                collector, "/v1/readings?device=gateway-1&format=lp&series=" + Self.encoded(Self.keys[1]))
            #expect(odd.header("content-type") == "text/plain; charset=utf-8")
            let expected = (0..<5).map {
                "odd\\ name,tag=x\\=y value=\(1.5 + Double($0)) \(Self.base + Int64($0) * Self.second)\n"
            }
            #expect(odd.text == expected.joined())

            let lines = try await get(collector, Self.series0 + "&format=lp").text.split(separator: "\n")
            let finite = Self.expectedSeries0.filter { $0.2.isFinite }
            #expect(lines.count == finite.count)
            for (line, want) in zip(lines, finite) {
                let parts = line.split(separator: " ")
                try #require(parts.count == 3)
                #expect(parts[0] == "temperature,site=a")
                #expect(parts[1].hasPrefix("celsius="))
                #expect(Double(String(parts[1].dropFirst("celsius=".count)))?.bitPattern == want.2.bitPattern)
                #expect(Int64(parts[2]) == want.0)
            }
        }
    }

    // MARK: Series and aggregates

    @Test(arguments: ReadingLayout.allCases)
    func seriesListsFirstAndLastTimestampsFilteredByDeviceAndPrefix(layout: ReadingLayout) async throws {
        try await Self.withKnownData(configure: { $0.storage.layout = layout }) { collector, _ in
            let all = try JSONDecoder().decode(
                SeriesList.self, from: Data(try await get(collector, "/v1/series").body))
            #expect(!all.truncated)
            #expect(
                all.series == [
                    SeriesSummary(device: "gateway-1", series: Self.keys[2], firstTimestamp: nil, lastTimestamp: nil),
                    SeriesSummary(
                        device: "gateway-1", series: Self.keys[1], firstTimestamp: Self.base,
                        lastTimestamp: Self.base + 4 * Self.second),
                    SeriesSummary(
                        device: "gateway-1", series: Self.keys[0], firstTimestamp: Self.base,
                        lastTimestamp: Self.base + 24 * Self.second),
                ])
            let prefixed = try JSONDecoder().decode(
                SeriesList.self, from: Data(try await get(collector, "/v1/series?device=gateway-1&prefix=te").body))
            #expect(prefixed.series.map(\.series) == [Self.keys[0]])
            let wildcard = try JSONDecoder().decode(
                SeriesList.self, from: Data(try await get(collector, "/v1/series?prefix=%25").body))
            #expect(wildcard.series.isEmpty)  // % is a character, not a pattern
            let limited = try JSONDecoder().decode(
                SeriesList.self, from: Data(try await get(collector, "/v1/series?limit=2").body))
            #expect(limited.truncated && limited.series.count == 2)
            let otherDevice = try JSONDecoder().decode(
                SeriesList.self, from: Data(try await get(collector, "/v1/series?device=gateway-2").body))
            #expect(otherDevice.series.isEmpty)
        }
    }

    @Test(arguments: ReadingLayout.allCases)
    func aggregateBucketsCountMinMaxMean(layout: ReadingLayout) async throws {
        try await Self.withKnownData(configure: { $0.storage.layout = layout }) { collector, _ in
            let target =
                "/v1/aggregate?device=gateway-1&series=" + Self.encoded(Self.keys[1])
                + "&from=\(Self.base - Self.second)&to=\(Self.base + 5 * Self.second)&step=2s"
            let response = try await get(collector, target)
            #expect(response.status == 200)
            let answer = try JSONDecoder().decode(AggregateAnswer.self, from: Data(response.body))
            #expect(answer.step == 2 * Self.second && answer.from == Self.base - Self.second)
            // Buckets [-1,1) [1,3) [3,5) seconds: values 1.5 | 2.5, 3.5 | 4.5, 5.5.
            #expect(answer.buckets.map(\.start) == [-1, 1, 3].map { Self.base + $0 * Self.second })
            #expect(answer.buckets.map(\.count) == [1, 2, 2])
            #expect(answer.buckets.map(\.min) == [1.5, 2.5, 4.5])
            #expect(answer.buckets.map(\.max) == [1.5, 3.5, 5.5])
            #expect(answer.buckets.map(\.mean) == [1.5, 3.0, 5.0])
            #expect(response.text.contains("\"min\":1.5"))

            // NaNs are counted but left out of min/max/mean; infinities pass through as strings.
            let nanBucket = try await get(
                collector,
                "/v1/aggregate?device=gateway-1&series=" + Self.encoded(Self.keys[0])
                    + "&from=\(Self.base + Self.second)&to=\(Self.base + 2 * Self.second)&step=1s")
            let nan = try JSONDecoder().decode(AggregateAnswer.self, from: Data(nanBucket.body))
            #expect(nan.buckets.count == 1 && nan.buckets[0].count == 2)
            #expect(nan.buckets[0].min == 0.2 && nan.buckets[0].max == 0.2)  // readings 2 (0.2) and 3 (NaN)
            let infinite = try await get(
                collector,
                "/v1/aggregate?device=gateway-1&series=" + Self.encoded(Self.keys[0])
                    + "&from=\(Self.base + 2 * Self.second)&to=\(Self.base + 4 * Self.second)&step=2s")
            #expect(infinite.text.contains("\"min\":\"-inf\"") && infinite.text.contains("\"max\":\"inf\""))
        }
    }

    // MARK: Devices

    @Test func devicesReportCompletenessGapsDroppedLagAndClock() async throws {
        let now = Mutex<Int64>(Self.base + 100 * Self.second)
        try await RunningCollector.with(
            configure: { $0.operatorToken = Self.operatorToken }, now: { now.withLock { $0 } }
        ) { collector, tokens in
            // Version 2 frames, as agents send them today: the clock travels in the payload.
            func post(_ batch: Batch, device: String = "gateway-1") async throws {
                let response = try await collector.post(
                    ProtocolPath.batches, body: try BatchEncoder(options: EncodingOptions(version: .v2)).encode(batch), token: tokens[device])
                try #require(response.status == 200)
            }
            func batch(_ first: UInt64, _ count: Int, sentAt: Int64, timestamp: (Int) -> Int64) -> Batch {
                Batch(
                    device: "gateway-1", stream: 7, firstSequence: first, seriesKeys: ["t"],
                    readings: (0..<count).map { Reading(series: 0, timestamp: timestamp($0), value: 1) },
                    sentAt: sentAt)
            }
            // Stream 7: 1...10 and 21...30 arrive (11...20 missing), 31...35 dropped at the edge,
            // 36...40 arrive. The gateway's clock runs 2 s behind, then 4 s behind.
            try await post(batch(1, 10, sentAt: Self.base + 98 * Self.second) { Self.base + Int64($0) * Self.second })
            try await post(
                batch(21, 10, sentAt: Self.base + 98 * Self.second) { Self.base + Int64(20 + $0) * Self.second })
            let report = DroppedRangesReport(device: "gateway-1", stream: 7, dropped: [SequenceRange(31, 35)])
            let dropped = try await collector.post(
                ProtocolPath.droppedRanges, body: Array(try JSONEncoder().encode(report)), token: tokens["gateway-1"],
                contentType: "application/json")
            try #require(dropped.status == 200)
            now.withLock { $0 = Self.base + 200 * Self.second }
            try await post(
                batch(36, 5, sentAt: Self.base + 196 * Self.second) { Self.base + Int64(35 + $0) * Self.second })

            // gateway-2: a clock without RTC (1970) and one reading an hour ahead.
            try await post(
                Batch(
                    device: "gateway-2", stream: 9, firstSequence: 1, seriesKeys: ["t"],
                    readings: [
                        Reading(series: 0, timestamp: 5 * Self.second, value: 1),
                        Reading(series: 0, timestamp: Self.base + 200 * Self.second, value: 2),
                        Reading(series: 0, timestamp: Self.base + 3800 * Self.second, value: 3),
                    ]),
                device: "gateway-2")
            now.withLock { $0 = Self.base + 300 * Self.second }

            let response = try await get(collector, "/v1/devices")
            #expect(response.status == 200)
            let report2 = try JSONDecoder().decode(DevicesReport.self, from: Data(response.body))
            #expect(report2.now == Self.base + 300 * Self.second)
            #expect(report2.devices.map(\.device) == ["gateway-1", "gateway-2"])
            let device = report2.devices[0]
            let stream = try #require(device.streams.first)
            #expect(stream.stream == "7")
            #expect(stream.received == [SequenceRange(1, 10), SequenceRange(21, 30), SequenceRange(36, 40)])
            #expect(stream.gaps == [SequenceRange(11, 20)])
            #expect(stream.dropped == [SequenceRange(31, 35)])
            #expect(stream.readings == 25 && stream.gapReadings == 10 && stream.droppedReadings == 5)
            #expect(stream.completeness == 25.0 / 35.0)
            #expect(device.completeness == 25.0 / 35.0 && device.readings == 25)
            #expect(stream.newestTimestamp == Self.base + 39 * Self.second)
            #expect(stream.oldestTimestamp == Self.base)
            #expect(stream.lagSeconds == 261)
            #expect(stream.lastSeen == Self.base + 200 * Self.second)
            // EWMA: 2 s, 2 s, then 4 s a hundred seconds later, which weighs 1 - e^(-100 s / 10 s).
            #expect(stream.clockSkewSamples == 3)
            #expect(abs((stream.clockSkewSeconds ?? 0) - (2 + 2 * (1 - exp(-10.0)))) < 1e-9)
            #expect(stream.lastClockSkewSeconds == 4)
            #expect(stream.futureReadings == 0 && stream.pastReadings == 0 && !stream.implausibleTimestamps)
            #expect(!device.implausibleTimestamps)

            let odd = report2.devices[1]
            #expect(odd.streams[0].futureReadings == 1 && odd.streams[0].pastReadings == 1)
            #expect(odd.implausibleTimestamps && odd.streams[0].clockSkewSamples == 0)
            #expect(odd.clockSkewSeconds == nil && odd.completeness == 1)

            // Keys with no value are null, not missing: the shape is stable.
            let text = try await get(collector, "/v1/devices?device=gateway-2").text
            #expect(text.contains("\"clock_skew_seconds\":null"))
            #expect(!text.contains("gateway-1"))
        }
    }

    /// Batches the collector refuses (the edge quarantines them) are counted per device with the
    /// last refusal, beside completeness; a device whose every batch was refused is listed too.
    @Test func devicesReportRefusedBatchesAndTheLastRefusal() async throws {
        let now = Mutex<Int64>(Self.base + 100 * Self.second)
        try await RunningCollector.with(
            configure: { $0.operatorToken = Self.operatorToken }, now: { now.withLock { $0 } }
        ) { collector, tokens in
            let nul = Batch(
                device: "gateway-1", stream: 7, firstSequence: 1, seriesKeys: ["bad\u{0}key"],
                readings: (0..<3).map { Reading(series: 0, timestamp: Self.base + Int64($0), value: 1) })
            let first = try await collector.post(
                ProtocolPath.batches, body: try BatchEncoder().encode(nul), token: tokens["gateway-1"])
            #expect(first.status == 400)
            now.withLock { $0 = Self.base + 150 * Self.second }
            let garbage = try await collector.post(
                ProtocolPath.batches, body: Array("not a frame at all, just text".utf8), token: tokens["gateway-2"])
            #expect(garbage.status == 400)
            let unauthenticated = try await collector.post(ProtocolPath.batches, body: [1, 2, 3], token: "wrong")
            #expect(unauthenticated.status == 401)
            let good = Batch(
                device: "gateway-1", stream: 7, firstSequence: 1, seriesKeys: ["t"],
                readings: [Reading(series: 0, timestamp: Self.base, value: 1)])
            let stored = try await collector.post(
                ProtocolPath.batches, body: try BatchEncoder().encode(good), token: tokens["gateway-1"])
            #expect(stored.status == 200)

            let response = try await get(collector, "/v1/devices")
            let report = try JSONDecoder().decode(DevicesReport.self, from: Data(response.body))
            #expect(report.devices.map(\.device) == ["gateway-1", "gateway-2"])
            let refusedOnce = report.devices[0]
            #expect(refusedOnce.refusedBatches == 1 && refusedOnce.refusedReadings == 3)
            #expect(refusedOnce.lastRefusal?.status == 400 && refusedOnce.lastRefusal?.error == "invalid_batch")
            #expect(refusedOnce.lastRefusal?.at == Self.base + 100 * Self.second)
            #expect(refusedOnce.lastRefusal?.message.contains("NUL") == true)
            #expect(refusedOnce.readings == 1 && refusedOnce.completeness == 1, "a refusal is not a gap")
            let onlyRefused = report.devices[1]
            #expect(onlyRefused.refusedBatches == 1 && onlyRefused.refusedReadings == 0, "undecodable: count unknown")
            #expect(onlyRefused.streams.isEmpty && onlyRefused.completeness == nil)
            #expect(onlyRefused.lastRefusal?.at == Self.base + 150 * Self.second)
            let text = try await get(collector, "/v1/devices?device=gateway-2").text
            #expect(text.contains("\"refused_batches\":1") && !text.contains("gateway-1"))
        }
    }

    // MARK: Authentication

    @Test func queryEndpointsNeedTheOperatorToken() async throws {
        try await Self.withKnownData { collector, tokens in
            for path in [
                "/v1/series", Self.series0, "/v1/devices", "/v1/aggregate?device=a&series=b&from=1&to=2&step=1",
            ] {
                for token in [nil, "wrong-token-0123456789", tokens["gateway-1"]] {
                    let response = try await collector.get(path, token: token)
                    #expect(response.status == 401, "\(path) with \(token ?? "no token")")
                    #expect(response.header("www-authenticate")?.hasPrefix("Bearer") == true)
                    let body = try JSONDecoder().decode(ErrorBody.self, from: Data(response.body))
                    #expect(body.error == "unauthorized")
                }
            }
            // The operator token does not write.
            let write = try await collector.post(
                ProtocolPath.batches, body: try BatchEncoder().encode(Self.knownBatch()), token: Self.operatorToken)
            #expect(write.status == 401)
        }
    }

    @Test func queryAPIIsClosedWithoutAConfiguredToken() async throws {
        try await RunningCollector.with { collector, _ in
            let response = try await collector.get("/v1/devices", token: "anything-at-all-0123")
            #expect(response.status == 403)
            let body = try JSONDecoder().decode(ErrorBody.self, from: Data(response.body))
            #expect(body.error == "query_api_disabled")
            #expect(
                body.message.contains("--operator-token-file")
                    && body.message.contains("CLOUD_COLLECTOR_OPERATOR_TOKEN"))
        }
    }

    // MARK: Hostile parameters

    static let badRequests: [(String, String)] = [
        ("/v1/readings?device=gateway-1", "missing_parameter"),
        ("/v1/readings?series=t", "missing_parameter"),
        ("/v1/readings?device=gateway-1&series=t&from=abc", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&from=1e9", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&from=99999999999999999999", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&from=2023-02-30T00:00:00Z", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&from=2023-11-14T22:13:20", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&from=1%27%20OR%201%3D1--", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&from=10&to=5", "invalid_range"),
        ("/v1/readings?device=gateway-1&series=t&limit=0", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&limit=-1", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&limit=10000001", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&limit=99999999999999999999999", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&format=xml", "invalid_parameter"),
        ("/v1/readings?device=gateway-1&series=t&limit=5&limit=6", "duplicate_parameter"),
        ("/v1/readings?device=gateway-1&series=t&colour=red", "unknown_parameter"),
        ("/v1/readings?device=gateway-1&series=t%zz", "malformed_query"),
        ("/v1/readings?device=gateway-1&series=%FF", "malformed_query"),
        ("/v1/aggregate?device=gateway-1&series=t&from=0&to=10&step=0", "invalid_parameter"),
        ("/v1/aggregate?device=gateway-1&series=t&from=0&to=10&step=-5s", "invalid_parameter"),
        ("/v1/aggregate?device=gateway-1&series=t&from=0&to=10&step=5 parsecs", "invalid_parameter"),
        ("/v1/aggregate?device=gateway-1&series=t&from=0&step=1s", "missing_parameter"),
        ("/v1/aggregate?device=gateway-1&series=t&from=0&to=10", "missing_parameter"),
        ("/v1/series?limit=abc", "invalid_parameter"),
        ("/v1/series?device=", "invalid_parameter"),
        ("/v1/devices?all=1", "unknown_parameter"),
    ]

    @Test func hostileParametersGetClearJSONErrors() async throws {
        try await Self.withKnownData { collector, _ in
            var cases = Self.badRequests
            // Parameters that are fine alone but not for this series.
            let series = "/v1/readings?device=gateway-1&series=" + Self.encoded(Self.keys[0])
            let aggregate = "/v1/aggregate?device=gateway-1&series=" + Self.encoded(Self.keys[0])
            let otherCursor = try page(
                try await get(collector, "/v1/readings?device=gateway-1&limit=1&series=" + Self.encoded(Self.keys[1]))
            ).nextCursor
            cases += [
                (series + "&cursor=garbage!", "invalid_cursor"),
                (series + "&cursor=MTpub3Q", "invalid_cursor"),
                (series + "&cursor=\(try #require(otherCursor))", "invalid_cursor"),
                (aggregate + "&from=0&to=\(Self.base)&step=1s", "too_many_buckets"),
                (aggregate + "&from=\(Int64.min)&to=\(Int64.max)&step=1", "too_many_buckets"),
                (aggregate + "&from=0&to=10&step=\(Int64.max)d", "invalid_parameter"),
            ]
            for (target, code) in cases {
                let response = try await get(collector, target.replacingOccurrences(of: " ", with: "%20"))
                #expect(response.status == 400, "\(target)")
                #expect(response.header("content-type") == "application/json")
                let body = try JSONDecoder().decode(ErrorBody.self, from: Data(response.body))
                #expect(body.error == code, "\(target): \(body.message)")
                #expect(!body.message.isEmpty)
            }
            // An SQL-looking series name is just a name nobody stored.
            let sql = try await get(
                collector, "/v1/readings?device=gateway-1&series=" + Self.encoded("t'; DROP TABLE readings; --"))
            #expect(sql.status == 404)
            #expect(try JSONDecoder().decode(ErrorBody.self, from: Data(sql.body)).error == "unknown_series")
            #expect(try page(try await get(collector, series)).readings.count == 50)
        }
    }
}
