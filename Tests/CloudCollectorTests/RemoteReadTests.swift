import CloudCollector
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import PrometheusRemoteWrite
import Testing

/// Prometheus remote read and the labels API on a real collector over loopback: the label mapping,
/// every matcher kind, time ranges to the millisecond, limits, the operator token, and hostile bodies.
struct RemoteReadTests {
    static let token = QueryAPITests.operatorToken
    static let base: Int64 = 1_700_000_000_000_000_000
    static let second: Int64 = 1_000_000_000
    static let keys = [
        "http_requests_total,job=api value",  // as remote write stores it
        "temperature,site=a celsius",  // line protocol: __name__ temperature_celsius
        "temperature,site=b celsius",
        "odd-name,__secret=s,device=x value",  // names Prometheus does not allow, clashing tags
        "temperature celsius",  // no site
    ]

    /// gateway-1 (stream 0xABCD): 12 readings per series, every 10 s, series k value k*100 + i
    /// (series 0 counts up by 5). gateway-2 (stream 7): 3 readings of series 1.
    static func batches() -> [Batch] {
        var readings: [Reading] = []
        for series in 0..<keys.count {
            for index in 0..<12 {
                let value = series == 0 ? Double(100 + 5 * index) : Double(series * 100 + index) + 0.25
                readings.append(Reading(series: series, timestamp: base + Int64(index) * 10 * second, value: value))
            }
        }
        let other = (0..<3).map {
            Reading(series: 1, timestamp: base + Int64($0) * second + 500_000, value: Double(-$0))
        }
        return [
            Batch(device: "gateway-1", stream: 0xABCD, firstSequence: 1, seriesKeys: keys, readings: readings),
            Batch(device: "gateway-2", stream: 7, firstSequence: 1, seriesKeys: keys, readings: other),
        ]
    }

    static func withData<T>(
        configure: @escaping (inout CollectorService.Configuration) -> Void = { _ in },
        _ body: (RunningCollector) async throws -> T
    ) async throws -> T {
        try await RunningCollector.with(configure: { configuration in
            configuration.operatorToken = token
            configure(&configuration)
        }) { collector, tokens in
            for batch in batches() {
                let response = try await collector.post(
                    ProtocolPath.batches, body: try BatchEncoder().encode(batch), token: tokens[batch.device])
                try #require(response.status == 200)
            }
            return try await body(collector)
        }
    }

    static func read(
        _ collector: RunningCollector, body: [UInt8], token: String? = RemoteReadTests.token,
        headers extra: [(String, String)] = [("Content-Encoding", "snappy")]
    ) async throws -> BlockingHTTPClient.Response {
        let port = collector.port
        return try await onDedicatedThread {
            let client = BlockingHTTPClient(port: port)
            defer { client.close() }
            var headers = [("Content-Type", "application/x-protobuf"), ("X-Prometheus-Remote-Read-Version", "0.1.0")]
            headers += extra
            if let token { headers.append(("Authorization", "Bearer \(token)")) }
            return try client.post("/api/v1/read", body: body, headers: headers)
        }
    }

    static func query(
        _ collector: RunningCollector, _ matchers: [ReadRequest.LabelMatcher], from: Int64 = 0, to: Int64 = .max
    ) async throws -> [ReadResponse.Series] {
        let request = ReadRequest(queries: [.init(startTimestamp: from, endTimestamp: to, matchers: matchers)])
        let response = try await read(collector, body: request.snappyEncoded())
        try #require(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
        #expect(response.header("Content-Encoding") == "snappy")
        let message = try Snappy.decompress(response.body, maximumDecodedBytes: 1 << 26)
        let decoded = try ReadResponse.decode(protobuf: message)
        try #require(decoded.results.count == 1)
        return decoded.results[0]
    }

    static func labels(_ series: ReadResponse.Series) -> [String: String] {
        Dictionary(series.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    static let baseMilliseconds = base / 1_000_000

    @Test(arguments: ReadingLayout.allCases)
    func samplesAndLabelsAreTheStoredReadings(layout: ReadingLayout) async throws {
        try await Self.withData(configure: { $0.storage.layout = layout }) { collector in
            let series = try await Self.query(
                collector, [.init("__name__", .equal, "temperature_celsius"), .init("site", .equal, "a")])
            #expect(series.count == 2)
            let first = try #require(series.first)
            #expect(first.labels.map(\.name) == ["__name__", "device", "site", "stream"])
            #expect(
                Self.labels(first) == [
                    "__name__": "temperature_celsius", "device": "gateway-1", "site": "a", "stream": "43981",
                ])
            let expected: [WriteRequest.Sample] = (0..<12).map { index in
                WriteRequest.Sample(
                    value: Double(100 + index) + 0.25, timestamp: Self.baseMilliseconds + Int64(index) * 10_000)
            }
            #expect(first.samples == expected)
            // gateway-2's readings at +0.5 ms fall in their millisecond, rounded down.
            #expect(Self.labels(series[1])["device"] == "gateway-2")
            let other: [WriteRequest.Sample] = (0..<3).map { index in
                WriteRequest.Sample(value: Double(-index), timestamp: Self.baseMilliseconds + Int64(index) * 1000)
            }
            #expect(series[1].samples == other)

            let counter = try await Self.query(collector, [.init("__name__", .equal, "http_requests_total")])
            #expect(
                counter.map(Self.labels) == [
                    ["__name__": "http_requests_total", "job": "api", "device": "gateway-1", "stream": "43981"]
                ])

            let odd = try await Self.query(collector, [.init("__name__", .equal, "odd_name")])
            #expect(
                odd.map(Self.labels) == [
                    [
                        "__name__": "odd_name", "exported___secret": "s", "exported_device": "x", "device": "gateway-1",
                        "stream": "43981",
                    ]
                ])
        }
    }

    static func names(_ collector: RunningCollector, _ matchers: [ReadRequest.LabelMatcher]) async throws -> [String] {
        try await query(collector, matchers).map { series in
            let labels = Self.labels(series)
            return [labels["__name__"] ?? "", labels["site"] ?? "-", labels["device"] ?? ""].joined(separator: "/")
        }
    }

    @Test func everyMatcherKindSelects() async throws {
        try await Self.withData { collector in
            let temperature = ReadRequest.LabelMatcher("__name__", .equal, "temperature_celsius")
            let cases: [([ReadRequest.LabelMatcher], [String])] = [
                // Ordered by device, then by stored key ("temperature celsius" sorts before "temperature,…").
                (
                    [temperature, .init("site", .notEqual, "a")],
                    ["temperature_celsius/-/gateway-1", "temperature_celsius/b/gateway-1"]
                ),
                // An absent label is the empty value: site="" selects the series without site only.
                ([temperature, .init("site", .equal, "")], ["temperature_celsius/-/gateway-1"]),
                (
                    [temperature, .init("site", .regexMatch, "a|b"), .init("device", .regexNoMatch, "gateway-2")],
                    ["temperature_celsius/a/gateway-1", "temperature_celsius/b/gateway-1"]
                ),
                (
                    [.init("__name__", .regexMatch, "temp.*"), .init("device", .equal, "gateway-2")],
                    ["temperature_celsius/a/gateway-2"]
                ),
                ([.init("stream", .equal, "7")], ["temperature_celsius/a/gateway-2"]),
                (
                    [temperature, .init("stream", .notEqual, "7"), .init("site", .regexMatch, ".+")],
                    ["temperature_celsius/a/gateway-1", "temperature_celsius/b/gateway-1"]
                ),
                // Anchored: a prefix does not match.
                ([.init("__name__", .regexMatch, "temp")], []),
                ([.init("__name__", .equal, "nothing_here")], []),
            ]
            for (matchers, expected) in cases {
                let found = try await Self.names(collector, matchers)
                #expect(found == expected, "\(matchers)")
            }
        }
    }

    @Test func timeRangesIncludeBothEndsToTheMillisecond() async throws {
        try await Self.withData { collector in
            let name = ReadRequest.LabelMatcher("__name__", .equal, "http_requests_total")
            let start = Self.baseMilliseconds + 20_000
            let series = try await Self.query(collector, [name], from: start, to: start + 30_000)
            #expect(series.first?.samples.map(\.timestamp) == [0, 10_000, 20_000, 30_000].map { start + $0 })
            let inside = try await Self.query(collector, [name], from: start + 1, to: start + 29_999)
            #expect(inside.first?.samples.map(\.timestamp) == [start + 10_000, start + 20_000])
            // Nothing in range: the series is left out, not sent empty.
            #expect(try await Self.query(collector, [name], from: 0, to: 1000).isEmpty)
            #expect(try await Self.query(collector, [name], from: .min, to: .max).first?.samples.count == 12)
        }
    }

    @Test func severalQueriesAnswerInOrder() async throws {
        try await Self.withData { collector in
            let request = ReadRequest(
                queries: [
                    .init(startTimestamp: 0, endTimestamp: .max, matchers: [.init("__name__", .equal, "odd_name")]),
                    .init(startTimestamp: 0, endTimestamp: .max, matchers: [.init("__name__", .equal, "none")]),
                    .init(startTimestamp: 0, endTimestamp: .max, matchers: [.init("job", .equal, "api")]),
                ], acceptedResponseTypes: [.streamedXORChunks, .samples])
            let response = try await Self.read(collector, body: request.snappyEncoded())
            try #require(response.status == 200)
            let decoded = try ReadResponse.decode(
                protobuf: Snappy.decompress(response.body, maximumDecodedBytes: 1 << 20))
            #expect(
                decoded.results.map { $0.map { Self.labels($0)["__name__"] ?? "" } } == [
                    ["odd_name"], [], ["http_requests_total"],
                ])
        }
    }

    static func error(_ response: BlockingHTTPClient.Response) -> String {
        struct Body: Decodable { var error: String }
        return (try? JSONDecoder().decode(Body.self, from: Data(response.body)).error) ?? "(no error body)"
    }

    @Test func limitsOnSeriesAndSamplesAreClearErrors() async throws {
        try await Self.withData(configure: { configuration in
            configuration.prometheus.maximumSamples = 20
            configuration.prometheus.maximumSeries = 3
            configuration.prometheus.readingsPerFetch = 5
        }) { collector in
            let all = ReadRequest(queries: [
                .init(startTimestamp: 0, endTimestamp: .max, matchers: [.init("device", .regexMatch, ".+")])
            ])
            let tooMany = try await Self.read(collector, body: all.snappyEncoded())
            #expect(tooMany.status == 400)
            #expect(Self.error(tooMany) == "too_many_samples")
            let series = ReadRequest(queries: [
                .init(
                    startTimestamp: Self.baseMilliseconds, endTimestamp: Self.baseMilliseconds,
                    matchers: [.init("device", .equal, "gateway-1")])
            ])
            let response = try await Self.read(collector, body: series.snappyEncoded())
            #expect(response.status == 400)
            #expect(Self.error(response) == "too_many_series")
            // Within the limits, paging through fetches of 5 still returns every sample.
            #expect(try await Self.query(collector, [.init("job", .equal, "api")]).first?.samples.count == 12)
        }
        try await Self.withData(configure: { $0.prometheus.maximumCandidateSeries = 2 }) { collector in
            let response = try await Self.read(
                collector,
                body: ReadRequest(queries: [
                    .init(startTimestamp: 0, endTimestamp: 1, matchers: [.init("job", .equal, "api")])
                ]).snappyEncoded())
            #expect(Self.error(response) == "too_many_candidate_series")
            // __name__ narrows the candidates in storage.
            #expect(try await Self.query(collector, [.init("__name__", .equal, "http_requests_total")]).count == 1)
        }
    }

    @Test func theOperatorTokenIsRequired() async throws {
        try await Self.withData { collector in
            let body = ReadRequest(queries: [
                .init(startTimestamp: 0, endTimestamp: .max, matchers: [.init("job", .equal, "api")])
            ]).snappyEncoded()
            #expect(try await Self.read(collector, body: body, token: nil).status == 401)
            let wrong = try await Self.read(collector, body: body, token: "wrong-token-0123456789abcdef")
            #expect(wrong.status == 401)
            #expect(wrong.body.count < 200 && !String(decoding: wrong.body, as: UTF8.self).contains("http_requests"))
            #expect(try await collector.get("/api/v1/labels", token: nil).status == 401)
            #expect(try await collector.get("/api/v1/label/job/values", token: "nope").status == 401)
        }
    }

    static func refusal(
        _ collector: RunningCollector, _ body: [UInt8], headers: [(String, String)] = [("Content-Encoding", "snappy")]
    ) async throws -> String {
        let response = try await read(collector, body: body, headers: headers)
        return "\(response.status) \(error(response))"
    }

    @Test func hostileBodiesAreRefusedWithTheirReason() async throws {
        try await Self.withData { collector in
            let valid = ReadRequest(queries: [
                .init(startTimestamp: 0, endTimestamp: .max, matchers: [.init("job", .equal, "api")])
            ])
            let chunksOnly = ReadRequest(queries: valid.queries, acceptedResponseTypes: [.streamedXORChunks])
            let badRegex = ReadRequest(queries: [
                .init(startTimestamp: 0, endTimestamp: 1, matchers: [.init("job", .regexMatch, "(?i)API")])
            ])
            let backwards = ReadRequest(queries: [
                .init(startTimestamp: 5, endTimestamp: 1, matchers: [.init("job", .equal, "api")])
            ])
            let cases: [([UInt8], String)] = [
                ([0xFF, 0xFF, 0xFF, 0xFF, 0x0F], "413 request_too_large"),  // a preamble claiming 4 GiB
                ([40, 0x00], "400 malformed_snappy"),  // a literal past the end
                (valid.protobufEncoded(), "400 malformed_snappy"),  // uncompressed
                (Snappy.compress(Array(valid.protobufEncoded().dropLast(3))), "400 malformed_protobuf"),  // truncated
                (Snappy.compress([0x0A, 4, 0x1A, 2, 0x08, 9]), "400 invalid_request"),  // matcher type 9
                ([UInt8](repeating: 0, count: 300 * 1024), "413 http_error"),  // over the body limit
                (chunksOnly.snappyEncoded(), "400 unsupported_response_type"),
                (badRegex.snappyEncoded(), "400 invalid_regex"),
                (backwards.snappyEncoded(), "400 invalid_range"),
            ]
            for (body, expected) in cases {
                let found = try await Self.refusal(collector, body)
                #expect(found == expected)
            }
            let gzip = try await Self.refusal(collector, valid.snappyEncoded(), headers: [("Content-Encoding", "gzip")])
            #expect(gzip == "415 unsupported_encoding")
            // A backtracking bomb is answered (linear-time matching), with the right result.
            let bomb = String(repeating: "(a*)*", count: 30) + "b"
            let none = try await Self.query(collector, [.init("__name__", .regexMatch, bomb)])
            #expect(none.isEmpty)
            let one = try await Self.query(collector, [.init("job", .regexMatch, "(a|p|i)+|(x+x+)+y")])
            #expect(one.count == 1)
            // The server is still well after all of that.
            let again = try await Self.query(collector, valid.queries[0].matchers)
            #expect(again.count == 1)
        }
    }

    // MARK: Labels API

    struct Answer<T: Decodable>: Decodable {
        var status: String
        var data: T
    }

    func api<T: Decodable>(_ collector: RunningCollector, _ target: String, as: T.Type) async throws -> T {
        let response = try await collector.get(target, token: Self.token)
        try #require(response.status == 200, "\(target): \(String(decoding: response.body, as: UTF8.self))")
        let answer = try JSONDecoder().decode(Answer<T>.self, from: Data(response.body))
        #expect(answer.status == "success")
        return answer.data
    }

    static func encoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
    }

    @Test func labelsAPIListsNamesValuesAndSeries() async throws {
        try await Self.withData { collector in
            #expect(
                try await api(collector, "/api/v1/labels", as: [String].self) == [
                    "__name__", "device", "exported___secret", "exported_device", "job", "site", "stream",
                ])
            #expect(
                try await api(collector, "/api/v1/label/__name__/values", as: [String].self) == [
                    "http_requests_total", "odd_name", "temperature_celsius",
                ])
            #expect(try await api(collector, "/api/v1/label/site/values", as: [String].self) == ["a", "b"])
            #expect(try await api(collector, "/api/v1/label/stream/values", as: [String].self) == ["43981", "7"])
            let match = Self.encoded("temperature_celsius{site=~\"a|b\", device!=\"gateway-2\"}")
            #expect(
                try await api(collector, "/api/v1/label/site/values?match[]=\(match)", as: [String].self) == ["a", "b"])
            let series = try await api(
                collector, "/api/v1/series?match[]=\(Self.encoded("{job=\"api\"}"))", as: [[String: String]].self)
            #expect(
                series == [["__name__": "http_requests_total", "job": "api", "device": "gateway-1", "stream": "43981"]])
            // Two selectors are a union; a time range outside the data selects nothing.
            let union = try await api(
                collector, "/api/v1/series?match[]=odd_name&match[]=\(Self.encoded("{job='api'}"))",
                as: [[String: String]].self)
            #expect(union.count == 2)
            #expect(
                try await api(collector, "/api/v1/series?match[]=odd_name&start=1&end=2", as: [[String: String]].self)
                    .isEmpty)
            #expect(
                try await api(collector, "/api/v1/labels?start=1600000000&end=1600000001", as: [String].self).isEmpty)
        }
    }

    @Test(arguments: [
        ("/api/v1/series", "missing_parameter"),
        ("/api/v1/series?match[]=" + encoded("{job=~\".*\"}"), "invalid_selector"),
        ("/api/v1/series?match[]=" + encoded("{job=\"a\""), "invalid_selector"),
        ("/api/v1/series?match[]=" + encoded("up{job=\"a\\q\"}"), "invalid_selector"),
        ("/api/v1/series?match[]=" + encoded("up{job=~\"(\"}"), "invalid_regex"),
        ("/api/v1/labels?start=yesterday", "invalid_parameter"), ("/api/v1/labels?bogus=1", "unknown_parameter"),
        ("/api/v1/labels?match[]=%zz", "malformed_query"), ("/api/v1/label/job/other", "not_found"),
    ])
    func labelsAPIRefusesBadParameters(target: String, code: String) async throws {
        try await Self.withData { collector in
            let response = try await collector.get(target, token: Self.token)
            #expect(response.status == (code == "not_found" ? 404 : 400))
            #expect(Self.error(response) == code)
        }
    }
}
