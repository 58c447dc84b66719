import EdgeAgent
import EdgeSyncCodec
import EdgeSyncProtocol
import Foundation
import HTTPCore
import OpenTelemetryMetrics
import PrometheusRemoteWrite
import Testing

/// A request with every kind of metric, as the OTLP exporters send them.
func sampleMetricsRequest() -> MetricsRequest {
    var histogram = MetricsRequest.HistogramPoint()
    histogram.attributes = [.init("pump", "p1")]
    histogram.time = 1_700_000_000_000_000_000
    histogram.count = 6
    histogram.sum = 12.5
    histogram.bucketCounts = [1, 2, 3]
    histogram.explicitBounds = [0.5, 10]
    var summary = MetricsRequest.SummaryPoint()
    summary.time = 1_700_000_000_000_000_001
    summary.count = 4
    summary.sum = 2
    summary.quantiles = [.init(quantile: 0.5, value: 0.4), .init(quantile: 0.99, value: 0.9)]
    return MetricsRequest(resources: [
        .init(
            attributes: [.init("service.name", "pump"), .init("site", "north"), .init("tags", nil)],
            scopes: [
                .init(
                    name: "edge.test", version: "1.0", attributes: [.init("site", "scope-wins")],
                    metrics: [
                        .init(
                            name: "room.temperature",
                            data: .gauge([
                                .init(attributes: [.init("room", "a")], time: 5, value: .double(21.5)),
                                .init(attributes: [.init("room", "b")], time: 6, value: .integer(-3)),
                            ])),
                        .init(
                            name: "pump.starts",
                            data: .sum([.init(attributes: [.init("site", "point-wins")], time: 7, value: .integer(42))])
                        ),
                        .init(name: "pump.latency", data: .histogram([histogram])),
                        .init(name: "rpc.duration", data: .summary([summary])),
                        .init(name: "pump.exp", data: .exponentialHistogram(points: 2)),
                    ])
            ])
    ])
}

@Suite struct OTLPProtobufDecodingTests {
    func failure(_ bytes: [UInt8], limits: OTLPLimits = .default) -> OTLPError? {
        do {
            _ = try MetricsRequest.decode(protobuf: bytes, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    @Test func everyKindOfMetricRoundTrips() throws {
        let request = sampleMetricsRequest()
        #expect(try MetricsRequest.decode(protobuf: request.encoded()) == request)
    }

    @Test func everyCutInsideTheMessageIsAnErrorNeverACrash() {
        let bytes = sampleMetricsRequest().encoded()
        // The whole request is one resource_metrics field: every strict prefix cuts inside it.
        for length in 1..<bytes.count {
            #expect(failure(Array(bytes[0..<length])) != nil, "prefix of \(length) bytes decoded")
        }
    }

    @Test func unpackedBucketsAndUnknownFieldsAreRead() throws {
        var point = ProtobufWriter()
        point.appendFixed64Field(3, 9)
        point.appendFixed64Field(4, 3)
        point.appendFixed64Field(6, 1)
        point.appendFixed64Field(6, 2)
        point.appendFixed64Field(7, (1.5).bitPattern)
        point.appendVarintField(99, 7)
        let bytes = wrap(metric: 9, point: point.bytes)
        let decoded = try MetricsRequest.decode(protobuf: bytes)
        guard case .histogram(let points) = decoded.resources[0].scopes[0].metrics[0].data else {
            Issue.record("not a histogram")
            return
        }
        #expect(points[0].bucketCounts == [1, 2] && points[0].explicitBounds == [1.5] && points[0].count == 3)
    }

    /// A request holding one metric `m` whose data field `field` holds one data point `point`.
    func wrap(metric field: Int, point: [UInt8], name: String = "m") -> [UInt8] {
        var data = ProtobufWriter()
        data.appendBytesField(1, point)
        var metric = ProtobufWriter()
        metric.appendBytesField(1, Array(name.utf8))
        metric.appendBytesField(field, data.bytes)
        var scope = ProtobufWriter()
        scope.appendBytesField(2, metric.bytes)
        var resource = ProtobufWriter()
        resource.appendBytesField(2, scope.bytes)
        var request = ProtobufWriter()
        request.appendBytesField(1, resource.bytes)
        return request.bytes
    }

    static func keyValue(_ key: [UInt8], _ value: [UInt8]) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.appendBytesField(1, key)
        writer.appendBytesField(2, value)
        return writer.bytes
    }

    @Test(
        arguments: [
            ([0x0B], "deprecated group wire type"),
            ([0x0A, 0x05, 0x01], "runs past the end"),
            ([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], "longer than 10 bytes"),
            ([0x08, 0x01], "resource_metrics has wire type varint"),
            ([0x07], "invalid wire type 7"),
            ([0x00], "invalid field number 0"),
        ] as [([UInt8], String)])
    func malformedMessagesAreRefusedWithTheirReason(bytes: [UInt8], phrase: String) {
        let error = failure(bytes)
        #expect(error?.kind == .malformed, "\(String(describing: error))")
        #expect(error?.description.contains(phrase) == true, "\(String(describing: error))")
    }

    @Test func hostileFieldsInsidePointsAreRefused() {
        // as_double as a varint.
        #expect(failure(wrap(metric: 5, point: [0x20, 0x01]))?.description.contains("as_double has wire type") == true)
        // A packed bucket run that is not 8-byte values.
        #expect(failure(wrap(metric: 9, point: [0x32, 0x03, 1, 2, 3]))?.description.contains("not 8-byte") == true)
        // An attribute key that is not UTF-8.
        var point = ProtobufWriter()
        point.appendBytesField(7, Self.keyValue([0xC3, 0x28], [0x0A, 0x01, 0x61]))
        #expect(failure(wrap(metric: 5, point: point.bytes))?.kind == .invalidRequest)
        // Arrays and key-value lists nested deep are read past without recursion, not decoded.
        var deep: [UInt8] = [0x0A, 0x01, 0x61]
        for _ in 0..<50 {
            var any = ProtobufWriter()
            any.appendBytesField(5, deep)
            deep = any.bytes
        }
        var nested = ProtobufWriter()
        nested.appendBytesField(7, Self.keyValue(Array("k".utf8), deep))
        nested.appendFixed64Field(4, (1.0).bitPattern)
        let decoded = try? MetricsRequest.decode(protobuf: wrap(metric: 5, point: nested.bytes))
        guard case .gauge(let points) = decoded?.resources.first?.scopes.first?.metrics.first?.data else {
            Issue.record("not decoded")
            return
        }
        #expect(points[0].attributes == [.init("k", nil)])
    }

    @Test func limitsAreCheckedBeforeTheElementIsDecoded() {
        var limits = OTLPLimits.default
        limits.maximumPoints = 3
        let five = MetricsRequest(resources: [
            .init(scopes: [
                .init(metrics: [
                    .init(name: "m", data: .gauge((0..<5).map { .init(time: UInt64($0), value: .double(1)) }))
                ])
            ])
        ])
        #expect(failure(five.encoded(), limits: limits)?.kind == .limitExceeded)
        limits = .default
        limits.maximumAttributes = 2
        var point = ProtobufWriter()
        for index in 0..<3 { point.appendBytesField(7, Self.keyValue(Array("k\(index)".utf8), [0x0A, 0x01, 0x61])) }
        #expect(failure(wrap(metric: 5, point: point.bytes), limits: limits)?.kind == .limitExceeded)
        limits = .default
        limits.maximumStringBytes = 8
        #expect(failure(wrap(metric: 5, point: [], name: "a-very-long-name"), limits: limits)?.kind == .limitExceeded)
        limits = .default
        limits.maximumBuckets = 2
        var buckets = ProtobufWriter()
        buckets.appendBytesField(6, [UInt8](repeating: 0, count: 8 * 4))
        #expect(failure(wrap(metric: 9, point: buckets.bytes), limits: limits)?.kind == .limitExceeded)
        limits = .default
        limits.maximumMessageBytes = 10
        #expect(failure(sampleMetricsRequest().encoded(), limits: limits)?.kind == .limitExceeded)
    }
}

@Suite struct OTLPJSONDecodingTests {
    static let document = #"""
        {"resourceMetrics":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"pump"}},
            {"key":"site","value":{"stringValue":"north"}},
            {"key":"tags","value":{"arrayValue":{"values":[]}}}]},
          "scopeMetrics":[{"scope":{"name":"edge.test","version":"1.0",
              "attributes":[{"key":"site","value":{"stringValue":"scope-wins"}}]},
            "metrics":[
              {"name":"room.temperature","unit":"Cel","gauge":{"dataPoints":[
                {"attributes":[{"key":"room","value":{"stringValue":"a"}}],"timeUnixNano":"5","asDouble":21.5},
                {"attributes":[{"key":"room","value":{"stringValue":"b"}}],"timeUnixNano":6,"asInt":"-3"}]}},
              {"name":"pump.starts","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[
                {"attributes":[{"key":"site","value":{"stringValue":"point-wins"}}],"timeUnixNano":"7","asInt":42}]}},
              {"name":"pump.latency","histogram":{"dataPoints":[
                {"attributes":[{"key":"pump","value":{"stringValue":"p1"}}],"timeUnixNano":"1700000000000000000",
                 "count":"6","sum":12.5,"bucketCounts":["1","2",3],"explicitBounds":[0.5,10]}]}},
              {"name":"rpc.duration","summary":{"dataPoints":[
                {"timeUnixNano":"1700000000000000001","count":"4","sum":2,
                 "quantileValues":[{"quantile":0.5,"value":0.4},{"quantile":0.99,"value":0.9}]}]}},
              {"name":"pump.exp","exponentialHistogram":{"dataPoints":[{"count":"1"},{"count":"2"}]}}
            ]}]}]}
        """#

    @Test func theJSONEncodingDecodesToTheSameRequestAsTheProtobuf() throws {
        #expect(try MetricsRequest.decode(json: Array(Self.document.utf8)) == sampleMetricsRequest())
    }

    @Test(arguments: [
        ("[]", "the body: expected an object"),
        ("{", "not valid JSON"),
        (#"{"resourceMetrics":{}}"#, "resourceMetrics: expected an array"),
        (
            #"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[{"timeUnixNano":"x"}]}}]}]}]}"#,
            "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].timeUnixNano: expected an integer"
        ),
        (
            #"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[{"asDouble":"lots"}]}}]}]}]}"#,
            "asDouble: expected a number"
        ),
        (
            #"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","sum":{"dataPoints":[{"asInt":1.5}]}}]}]}]}"#,
            "asInt: expected an integer"
        ),
        (
            #"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[7]}}]}]}]}"#,
            "dataPoints[0]: expected an object"
        ),
        (
            #"{"resourceMetrics":[{"resource":{"attributes":[{"key":"k","value":{"boolValue":"yes"}}]}}]}"#,
            "boolValue: expected true or false"
        ),
    ])
    func malformedJSONNamesThePath(json: String, phrase: String) {
        #expect {
            _ = try MetricsRequest.decode(json: Array(json.utf8))
        } throws: { error in
            (error as? OTLPError)?.description.contains(phrase) == true
        }
    }
}

@Suite struct OTLPMappingTests {
    @Test func pointsBecomeReadingsWithPrometheusNamesAndTheAttributesAsTags() throws {
        let mapped = try OTLPReadings.make(from: sampleMetricsRequest(), now: 99)
        let scope = "otel_scope_name=edge.test,otel_scope_version=1.0"
        let service = "service.name=pump"
        let got = mapped.block.incomingReadings.map { "\($0.seriesKey) \($0.value) \($0.timestamp)" }
        // Tags sorted by key; the scope's site replaces the resource's, the point's replaces both.
        #expect(
            got == [
                "room.temperature,\(scope),room=a,\(service),site=scope-wins value 21.5 5",
                "room.temperature,\(scope),room=b,\(service),site=scope-wins value -3.0 6",
                "pump.starts,\(scope),\(service),site=point-wins value 42.0 7",
                "pump.latency_count,\(scope),pump=p1,\(service),site=scope-wins value 6.0 1700000000000000000",
                "pump.latency_sum,\(scope),pump=p1,\(service),site=scope-wins value 12.5 1700000000000000000",
                "pump.latency_bucket,le=0.5,\(scope),pump=p1,\(service),site=scope-wins value 1.0 1700000000000000000",
                "pump.latency_bucket,le=10,\(scope),pump=p1,\(service),site=scope-wins value 3.0 1700000000000000000",
                "pump.latency_bucket,le=+Inf,\(scope),pump=p1,\(service),site=scope-wins value 6.0 1700000000000000000",
                "rpc.duration,\(scope),quantile=0.5,\(service),site=scope-wins value 0.4 1700000000000000001",
                "rpc.duration,\(scope),quantile=0.99,\(service),site=scope-wins value 0.9 1700000000000000001",
                "rpc.duration_sum,\(scope),\(service),site=scope-wins value 2.0 1700000000000000001",
                "rpc.duration_count,\(scope),\(service),site=scope-wins value 4.0 1700000000000000001",
            ])
        #expect(mapped.rejectedPoints == 2 && mapped.rejection.contains("exponential histograms are not stored"))
        // The keys are remote write keys: they map back to a metric name and labels.
        #expect(RemoteWriteSeriesKey.parse(mapped.block.seriesKeys[0])?.name == "room.temperature")
    }

    @Test func gapsAndNonFiniteValuesAreSkippedAndBadPointsRejectedOneByOne() throws {
        var histogram = MetricsRequest.HistogramPoint()
        histogram.bucketCounts = [1, 2]
        histogram.explicitBounds = [1, 2]
        let request = MetricsRequest(resources: [
            .init(scopes: [
                .init(metrics: [
                    .init(
                        name: "m",
                        data: .gauge([
                            .init(time: 1, value: .double(1), flags: MetricsRequest.noRecordedValue),
                            .init(time: 2, value: .double(.nan)),
                            .init(time: 3, value: .double(-.infinity)),
                            .init(time: 4),
                            .init(time: 0, value: .integer(9_007_199_254_740_993)),
                            .init(time: 6, value: .integer(1 << 60)),
                        ])),
                    .init(name: "h", data: .histogram([histogram])),
                ])
            ])
        ])
        let mapped = try OTLPReadings.make(from: request, now: 99)
        #expect(mapped.block.incomingReadings.map(\.timestamp) == [99, 6])
        #expect(mapped.block.incomingReadings.map(\.value) == [9_007_199_254_740_992, 1_152_921_504_606_846_976])
        #expect(mapped.skippedPoints == 3 && mapped.rejectedPoints == 2 && mapped.roundedIntegers == 1)
        #expect(mapped.rejection == "m: a number data point has no value")
    }

    @Test func consecutivePointsOfOneSeriesShareAKeyButCanonicallyEquivalentSpellingsDoNot() throws {
        let request = MetricsRequest(resources: [
            .init(scopes: [
                .init(metrics: [
                    .init(
                        name: "m",
                        data: .gauge([
                            .init(attributes: [.init("k", "\u{e9}")], time: 1, value: .double(1)),
                            .init(attributes: [.init("k", "\u{e9}")], time: 2, value: .double(2)),
                            .init(attributes: [.init("k", "e\u{301}")], time: 3, value: .double(3)),
                        ]))
                ])
            ])
        ])
        let keys = try OTLPReadings.make(from: request, now: 0).block.incomingReadings.map(\.seriesKey)
        #expect(keys.map { Array($0.utf8) } == [Array("m,k=\u{e9} value".utf8), Array("m,k=\u{e9} value".utf8), Array("m,k=e\u{301} value".utf8)])
    }

    @Test func requestsThatCannotBeStoredAreRefusedWhole() {
        let unnamed = MetricsRequest(resources: [
            .init(scopes: [.init(metrics: [.init(name: "", data: .gauge([.init(value: .double(1))]))])])
        ])
        #expect(throws: OTLPError.self) { try OTLPReadings.make(from: unnamed, now: 0) }
        let late = MetricsRequest(resources: [
            .init(scopes: [.init(metrics: [.init(name: "m", data: .gauge([.init(time: .max, value: .double(1))]))])])
        ])
        #expect(throws: OTLPError.self) { try OTLPReadings.make(from: late, now: 0) }
        let long = MetricsRequest(resources: [
            .init(
                attributes: [.init("k", String(repeating: "v", count: 1100))],
                scopes: [.init(metrics: [.init(name: "m", data: .gauge([.init(value: .double(1))]))])])
        ])
        #expect(throws: OTLPError.self) { try OTLPReadings.make(from: long, now: 0) }
    }
}

@Suite struct OTLPEndpointTests {
    func post(_ body: [UInt8], _ headers: [(String, String)], sink: RecordingSink = RecordingSink()) async throws
        -> HTTPResponse
    {
        var fields = HTTPHeaders()
        for (name, value) in headers { fields.add(name, value) }
        let request = HTTPRequest(
            head: HTTPRequestHead(method: "POST", target: "/v1/metrics", headers: fields),
            body: HTTPRequestBody(bytes: body))
        return try await InputEndpoints(sink: sink, now: { 99 }).respond(to: request, context: HTTPRequestContext())
    }

    static func bytes(_ response: HTTPResponse) -> [UInt8] {
        if case .bytes(let bytes) = response.body { return bytes }
        return []
    }

    @Test func protobufGzipAndJSONAreStoredAndAnsweredWithPartialSuccess() async throws {
        let sink = RecordingSink()
        let protobuf = sampleMetricsRequest().encoded()
        let plain = try await post(protobuf, [("Content-Type", "application/x-protobuf")], sink: sink)
        #expect(plain.status == .ok && plain.headers["Content-Type"] == "application/x-protobuf")
        // partial_success { rejected_data_points: 2, error_message: "…" }
        let answer = Self.bytes(plain)
        #expect(answer.starts(with: [0x0A]) && answer[2...].starts(with: [0x08, 0x02, 0x12]))
        let gzip = try await post(
            Gzip.compress(protobuf), [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
            sink: sink)
        #expect(gzip.status == .ok)
        let json = try await post(
            Array(OTLPJSONDecodingTests.document.utf8), [("Content-Type", "Application/JSON; charset=utf-8")],
            sink: sink)
        #expect(json.status == .ok)
        #expect(String(decoding: Self.bytes(json), as: UTF8.self).contains(#""rejectedDataPoints":"2""#))
        #expect(sink.appends.count == 3 && sink.appends.allSatisfy { $0.count == 12 })
        #expect(sink.appends[0] == sink.appends[2])
    }

    @Test func badRequestsGetAStatusInTheRequestsEncodingAndStoreNothing() async throws {
        let sink = RecordingSink()
        let broken = try await post([0x0A, 0x05], [("Content-Type", "application/x-protobuf")], sink: sink)
        #expect(broken.status == .badRequest && broken.headers["Content-Type"] == "application/x-protobuf")
        // google.rpc.Status { code: 3 (INVALID_ARGUMENT), message }
        #expect(Self.bytes(broken).starts(with: [0x08, 0x03, 0x12]))
        let json = try await post(Array("[1]".utf8), [("Content-Type", "application/json")], sink: sink)
        #expect(json.status == .badRequest)
        #expect(String(decoding: Self.bytes(json), as: UTF8.self).contains(#""code":3"#))
        let type = try await post([], [("Content-Type", "text/plain")], sink: sink)
        #expect(type.status == .unsupportedMediaType)
        let bomb = Gzip.compress([UInt8](repeating: 0, count: 80 << 20), level: 9)
        let exploded = try await post(
            bomb, [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")], sink: sink)
        #expect(exploded.status == .contentTooLarge)
        #expect(Self.bytes(exploded).starts(with: [0x08, 0x08]))
        #expect(sink.appends.isEmpty)
    }
}
