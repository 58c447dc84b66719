import EdgeAgent
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import HTTPCore
import PrometheusRemoteWrite
import Synchronization
import Testing

/// A sink that records appends, or refuses them with a chosen spool error; tests await its events.
final class RecordingSink: ReadingSink {
    private struct State {
        var appends: [[IncomingReading]] = []
        var refusal: SpoolError.Kind?
        var refusals = 0
        var next: UInt64 = 1
        var waiters: [(condition: @Sendable (Int, Int) -> Bool, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    init(refusing kind: SpoolError.Kind? = nil) {
        state.withLock { $0.refusal = kind }
    }

    var appends: [[IncomingReading]] { state.withLock { $0.appends } }
    var readings: [IncomingReading] { appends.flatMap { $0 } }

    func refuse(_ kind: SpoolError.Kind?) {
        state.withLock { $0.refusal = kind }
    }

    func append(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> SequenceRange {
        let (result, ready) = state.withLock { state -> (Result<SequenceRange, SpoolError>, [CheckedContinuation<Void, Never>]) in
            let result: Result<SequenceRange, SpoolError>
            if let refusal = state.refusal {
                state.refusals += 1
                result = .failure(SpoolError(refusal, "refused by the test"))
            } else {
                state.appends.append(
                    readings.map {
                        IncomingReading(seriesKey: seriesKeys[$0.series], timestamp: $0.timestamp, value: $0.value)
                    })
                result = .success(SequenceRange(state.next, state.next + UInt64(readings.count) - 1))
                state.next += UInt64(readings.count)
            }
            let stored = state.appends.reduce(0) { $0 + $1.count }
            let refusals = state.refusals
            var ready: [CheckedContinuation<Void, Never>] = []
            state.waiters.removeAll { waiter in
                guard waiter.condition(stored, refusals) else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return (result, ready)
        }
        for continuation in ready { continuation.resume() }
        return try result.get()
    }

    /// Returns once `condition(readings stored, refusals so far)` holds.
    func wait(until condition: @escaping @Sendable (_ stored: Int, _ refusals: Int) -> Bool) async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if condition(state.appends.reduce(0) { $0 + $1.count }, state.refusals) { return true }
                state.waiters.append((condition, continuation))
                return false
            }
            if now { continuation.resume() }
        }
    }
}

func request(
    _ method: String, _ target: String, body: [UInt8] = [], headers: [(String, String)] = []
) -> HTTPRequest {
    var fields = HTTPHeaders()
    for (name, value) in headers { fields.add(name, value) }
    return HTTPRequest(head: HTTPRequestHead(method: method, target: target, headers: fields), body: HTTPRequestBody(bytes: body))
}

extension HTTPResponse {
    var bodyText: String {
        if case .bytes(let bytes) = body { return String(decoding: bytes, as: UTF8.self) }
        return ""
    }
}

@Suite struct InputEndpointsTests {
    static let now: Int64 = 1_700_000_000_123_456_789

    func endpoints(_ sink: RecordingSink, configure: (inout InputEndpoints.Configuration) -> Void = { _ in })
        -> InputEndpoints
    {
        var configuration = InputEndpoints.Configuration()
        configure(&configuration)
        return InputEndpoints(configuration: configuration, sink: sink, now: { Self.now })
    }

    @Test func influxV1WriteStoresEveryLineOnceDurableWithPrecision() async throws {
        let sink = RecordingSink()
        let body = Array("cpu,host=a usage=1.5 1700000000\ncpu,host=a usage=2 1700000001\nmem free=3i\n".utf8)
        let response = try await endpoints(sink).respond(
            to: request("POST", "/write?db=telegraf&precision=s", body: body), context: HTTPRequestContext())
        #expect(response.status == .noContent)
        #expect(sink.appends.count == 1)
        #expect(
            sink.readings == [
                IncomingReading(seriesKey: "cpu,host=a usage", timestamp: 1_700_000_000_000_000_000, value: 1.5),
                IncomingReading(seriesKey: "cpu,host=a usage", timestamp: 1_700_000_001_000_000_000, value: 2),
                IncomingReading(seriesKey: "mem free", timestamp: Self.now, value: 3),
            ])
    }

    @Test func someBadLinesAreAPartialWriteThatStoresTheRestAndNamesTheFirst() async throws {
        let sink = RecordingSink()
        let inputs = endpoints(sink)
        let body = Array("m v=1 1\nm v=x 2\nm v=3 3\nm v=4 4 junk\n".utf8)
        let v1 = try await inputs.respond(to: request("POST", "/write?db=x", body: body), context: HTTPRequestContext())
        #expect(v1.status == .badRequest)
        #expect(
            v1.bodyText
                == #"{"error":"partial write: unable to parse 'm v=x 2': line 2, column 5: field \"v\": expected a number, found \"x\" (and 1 more bad lines) dropped=2"}"#
                + "\n")
        #expect(v1.headers["X-Influxdb-Error"]?.hasPrefix("partial write: unable to parse 'm v=x 2'") == true)
        #expect(sink.readings.map(\.timestamp) == [1, 3])
        let v2 = try await inputs.respond(
            to: request("POST", "/api/v2/write?bucket=b", body: body), context: HTTPRequestContext())
        #expect(v2.status == .badRequest && v2.bodyText.contains(#""code":"invalid""#))
        #expect(v2.bodyText.contains("partial write: unable to parse 'm v=x 2'") && v2.bodyText.contains("dropped=2"))
        // The good lines were stored by the first write: the second is a retry of them.
        #expect(sink.readings.count == 2 && inputs.statistics.retriedReadings.load(ordering: .relaxed) == 2)
        #expect(inputs.statistics.rejectedLines.load(ordering: .relaxed) == 4)
    }

    @Test func stringFieldsAndRoundedIntegersAreCountedAndTheRestStored() async throws {
        let sink = RecordingSink()
        let inputs = endpoints(sink)
        let body = Array(
            #"system,host=a uptime=86400i,uptime_format="1 day,  0:00",n=9007199254740993i 1"#.utf8)
        let response = try await inputs.respond(
            to: request("POST", "/write?db=telegraf", body: body), context: HTTPRequestContext())
        #expect(response.status == .noContent)
        #expect(sink.readings.map(\.value) == [86400, 9_007_199_254_740_992])
        #expect(inputs.statistics.skippedStringFields.load(ordering: .relaxed) == 1)
        #expect(inputs.statistics.roundedIntegers.load(ordering: .relaxed) == 1)
        // Strings only: nothing to store, and still a success.
        let strings = try await inputs.respond(
            to: request("POST", "/write?db=telegraf", body: Array(#"m s="x" 1"#.utf8)), context: HTTPRequestContext())
        #expect(strings.status == .noContent && sink.appends.count == 1)
    }

    @Test func collectdWriteHTTPJSONBecomesReadingsWithInfluxDBsCollectdMapping() async throws {
        let sink = RecordingSink()
        let inputs = endpoints(sink)
        // As collectd 5.12's format_json writes it; memory's NaN is null.
        let body = Array(
            #"""
            [{"values":[0.25,0.5,0.75],"dstypes":["gauge","gauge","gauge"],"dsnames":["shortterm","midterm","longterm"],"time":1700000000.123,"interval":10.000,"host":"gw 17","plugin":"load","plugin_instance":"","type":"load","type_instance":""},
             {"values":[null],"dstypes":["gauge"],"dsnames":["value"],"time":1700000000.124,"interval":10.000,"host":"gw 17","plugin":"memory","plugin_instance":"","type":"memory","type_instance":"used"},
             {"values":[12345],"dstypes":["derive"],"dsnames":["value"],"time":1700000000.125,"interval":10.000,"host":"gw 17","plugin":"cpu","plugin_instance":"0","type":"cpu","type_instance":"idle"}]
            """#.utf8)
        let response = try await inputs.respond(
            to: request("POST", "/collectd", body: body, headers: [("Content-Type", "application/json")]),
            context: HTTPRequestContext())
        #expect(response.status == .noContent, "\(response.bodyText)")
        #expect(
            sink.readings == [
                IncomingReading(seriesKey: #"load_shortterm,host=gw\ 17,type=load value"#, timestamp: 1_700_000_000_123_000_000, value: 0.25),
                IncomingReading(seriesKey: #"load_midterm,host=gw\ 17,type=load value"#, timestamp: 1_700_000_000_123_000_000, value: 0.5),
                IncomingReading(seriesKey: #"load_longterm,host=gw\ 17,type=load value"#, timestamp: 1_700_000_000_123_000_000, value: 0.75),
                IncomingReading(
                    seriesKey: #"cpu_value,host=gw\ 17,instance=0,type=cpu,type_instance=idle value"#,
                    timestamp: 1_700_000_000_125_000_000, value: 12345),
            ])
        #expect(inputs.statistics.skippedSamples.load(ordering: .relaxed) == 1)
    }

    @Test func collectdWriteHTTPCommandBecomesTheSameReadingsAsJSON() async throws {
        let sink = RecordingSink()
        let inputs = endpoints(sink)
        // As collectd 5.12's write_http writes Format "Command": a quoted identifier when it holds a
        // space, interval, then time:values; U is an unknown value.
        let body = Array(
            """
            PUTVAL "gw 17/load/load" interval=10.000 1700000000.123:0.25:0.5:0.75
            PUTVAL "gw 17/memory/memory-used" interval=10.000 1700000000.124:U
            PUTVAL "gw 17/cpu-0/cpu-idle" interval=10.000 1700000000.125:12345

            """.utf8)
        let response = try await inputs.respond(
            to: request("POST", "/collectd", body: body, headers: [("Content-Type", "text/plain")]),
            context: HTTPRequestContext())
        #expect(response.status == .noContent, "\(response.bodyText)")
        #expect(
            sink.readings == [
                IncomingReading(seriesKey: #"load_shortterm,host=gw\ 17,type=load value"#, timestamp: 1_700_000_000_123_000_000, value: 0.25),
                IncomingReading(seriesKey: #"load_midterm,host=gw\ 17,type=load value"#, timestamp: 1_700_000_000_123_000_000, value: 0.5),
                IncomingReading(seriesKey: #"load_longterm,host=gw\ 17,type=load value"#, timestamp: 1_700_000_000_123_000_000, value: 0.75),
                IncomingReading(
                    seriesKey: #"cpu_value,host=gw\ 17,instance=0,type=cpu,type_instance=idle value"#,
                    timestamp: 1_700_000_000_125_000_000, value: 12345),
            ])
        #expect(inputs.statistics.skippedSamples.load(ordering: .relaxed) == 1)
        // Without a Content-Type the body tells; several value lists per line, N for now, escapes.
        let more = try await inputs.respond(
            to: request(
                "POST", "/collectd",
                body: Array(#"putval "h\"x/if_octets-eth0/if_octets" 5:1:2 N:3:4"#.utf8)),
            context: HTTPRequestContext())
        #expect(more.status == .noContent, "\(more.bodyText)")
        #expect(
            sink.readings.suffix(4).map { "\($0.seriesKey) \($0.timestamp) \($0.value)" } == [
                #"if_octets_rx,host=h"x,instance=eth0,type=if_octets value 5000000000 1.0"#,
                #"if_octets_tx,host=h"x,instance=eth0,type=if_octets value 5000000000 2.0"#,
                #"if_octets_rx,host=h"x,instance=eth0,type=if_octets value 1700000000123456789 3.0"#,
                #"if_octets_tx,host=h"x,instance=eth0,type=if_octets value 1700000000123456789 4.0"#,
            ])
    }

    @Test func collectdCommandBodiesThatAreTruncatedOversizedOrNotUTF8AreRefusedWhole() async throws {
        let sink = RecordingSink()
        let inputs = endpoints(sink) { $0.maximumJSONBytes = 64 << 10 }
        let whole = Array("PUTVAL h/load/load 1:0.1:0.2:0.3\n".utf8)
        let cases: [(String, [UInt8], Int, String)] = [
            ("truncated in a value list", whole + Array("PUTVAL h/load/load 2:0.1:0".utf8), 400, "line 2: 2 values"),
            ("truncated in a quote", whole + Array(#"PUTVAL "h/lo"#.utf8), 400, "not closed"),
            ("not UTF-8", whole + [0x50, 0x55, 0x54, 0x56, 0x41, 0x4C, 0x20, 0xFF, 0xFE, 0x20, 0x31], 400, "not valid UTF-8"),
            ("NUL", Array("PUTVAL h/p/t 1:2\u{0}".utf8), 400, "control character"),
            ("oversized", [UInt8](repeating: UInt8(ascii: "\n"), count: 65 << 10), 413, "exceeds the limit"),
        ]
        for (name, body, status, phrase) in cases {
            let response = try await inputs.respond(
                to: request("POST", "/collectd", body: body, headers: [("Content-Type", "text/plain")]),
                context: HTTPRequestContext())
            #expect(response.status.code == status, "\(name): \(response.bodyText)")
            #expect(response.bodyText.contains(phrase), "\(name): \(response.bodyText)")
        }
        #expect(sink.appends.isEmpty)
        // A body of many good lines is one append (one request, one durable write).
        let many = Array((0..<1000).map { "PUTVAL h/p-\($0)/gauge \($0 + 1):\($0)\n" }.joined().utf8)
        let response = try await inputs.respond(
            to: request("POST", "/collectd", body: many, headers: [("Content-Type", "text/plain")]),
            context: HTTPRequestContext())
        #expect(response.status == .noContent, "\(response.bodyText)")
        #expect(sink.appends.count == 1 && sink.readings.count == 1000)
    }

    @Test func collectdTypesComeFromTypesDB() {
        let (types, bad) = CollectdTypes.parse(
            """
            # comment
            myload  one:GAUGE:0:U, two:DERIVE:0:U
            broken
            empty   ,
            value   value:GAUGE:U:U
            """)
        #expect(bad == 2)
        #expect(types.names["myload"] == ["one", "two"])
        #expect(types.names["load"] == ["shortterm", "midterm", "longterm"])
    }

    @Test func influxV2WriteAcceptsGzipBodies() async throws {
        let sink = RecordingSink()
        let body = Gzip.compress(Array("m,t=x f=1 5\nm,t=x f=2 6".utf8))
        let response = try await endpoints(sink).respond(
            to: request(
                "POST", "/api/v2/write?org=o&bucket=b&precision=ms", body: body, headers: [("Content-Encoding", "gzip")]),
            context: HTTPRequestContext())
        #expect(response.status == .noContent)
        #expect(sink.readings.map(\.timestamp) == [5_000_000, 6_000_000])
    }

    /// Gzip bodies are inflated in 64 KiB pieces straight into the parser: lines cut at every piece
    /// boundary still parse, and a bad line is reported by its number in the whole body.
    @Test func gzipBodiesParseAcrossInflatedPiecesWithTheirLineNumbers() async throws {
        // Lines of varying length, so piece boundaries fall at every offset inside a line.
        let lines = (0..<20_000).map { "m,s=\(String(repeating: "x", count: 1 + $0 % 29)) v=\($0) \($0 + 1)" }
        let text = Array(lines.joined(separator: "\n").utf8)
        #expect(text.count > 4 * (64 << 10))
        let sink = RecordingSink()
        let inputs = endpoints(sink)
        let response = try await inputs.respond(
            to: request("POST", "/write?db=x", body: Gzip.compress(text), headers: [("Content-Encoding", "gzip")]),
            context: HTTPRequestContext())
        #expect(response.status == .noContent, "\(response.bodyText)")
        let stored = sink.readings
        let inOrder =
            stored.map(\.timestamp) == (0..<20_000).map { Int64($0 + 1) }
            && stored.map(\.value) == (0..<20_000).map { Double($0) }
        #expect(inOrder, "\(stored.count) readings stored")

        var broken = lines
        broken[15_000] = "m v=oops"
        let bad = try await inputs.respond(
            to: request(
                "POST", "/write?db=x", body: Gzip.compress(Array(broken.joined(separator: "\n").utf8)),
                headers: [("Content-Encoding", "gzip")]),
            context: HTTPRequestContext())
        #expect(bad.status == .badRequest)
        #expect(bad.bodyText.contains("line 15001, column 5"), "\(bad.bodyText)")
        #expect(sink.appends.count == 1, "nothing of the bad body was stored")
    }

    /// The answer does not depend on what comes first: a bad first line followed by a bomb is a 413
    /// (the rest is inflated without being kept, to learn its size), as when the body is read whole.
    @Test func aBombBehindABadLineIsStillA413AndALongLineA400() async throws {
        let inputs = endpoints(RecordingSink()) { $0.maximumInflatedBytes = 1 << 20 }
        let bomb = Gzip.compress(Array("m v=oops\n".utf8) + [UInt8](repeating: 0x0A, count: 8 << 20), level: 9)
        let response = try await inputs.respond(
            to: request("POST", "/write?db=x", body: bomb, headers: [("Content-Encoding", "gzip")]),
            context: HTTPRequestContext())
        #expect(response.status == .contentTooLarge, "\(response.bodyText)")
        let long = Gzip.compress(Array("m v=1\nm v=".utf8) + [UInt8](repeating: 0x31, count: 70 << 10))
        let longLine = try await inputs.respond(
            to: request("POST", "/write?db=x", body: long, headers: [("Content-Encoding", "gzip")]),
            context: HTTPRequestContext())
        #expect(longLine.status == .badRequest)
        #expect(longLine.bodyText.contains("line 2: the line is longer than 65536 bytes"), "\(longLine.bodyText)")
    }

    /// A line past the length limit inside a streamed gzip body is one bad line of a partial write:
    /// it is skipped to its newline without being kept, the lines after it are stored and numbered
    /// as sent, and the answer names it (the streamed reader and InfluxDB's partial write together).
    @Test func aLongLineInAStreamedBodyIsSkippedAndTheRestStored() async throws {
        let sink = RecordingSink()
        let inputs = endpoints(sink)
        let text = Array("m v=1 1\nm v=".utf8) + [UInt8](repeating: 0x31, count: 200 << 10)
            + Array("\nm v=3 3\nm v=x 4\n".utf8)
        let response = try await inputs.respond(
            to: request("POST", "/write?db=x", body: Gzip.compress(text), headers: [("Content-Encoding", "gzip")]),
            context: HTTPRequestContext())
        #expect(response.status == .badRequest)
        #expect(response.bodyText.contains("partial write"), "\(response.bodyText)")
        #expect(response.bodyText.contains("line 2: the line is longer than 65536 bytes"), "\(response.bodyText)")
        #expect(response.bodyText.contains("dropped=2"), "\(response.bodyText)")
        let stored = sink.appends.flatMap { $0 }
        #expect(stored.map(\.timestamp) == [1, 3])
        #expect(stored.map(\.value) == [1, 3])
    }

    /// Issue 17: one request of 100,000 new series took the agent from 33 to 90 MB. Past
    /// `maximumSeriesPerRequest` distinct series a request is refused whole with a 413 naming the
    /// setting, for every input; at the limit it is stored.
    @Test func requestsWithTooManyDistinctSeriesAreRefusedNamingTheLimit() async throws {
        let sink = RecordingSink()
        let inputs = endpoints(sink) { $0.maximumSeriesPerRequest = 100 }
        func lines(_ series: Int) -> [UInt8] {
            Array((0..<series).map { "cpu,host=h\($0) usage=1 \($0 + 1)" }.joined(separator: "\n").utf8)
        }
        let atLimit = try await inputs.respond(
            to: request("POST", "/write?db=x", body: lines(100)), context: HTTPRequestContext())
        #expect(atLimit.status == .noContent, "\(atLimit.bodyText)")
        for body in [lines(101), Gzip.compress(lines(50_000))] {
            let gzip = body.starts(with: [0x1F, 0x8B])
            let over = try await inputs.respond(
                to: request("POST", "/write?db=x", body: body, headers: gzip ? [("Content-Encoding", "gzip")] : []),
                context: HTTPRequestContext())
            #expect(over.status == .contentTooLarge)
            let named = "more than 100 distinct series in one request (inputs.http.max_series_per_request)"
            #expect(over.bodyText.contains(named), "\(over.bodyText)")
        }
        let readings = (0..<101).map { "{\"series\":\"s\($0)\",\"value\":1}" }
        let json = "{\"readings\":[" + readings.joined(separator: ",") + "]}"
        let overJSON = try await inputs.respond(
            to: request("POST", "/v1/readings", body: Array(json.utf8)), context: HTTPRequestContext())
        #expect(overJSON.status == .contentTooLarge)
        #expect(overJSON.bodyText.contains("too_many_series"), "\(overJSON.bodyText)")
        #expect(sink.appends.count == 1, "only the request at the limit was stored")
    }

    @Test func jsonReadingsInBothShapesAreStoredAndAnsweredWithTheirSequences() async throws {
        let sink = RecordingSink()
        let body = Array(
            #"""
            {"readings": [
              {"series": "room temperature", "value": 21.5, "timestamp": 7},
              {"measurement": "room", "tags": {"site": "a b"}, "fields": {"hum": 40, "co2": 415.5},
               "timestamp": "2024-05-01T12:00:00Z"},
              {"series": "room temperature", "value": -1e3}
            ]}
            """#.utf8)
        let response = try await endpoints(sink).respond(
            to: request("POST", "/v1/readings", body: body, headers: [("Content-Type", "application/json")]),
            context: HTTPRequestContext())
        #expect(response.status == .ok)
        #expect(response.bodyText == #"{"accepted":4,"first_sequence":1,"last_sequence":4}"# + "\n")
        #expect(
            sink.readings == [
                IncomingReading(seriesKey: "room temperature", timestamp: 7, value: 21.5),
                IncomingReading(seriesKey: #"room,site=a\ b co2"#, timestamp: 1_714_564_800_000_000_000, value: 415.5),
                IncomingReading(seriesKey: #"room,site=a\ b hum"#, timestamp: 1_714_564_800_000_000_000, value: 40),
                IncomingReading(seriesKey: "room temperature", timestamp: Self.now, value: -1000),
            ])
    }

    @Test func probesAnswerTheWayInfluxClientsExpect() async throws {
        let inputs = endpoints(RecordingSink())
        let ping = try await inputs.respond(to: request("GET", "/ping"), context: HTTPRequestContext())
        #expect(ping.status == .noContent)
        #expect(ping.headers["X-Influxdb-Version"] != nil)
        let health = try await inputs.respond(to: request("GET", "/health"), context: HTTPRequestContext())
        #expect(health.status == .ok && health.bodyText.contains(#""status":"pass""#))
        let query = try await inputs.respond(
            to: request("POST", "/query?q=CREATE+DATABASE+x"), context: HTTPRequestContext())
        #expect(query.status == .ok && query.bodyText == #"{"results":[{"statement_id":0}]}"# + "\n")
    }

    /// `/query` answers as InfluxDB does for a database it does not have: DDL succeeds, SHOW
    /// DATABASES is empty, everything else is a statement error the CLI prints.
    @Test(arguments: [
        ("GET", "/query?db=telegraf&q=SELECT+*+FROM+cpu", "",
         #"{"results":[{"error":"database not found: telegraf (edge-agent stores writes and answers no queries; query the collector)","statement_id":0}]}"#),
        ("GET", "/query?q=select+1", "", #"{"results":[{"error":"database name required","statement_id":0}]}"#),
        (
            "GET", "/query?q=show+databases", "",
            #"{"results":[{"series":[{"columns":["name"],"name":"databases"}],"statement_id":0}]}"#
        ),
        ("POST", "/query", "q=CREATE+DATABASE+%22a%3Bb%22%3B+Show+Measurements&db=x",
         #"{"results":[{"statement_id":0},{"error":"database not found: x (edge-agent stores writes and answers no queries; query the collector)","statement_id":1}]}"#),
        ("GET", "/query?q=%3B%3B+%3B", "", #"{"results":[]}"#),
        ("GET", "/query?db=%22%5C%0A", "", #"{"error":"missing required parameter \"q\""}"#),
        ("GET", "/query?q=%FF", "", #""error":"the query string is not valid"#),
        ("POST", "/query", "q=%zz", #""error":"the form body is not valid"#),
        ("GET", "/query?q=" + String(repeating: "drop+x%3B", count: 101), "", "more than 100 statements"),
    ])
    func queryAnswersWhatInfluxDBAnswersForADatabaseItDoesNotHave(
        method: String, target: String, body: String, expected: String
    ) async throws {
        let response = try await endpoints(RecordingSink()).respond(
            to: request(method, target, body: Array(body.utf8)), context: HTTPRequestContext())
        #expect(response.status == (expected.hasPrefix(#"{"results""#) ? .ok : .badRequest))
        #expect(response.bodyText.contains(expected), "\(response.bodyText)")
    }

    /// Every hostile or malformed request: the status, a phrase of its message, and nothing stored.
    @Test(arguments: [
        // Influx 1.x shape: {"error": …}
        ("/write?precision=s", "m v=1", [], 400, #""error":"the db parameter is required"#),
        ("/write?db=x&precision=weeks", "m v=1", [], 400, "precision \\\"weeks\\\" is not one of"),
        ("/write?db=%zz", "m v=1", [], 400, "not valid percent-encoded"),
        ("/write?db=x", "m v=x\nm v=y", [], 400, "unable to parse 'm v=x': line 1, column 5: field \\\"v\\\": expected a number"),
        ("/write?db=x", "m v=\"on", [], 400, "no closing quote"),
        ("/write?db=x", "m v=9223372036854775808i", [], 400, "out of the 64-bit range"),
        ("/write?db=x", "m v=1 1\u{0}", [], 400, "timestamp"),
        ("/write?db=x", "m f=1\u{1}2\r", [], 400, "expected a number"),
        ("/write?db=x", "m,a=1,a v=1", [], 400, "expected '=' after the tag key"),
        ("/write?db=x", "m v=1", [("Content-Encoding", "br")], 415, "Content-Encoding br is not supported"),
        ("/write?db=x", "m v=1", [("Content-Encoding", "gzip")], 400, "not valid gzip"),
        ("/write?db=x", "m v=1", [("Content-Length", "999999999")], 413, "exceeds the limit"),
        // Influx 2.x shape: {"code": …, "message": …}
        ("/api/v2/write?org=o", "m v=1", [], 400, #""code":"invalid""#),
        ("/api/v2/write?bucket=b", "m,t=x", [], 400, "expected a space and fields"),
        // edge-sync shape: {"error": code, "message": …}
        ("/v1/readings", "{\"readings\":[{\"series\":\"a b\",\"valu\":1}]}", [], 400, "readings[0].valu: unknown key"),
        ("/v1/readings", "{\"readings\":[{\"series\":\"a b\"}]}", [], 400, "readings[0].value: is required"),
        ("/v1/readings", "{\"readings\":[{\"series\":\"a b\",\"value\":\"1\"}]}", [], 400, "expected a number"),
        ("/v1/readings", "{\"readings\":[{\"series\":\"\",\"value\":1}]}", [], 400, "a series key must be 1...1024 bytes"),
        ("/v1/readings", "{\"readings\":[{\"series\":\"a\",\"value\":1,\"timestamp\":\"yesterday\"}]}", [], 400, "RFC 3339"),
        ("/v1/readings", "{\"readings\":[{\"measurement\":\"m\",\"fields\":{}}]}", [], 400, "needs at least one field"),
        ("/v1/readings", "{\"readings\":[{\"value\":1}]}", [], 400, "needs \\\"series\\\" and \\\"value\\\""),
        ("/v1/readings", "{\"readings\":[{\"measurement\":\"m\",\"tags\":{\"site\":\"\"},\"fields\":{\"t\":1}}]}", [], 400, "must not be empty"),
        ("/v1/readings", "{\"readings\":[{\"measurement\":\"m\",\"fields\":{\"\":1}}]}", [], 400, "a field key must not be empty"),
        ("/v1/readings", "{\"readings\":[{\"series\":\"a\",\"value\":1}", [], 400, "invalid_json"),
        ("/v1/readings", "[1,2]", [], 400, "invalid_json"),
        ("/v1/readings", "{}", [], 400, "readings: is required"),
        ("/v1/readings", "{\"readings\":[]}", [("Content-Type", "text/plain")], 415, "must be application/json"),
        // collectd write_http JSON
        ("/collectd", #"{"values":[1]}"#, [], 400, "invalid_json"),
        ("/collectd", #"[{"values":[1],"dsnames":[],"time":1,"host":"h","plugin":"p","type":"t"}]"#, [], 400, "1 values for 0 dsnames"),
        ("/collectd", #"[{"values":[1],"dsnames":["v"],"time":-1,"host":"h","plugin":"p","type":"t"}]"#, [], 400, "is not a time"),
        ("/collectd", #"[{"values":[1],"dsnames":["v"],"time":1e300,"host":"h","plugin":"p","type":"t"}]"#, [], 400, "is not a time"),
        ("/collectd", #"[{"values":["1"],"dsnames":["v"],"time":1,"host":"h","plugin":"p","type":"t"}]"#, [], 400, "expected a number"),
        ("/collectd", #"[{"values":[1],"dsnames":["v"],"time":1,"host":"h","plugin":"","type":"t"}]"#, [], 400, "must not be empty"),
        ("/collectd", #"[{"values":[1],"dsnames":["v"],"time":1,"host":"h","type":"t"}]"#, [], 400, "plugin: is required"),
        ("/collectd", "[" + String(repeating: "[", count: 10_000), [], 400, "invalid_json"),
        // collectd write_http Command (PUTVAL lines)
        ("/collectd", "PUTNOTIF severity=okay time=1 message=x", [], 400, "is not a command this endpoint takes"),
        ("/collectd", "PUTVAL h/load/load", [], 400, "needs an identifier and at least one value list"),
        ("/collectd", "PUTVAL h/load 1:2", [], 400, "is not host/plugin[-instance]/type[-instance]"),
        ("/collectd", "PUTVAL h//load 1:2", [], 400, "is not host/plugin"),
        ("/collectd", "PUTVAL h/-x/load 1:2:3:4", [], 400, "empty plugin or type"),
        ("/collectd", "PUTVAL h/load/load 1:2", [], 400, "line 1: 1 values for type"),
        ("/collectd", "PUTVAL h/p/t 1:2:3", [], 400, "with 2 values is not in types.db"),
        ("/collectd", "PUTVAL h/p/t 1:x", [], 400, "is not a number or U"),
        ("/collectd", "PUTVAL h/p/t -1:2", [], 400, "is not seconds since 1970"),
        ("/collectd", "PUTVAL h/p/t 1e300:2", [], 400, "is not seconds since 1970"),
        ("/collectd", "PUTVAL h/p/t nan:2", [], 400, "is not seconds since 1970"),
        ("/collectd", "PUTVAL h/p/t interval=-5 1:2", [], 400, "not a positive number"),
        ("/collectd", "PUTVAL h/p/t meta=1 1:2", [], 400, "unknown option"),
        ("/collectd", "PUTVAL \"h/p/t 1:2", [], 400, "a quoted string is not closed"),
        ("/collectd", "PUTVAL \"h/p/t\"x 1:2", [], 400, "is followed by"),
        ("/collectd", "PUTVAL h/p/t 1:2\nPUTVAL h/p/t 1:2:", [], 400, "line 2: type"),
        ("/collectd", "PUTVAL h/p\u{1}/t 1:2", [], 400, "control character"),
        ("/collectd", "PUTVAL " + String(repeating: "h", count: 70_000) + "/p/t 1:2", [], 400, "longer than 65536 bytes"),
        ("/collectd", "PUTVAL " + String(repeating: "h", count: 2000) + "/p/t 1:2", [], 400, "longer than 1024 bytes"),
        ("/nowhere", "", [], 404, "no endpoint /nowhere"),
    ] as [(String, String, [(String, String)], Int, String)])
    func badRequestsAreRefusedWholeWithAClearMessage(
        target: String, body: String, headers: [(String, String)], status: Int, phrase: String
    ) async throws {
        let sink = RecordingSink()
        let response = try await endpoints(sink).respond(
            to: request("POST", target, body: Array(body.utf8), headers: headers), context: HTTPRequestContext())
        #expect(response.status.code == status, "\(response.bodyText)")
        #expect(response.bodyText.contains(phrase), "\(response.bodyText)")
        #expect(sink.appends.isEmpty)
        // Header values must stay visible ASCII, or the HTTP core would turn the answer into a 500.
        for field in (0..<response.headers.count).map({ response.headers[$0] }) {
            #expect(field.value.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }, "\(field.value)")
        }
    }

    @Test func oversizedAndBombBodiesGet413() async throws {
        let sink = RecordingSink()
        let inputs = endpoints(sink) {
            $0.maximumBodyBytes = 64 << 10
            $0.maximumInflatedBytes = 1 << 20
            $0.maximumReadingsPerRequest = 100
        }
        // Streamed with no Content-Length: the limit applies while reading.
        let big = Array(repeating: UInt8(ascii: "#"), count: 100 << 10)
        let tooLong = try await inputs.respond(to: request("POST", "/write?db=x", body: big), context: HTTPRequestContext())
        #expect(tooLong.status == .contentTooLarge)
        // 64 MiB of zeros is ~64 KiB of gzip: refused once the inflater passes 1 MiB.
        let bomb = Gzip.compress([UInt8](repeating: 0x23, count: 64 << 20), level: 9)
        #expect(bomb.count < 64 << 10)
        let exploded = try await inputs.respond(
            to: request("POST", "/write?db=x", body: bomb, headers: [("Content-Encoding", "gzip")]),
            context: HTTPRequestContext())
        #expect(exploded.status == .contentTooLarge)
        #expect(exploded.bodyText.contains("inflates to more than 1048576 bytes"))
        let manyLines = Array((0..<101).map { "m v=\($0) 1" }.joined(separator: "\n").utf8)
        let tooMany = try await inputs.respond(
            to: request("POST", "/write?db=x", body: manyLines), context: HTTPRequestContext())
        #expect(tooMany.status == .contentTooLarge && tooMany.bodyText.contains("more than 100 readings in one request"), "\(tooMany.bodyText)")
        let truncated = Array(Gzip.compress(Array("m v=1 1".utf8)).dropLast(6))
        let cut = try await inputs.respond(
            to: request("POST", "/write?db=x", body: truncated, headers: [("Content-Encoding", "gzip")]),
            context: HTTPRequestContext())
        #expect(cut.status == .badRequest && cut.bodyText.contains("ends early"))
        #expect(sink.appends.isEmpty)
    }

    @Test(arguments: [
        (SpoolError.Kind.full, 503, "spool_full"), (.diskFull, 503, "disk_full"), (.ioError, 503, "io_error"),
        (.invalidInput, 400, "invalid_readings"), (.storage, 500, "spool_error"),
    ])
    func spoolRefusalsTellProducersWhetherToRetry(kind: SpoolError.Kind, status: Int, code: String) async throws {
        let inputs = endpoints(RecordingSink(refusing: kind))
        let response = try await inputs.respond(
            to: request("POST", "/v1/readings", body: Array(#"{"readings":[{"series":"a b","value":1}]}"#.utf8)),
            context: HTTPRequestContext())
        #expect(response.status.code == status)
        #expect(response.bodyText.contains(code))
        #expect((response.headers["Retry-After"] != nil) == (status == 503))
        // The Influx dialects carry the same status, in their own shape.
        let influx = try await inputs.respond(
            to: request("POST", "/api/v2/write?bucket=b", body: Array("m v=1".utf8)), context: HTTPRequestContext())
        #expect(influx.status.code == status)
    }

    @Test func aRealSpoolThatIsFullAnswers503AndAcceptsAgainOnceDrained() async throws {
        try await withTemporaryDirectory { directory in
            var configuration = spoolConfiguration(directory)
            configuration.maxBytes = Spool.Configuration.minimumMaxBytes
            configuration.whenFull = .reject
            let spool = try await Spool.open(configuration)
            let inputs = InputEndpoints(sink: spool, now: { Self.now })
            var line = 0
            var refused: HTTPResponse?
            // Incompressible values fill the cap quickly.
            var random = SeededRandom(seed: 3)
            while refused == nil, line < 1_000_000 {
                let body = (0..<2_000).map { _ in
                    line += 1
                    return "m,s=\(line % 7) v=\(Double(bitPattern: random.next() & 0x7FEF_FFFF_FFFF_FFFF)) \(line)"
                }.joined(separator: "\n")
                let response = try await inputs.respond(
                    to: request("POST", "/write?db=x", body: Array(body.utf8)), context: HTTPRequestContext())
                if response.status != .noContent { refused = response }
            }
            let response = try #require(refused)
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers["Retry-After"] == "5")
            let stored = try await spool.status().queuedReadings
            #expect(stored % 2_000 == 0, "a refused request stores nothing of itself")
            let everything = try await spool.batches(from: 1, maxReadings: 1_000_000)
            try await spool.acknowledge([try #require(everything).range])
            try await spool.checkpoint()
            let again = try await inputs.respond(
                to: request("POST", "/write?db=x", body: Array("m v=1 1".utf8)), context: HTTPRequestContext())
            #expect(again.status == .noContent)
        }
    }

    @Test func prometheusRemoteWriteStoresSamplesWithTheirLabelsAndRefusesBrokenBodies() async throws {
        let sink = RecordingSink()
        let inputs = endpoints(sink) { $0.maximumInflatedBytes = 1 << 20 }
        let request = WriteRequest(timeseries: [
            .init(
                name: "node_temp_celsius", labels: [.init("instance", "gw:9100"), .init("chip", "a b")],
                samples: [.init(value: 41.5, timestamp: 1_700_000_000_000), .init(value: 42, timestamp: 1_700_000_015_000)]),
            .init(
                name: "up", labels: [],
                samples: [.init(value: Double(bitPattern: 0x7FF0_0000_0000_0002), timestamp: 1_700_000_000_000)]),
        ])
        let headers = [("Content-Encoding", "snappy"), ("Content-Type", "application/x-protobuf")]
        let good = try await inputs.respond(
            to: EdgeAgentTests.request("POST", "/api/v1/write", body: request.snappyEncoded(), headers: headers),
            context: HTTPRequestContext())
        #expect(good.status == .noContent)
        #expect(
            sink.readings == [
                IncomingReading(
                    seriesKey: #"node_temp_celsius,chip=a\ b,instance=gw:9100 value"#,
                    timestamp: 1_700_000_000_000_000_000, value: 41.5),
                IncomingReading(
                    seriesKey: #"node_temp_celsius,chip=a\ b,instance=gw:9100 value"#,
                    timestamp: 1_700_000_015_000_000_000, value: 42),
            ])
        #expect(inputs.statistics.skippedSamples.load(ordering: .relaxed) == 1, "the stale marker is skipped")
        // The key maps back to the metric name and labels.
        let back = try #require(RemoteWriteSeriesKey.parse(sink.readings[0].seriesKey))
        #expect(back.name == "node_temp_celsius" && Set(back.labels) == [.init("instance", "gw:9100"), .init("chip", "a b")])

        let protobuf = request.protobufEncoded()
        var bomb: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]  // a preamble of 4 GiB
        bomb += [0x00, 0x61]
        let cases: [([UInt8], [(String, String)], Int, String)] = [
            (Array("not snappy".utf8), headers, 400, "invalid_remote_write"),
            (Snappy.compress(Array(protobuf.dropLast(3))), headers, 400, "invalid_remote_write"),
            (Snappy.compress([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), headers, 400, "invalid_remote_write"),
            (bomb, headers, 413, "invalid_remote_write"),
            (Snappy.compress([UInt8](repeating: 0, count: 2 << 20)), headers, 413, "invalid_remote_write"),
            (request.snappyEncoded(), [("Content-Encoding", "gzip")], 415, "Snappy block-compressed"),
        ]
        for (body, headers, status, phrase) in cases {
            let response = try await inputs.respond(
                to: EdgeAgentTests.request("POST", "/api/v1/write", body: body, headers: headers),
                context: HTTPRequestContext())
            #expect(response.status.code == status, "\(response.bodyText)")
            #expect(response.bodyText.contains(phrase), "\(response.bodyText)")
        }
        #expect(sink.appends.count == 1, "no refused request stored anything")
    }
}
