import EdgeSyncProtocol
import EdgeAgent
import EdgeSyncTestSupport
import Foundation
import PrometheusRemoteWrite
import Testing

struct SeriesKeyMappingTests {
    typealias Label = WriteRequest.Label

    @Test func keysAreLineProtocolKeysWithFieldValue() {
        let key = RemoteWriteSeriesKey.make(name: "up", labels: [Label("job", "api"), Label("instance", "a:9090")])
        #expect(key == "up,instance=a:9090,job=api value")
        #expect(
            key
                == LineProtocolSeriesKey.make(
                    measurement: "up", tags: [("job", "api"), ("instance", "a:9090")], field: "value"))
    }

    @Test(arguments: [
        ("up", [Label("job", "api")]),
        ("weird name,with=chars", [Label("a b", "c,d=e\\f"), Label("z", "\\"), Label("ключ", "значение 🌡")]),
        ("node_cpu_seconds_total", [Label("cpu", "0"), Label("mode", "idle"), Label("instance", "gw-1:9100")]),
        ("bare", []),
    ])
    func keysMapBack(name: String, labels: [Label]) throws {
        let key = RemoteWriteSeriesKey.make(name: name, labels: labels)
        let parsed = try #require(RemoteWriteSeriesKey.parse(key))
        #expect(parsed.name == name)
        #expect(parsed.labels == labels.sorted { $0.name < $1.name })
    }

    @Test func emptyLabelValuesAreNoLabel() throws {
        let key = RemoteWriteSeriesKey.make(name: "up", labels: [Label("job", "api"), Label("zone", "")])
        #expect(key == RemoteWriteSeriesKey.make(name: "up", labels: [Label("job", "api")]))
        #expect(try #require(RemoteWriteSeriesKey.parse(key)).labels == [Label("job", "api")])
    }

    @Test func otherKeysAreNotRemoteWriteSeries() {
        #expect(RemoteWriteSeriesKey.parse("weather,site=b01 temperature") == nil)
        #expect(RemoteWriteSeriesKey.parse("CGM.glucose") == nil)
        #expect(RemoteWriteSeriesKey.parse("") == nil)
    }

    @Test func samplesBecomeReadings() throws {
        let stale = Double(bitPattern: WriteRequest.Sample.staleMarkerBitPattern)
        let request = WriteRequest(timeseries: [
            .init(
                name: "temp", labels: [Label("site", "b01")],
                samples: [
                    .init(value: 21.5, timestamp: 1_700_000_000_123), .init(value: stale, timestamp: 1_700_000_015_000),
                    .init(value: -0.0, timestamp: -5), .init(value: .nan, timestamp: 1),
                    .init(value: -.infinity, timestamp: 2),
                    .init(value: .infinity, timestamp: 3),
                ]),
            .init(name: "up", labels: [], samples: [.init(value: 1, timestamp: 0)]),
        ])
        let result = try RemoteWriteReadings.decode(snappyBody: request.snappyEncoded())
        #expect(result.droppedStaleMarkers == 1)
        #expect(result.droppedNonFinite == 3)
        #expect(
            result.readings == [
                IncomingReading(seriesKey: "temp,site=b01 value", timestamp: 1_700_000_000_123_000_000, value: 21.5),
                IncomingReading(seriesKey: "temp,site=b01 value", timestamp: -5_000_000, value: -0.0),
                IncomingReading(seriesKey: "up value", timestamp: 0, value: 1),
            ])
        #expect(result.readings[1].value.sign == .minus)
    }

    @Test(arguments: [Int64.max, Int64.min, 9_223_372_036_855, -9_223_372_036_855])
    func timestampsThatOverflowNanosecondsAreRefused(milliseconds: Int64) {
        let request = WriteRequest(timeseries: [
            .init(name: "t", labels: [], samples: [.init(value: 1, timestamp: milliseconds)])
        ])
        #expect(throws: RemoteWriteError.self) { try RemoteWriteReadings.make(from: request) }
        do {
            _ = try RemoteWriteReadings.make(from: request)
        } catch {
            #expect(error.kind == .invalidRequest)
            #expect(error.reason.contains("\(milliseconds) ms is out of range"))
        }
    }

    @Test func largestTimestampsThatFit() throws {
        let request = WriteRequest(timeseries: [
            .init(
                name: "t", labels: [],
                samples: [
                    .init(value: 1, timestamp: 9_223_372_036_854), .init(value: 2, timestamp: -9_223_372_036_854),
                ])
        ])
        let readings = try RemoteWriteReadings.make(from: request).readings
        #expect(readings.map(\.timestamp) == [9_223_372_036_854_000_000, -9_223_372_036_854_000_000])
    }

    @Test func seriesKeysLongerThanTheSpoolAcceptsAreRefused() {
        // 1,000 bytes of label fits RemoteWriteLimits' default 1,024, but escaping doubles it.
        let request = WriteRequest(timeseries: [
            .init(
                name: "t", labels: [Label("l", String(repeating: ",", count: 1000))],
                samples: [.init(value: 1, timestamp: 1)])
        ])
        do {
            _ = try RemoteWriteReadings.make(from: request)
            Issue.record("accepted a series key over 1,024 bytes")
        } catch {
            #expect(error.kind == .limitExceeded)
            #expect(error.reason.hasPrefix("series 0 (t): its series key is 2010 bytes"))
        }
    }

    @Test func errorsInTheBodyAreReported() {
        #expect(throws: RemoteWriteError(.compression(.truncated), at: 0, "the input ends inside the length preamble"))
        {
            try RemoteWriteReadings.decode(snappyBody: [])
        }
    }

    /// A slice of the real datasets, sent as Prometheus would (one series entry per sample, labels
    /// repeated) and grouped per series, comes out as the same readings.
    @Test(arguments: [true, false])
    func realData(oneSamplePerSeries: Bool) throws {
        guard let datasets = try? RealDataset.loadAll() else {
            print(
                "SeriesKeyMappingTests.realData: skipped: the real datasets are not in \(RealDataset.defaultDirectory.path)"
            )
            return
        }
        for dataset in datasets {
            let trimmed = RealDataset(
                name: dataset.name, seriesKeys: dataset.seriesKeys, readings: Array(dataset.readings.prefix(20_000)))
            var decoded: [IncomingReading] = []
            for request in trimmed.remoteWriteRequests(samplesPerRequest: 2_000, oneSamplePerSeries: oneSamplePerSeries)
            {
                let body = request.snappyEncoded()
                #expect(body.count < request.protobufEncoded().count)
                decoded += try RemoteWriteReadings.decode(snappyBody: body).readings
            }
            let keys = trimmed.seriesKeys.map { key in
                let column = Label("column", String(key.dropFirst(dataset.name.count + 1)))
                let extra = oneSamplePerSeries ? [Label("job", "sensors"), Label("instance", "gateway-1:9100")] : []
                return RemoteWriteSeriesKey.make(
                    name: dataset.name, labels: [column, Label("source", "shared")] + extra)
            }
            let expected = trimmed.readings.map {
                IncomingReading(seriesKey: keys[$0.series], timestamp: $0.timestamp, value: $0.value)
            }
            if oneSamplePerSeries {
                #expect(decoded == expected)
            } else {
                // Grouped requests reorder samples by series within a request: compare per series.
                #expect(decoded.count == expected.count)
                for key in keys {
                    #expect(decoded.filter { $0.seriesKey == key } == expected.filter { $0.seriesKey == key })
                }
            }
        }
    }
}
