import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation
import Testing

@testable import EdgeAgent

/// One stored reading with its key spelled out.
struct KeyedReading: Hashable, CustomStringConvertible {
    var key: String
    var time: Int64
    var value: Double
    var description: String { "\(key)@\(time)=\(value)" }
}

extension ProcessingEngine {
    /// Processes `readings` in writes of `batch` and returns everything stored, in order, with the
    /// summed counts per rule.
    mutating func run(
        _ readings: [KeyedReading], batch: Int = 1000, now: Int64 = 0, flushAtEnd: Bool = false
    ) -> (stored: [KeyedReading], counts: [ProcessingCounts]) {
        var stored: [KeyedReading] = []
        var counts = Array(repeating: ProcessingCounts(), count: rules.count)
        func take(_ output: Output, keys: [String], readings: [Reading]) {
            if output.isUnchanged {
                stored += readings.map { KeyedReading(key: keys[$0.series], time: $0.timestamp, value: $0.value) }
            } else {
                stored += output.readings.map {
                    KeyedReading(key: output.seriesKeys[$0.series], time: $0.timestamp, value: $0.value)
                }
            }
            for (index, count) in output.counts.enumerated() { counts[index] += count }
        }
        var start = 0
        while start < readings.count {
            let slice = readings[start..<min(start + batch, readings.count)]
            var keys: [String] = []
            var index: [String: Int] = [:]
            var block: [Reading] = []
            for reading in slice {
                let series = index[reading.key] ?? keys.count
                if series == keys.count {
                    keys.append(reading.key)
                    index[reading.key] = series
                }
                block.append(Reading(series: series, timestamp: reading.time, value: reading.value))
            }
            let output = process(seriesKeys: keys, readings: block, now: now)
            take(output, keys: keys, readings: block)
            start += batch
        }
        if flushAtEnd, let output = flush(idleBefore: nil, now: now) { take(output, keys: [], readings: []) }
        return (stored, counts)
    }
}

@Suite struct ProcessingEngineTests {
    static let second: Int64 = 1_000_000_000

    static func rule(_ name: String, _ match: SeriesMatch = SeriesMatch(), _ action: ProcessingRule.Action)
        -> ProcessingRule
    {
        ProcessingRule(name: name, match: match, action: action)
    }

    /// The sea surface temperature log of shared/data as one series `sst,site=b01 temperature`.
    static func seaSurfaceTemperature() throws -> [KeyedReading] {
        let dataset = try RealDataset.load(
            RealDataset.defaultDirectory.appendingPathComponent("sea_surface_temperature.csv.gz"))
        return dataset.readings.map {
            KeyedReading(key: "sst,site=b01 temperature", time: $0.timestamp, value: $0.value)
        }
    }

    /// CGM's glucose and isig columns as `cgm glucose` and `cgm isig`.
    static func glucose() throws -> [KeyedReading] {
        let dataset = try RealDataset.load(RealDataset.defaultDirectory.appendingPathComponent("CGM.csv.gz"))
        return dataset.readings.map {
            KeyedReading(
                key: dataset.seriesKeys[$0.series].hasSuffix("glucose") ? "cgm glucose" : "cgm isig",
                time: $0.timestamp, value: $0.value)
        }
    }

    @Test func aWriteNoRuleMatchesComesBackUnchanged() {
        var engine = ProcessingEngine(rules: [
            Self.rule("other", SeriesMatch(measurement: Glob("nothing*")), .drop),
            Self.rule("range", SeriesMatch(field: Glob("humidity")), .validate(.init())),
        ])
        let keys = ["weather,site=a temperature", "weather,site=b temperature"]
        let readings = (0..<100).map { Reading(series: $0 % 2, timestamp: Int64($0), value: Double($0)) }
        #expect(engine.process(seriesKeys: keys, readings: readings, now: 0).isUnchanged)
        // Cached: the second write costs lookups only, and is still unchanged.
        #expect(engine.process(seriesKeys: keys, readings: readings, now: 0).isUnchanged)
        #expect(engine.cachedSeries == 2)
        // A key that is not a line protocol key (no field) is left alone, never dropped.
        #expect(engine.process(seriesKeys: ["nofield"], readings: [readings[0]], now: 0).isUnchanged)
    }

    @Test func validateDropsOutOfRangeNonFiniteAndBadTimestamps() {
        var validation = ProcessingRule.Validation()
        validation.minimum = -40
        validation.maximum = 85
        validation.maximumFuture = 60 * Self.second
        validation.maximumPast = 3600 * Self.second
        var engine = ProcessingEngine(rules: [
            Self.rule("plausible", SeriesMatch(field: Glob("temp*")), .validate(validation))
        ])
        let now: Int64 = 1_800_000_000 * Self.second
        let key = "weather temperature"
        let input = [
            KeyedReading(key: key, time: now, value: 20),  // kept
            KeyedReading(key: key, time: now, value: -40),  // kept: the bounds are inclusive
            KeyedReading(key: key, time: now, value: 85),  // kept
            KeyedReading(key: key, time: now, value: 85.01),
            KeyedReading(key: key, time: now, value: -41),
            KeyedReading(key: key, time: now, value: .nan),
            KeyedReading(key: key, time: now, value: -.infinity),
            KeyedReading(key: key, time: now + 61 * Self.second, value: 20),
            KeyedReading(key: key, time: now + 60 * Self.second, value: 21),  // kept: exactly at the limit
            KeyedReading(key: key, time: now - 3601 * Self.second, value: 20),
            KeyedReading(key: "weather humidity", time: 0, value: .nan),  // not matched
        ]
        let (stored, counts) = engine.run(input, now: now)
        #expect(stored.count == 5)
        #expect(stored.prefix(4).map(\.value) == [20, -40, 85, 21])
        #expect(stored.last?.key == "weather humidity" && stored.last?.value.isNaN == true)
        #expect(counts[0] == ProcessingCounts(dropped: 6, kept: 4))
    }

    @Test func validateKeepsAndFlagsIntoASiblingSeries() {
        var validation = ProcessingRule.Validation()
        validation.maximum = 100
        validation.action = .flag(tag: "quality")
        var engine = ProcessingEngine(rules: [
            Self.rule("range", SeriesMatch(), .validate(validation)),
            Self.rule("smooth", SeriesMatch(), .deadband(.init(delta: 1000, heartbeat: 1000 * Self.second))),
        ])
        let input = (0..<6).map { KeyedReading(key: "m,site=a f", time: Int64($0), value: $0 % 2 == 0 ? 1 : 500) }
        let (stored, counts) = engine.run(input)
        // Flagged readings are kept as they were and not reduced; valid ones are deadbanded.
        #expect(stored.filter { $0.key == "m,quality=range,site=a f" }.map(\.value) == [500, 500, 500])
        #expect(stored.filter { $0.key == "m,site=a f" }.map(\.value) == [1])
        #expect(counts[0].flagged == 3)
        #expect(counts[1].reduced == 2)
    }

    @Test func convertScalesRenamesAndRetagsAndMergesSeriesThatBecomeOne() {
        var fahrenheit = ProcessingRule.Conversion()
        fahrenheit.scale = 5.0 / 9.0
        fahrenheit.offset = -32 * 5.0 / 9.0
        fahrenheit.measurement = "climate"
        fahrenheit.field = "celsius"
        fahrenheit.renameTags = ["site": "location"]
        fahrenheit.dropTags = ["sensor"]
        fahrenheit.addTags = ["unit": "C"]
        var engine = ProcessingEngine(rules: [
            Self.rule("f2c", SeriesMatch(measurement: Glob("weather"), field: Glob("temp_f")), .convert(fahrenheit)),
            // Sees the converted series: matches the new name.
            Self.rule(
                "after", SeriesMatch(measurement: Glob("climate"), tags: ["unit": Glob("C")]),
                .validate(
                    {
                        var validation = ProcessingRule.Validation()
                        validation.maximum = 50
                        return validation
                    }())),
        ])
        let input = [
            KeyedReading(key: "weather,sensor=1,site=x temp_f", time: 1, value: 212),
            KeyedReading(key: "weather,sensor=2,site=x temp_f", time: 2, value: 32),
            KeyedReading(key: "weather,sensor=2,site=x temp_f", time: 3, value: 50),
            KeyedReading(key: "climate,location=x,unit=C celsius", time: 4, value: 7),
        ]
        let (stored, counts) = engine.run(input)
        // 212 °F is 100 °C: over the later rule's max, dropped.
        #expect(counts[1].dropped == 1)
        #expect(stored.map(\.key) == Array(repeating: "climate,location=x,unit=C celsius", count: 3))
        #expect(
            stored.map(\.value) == [
                32 * fahrenheit.scale + fahrenheit.offset, 50 * fahrenheit.scale + fahrenheit.offset, 7,
            ])
        #expect((stored[1].value - 10).magnitude < 1e-12)
    }

    @Test func dropRemovesEverySeriesItMatchesByTagGlob() {
        var engine = ProcessingEngine(rules: [Self.rule("debug", SeriesMatch(tags: ["host": Glob("test-??")]), .drop)])
        let input = [
            KeyedReading(key: "cpu,host=test-01 idle", time: 1, value: 1),
            KeyedReading(key: "cpu,host=test-001 idle", time: 1, value: 2),
            KeyedReading(key: "cpu idle", time: 1, value: 3),
            KeyedReading(key: "cpu,host=test-02 idle", time: 2, value: 4),
        ]
        let (stored, counts) = engine.run(input)
        #expect(stored.map(\.value) == [2, 3])
        #expect(counts[0].dropped == 2)
    }

    @Test(arguments: [0.0, 0.01, 0.05, 0.2])
    func deadbandOnRealDataKeepsEveryReadingWithinDeltaAndSendsHeartbeats(delta: Double) throws {
        let input = try Self.seaSurfaceTemperature()
        let heartbeat = 6 * 3600 * Self.second
        var engine = ProcessingEngine(rules: [
            Self.rule("db", SeriesMatch(), .deadband(.init(delta: delta, heartbeat: heartbeat)))
        ])
        let (stored, counts) = engine.run(input, batch: 777)
        try Self.checkDeadband(input: input, stored: stored, delta: delta, heartbeat: heartbeat)
        #expect(Int64(stored.count) + counts[0].reduced == Int64(input.count))
        if delta >= 0.05 { #expect(stored.count * 2 < input.count) }
    }

    /// The deadband's promises, checked against its input: what it stored is a subsequence; a
    /// reading left out is within `delta` of the last stored one and less than `heartbeat` after it.
    static func checkDeadband(input: [KeyedReading], stored: [KeyedReading], delta: Double, heartbeat: Int64) throws {
        var held: [String: KeyedReading] = [:]
        var next = 0
        for reading in input {
            if next < stored.count,
                stored[next] == reading
                    || (stored[next].value.isNaN && reading.value.isNaN && stored[next].time == reading.time)
            {
                held[reading.key] = reading
                next += 1
                continue
            }
            let last = try #require(held[reading.key], "the first reading of a series is stored: \(reading)")
            #expect((reading.value - last.value).magnitude <= delta, "\(reading) left out, held \(last)")
            #expect(reading.time >= last.time && reading.time - last.time < heartbeat, "heartbeat due at \(reading)")
        }
        #expect(next == stored.count, "stored readings are the input's, in order")
    }

    @Test func deadbandPropertiesHoldOnRandomWalksWithNonFiniteValuesAndDisorder() throws {
        var random = SeededRandom(seed: 23)
        for round in 0..<20 {
            let delta = Double(Int.random(in: 0...20, using: &random)) / 10
            let heartbeat = Int64.random(in: 1...50, using: &random) * Self.second
            var level = 0.0
            var time: Int64 = 1_700_000_000 * Self.second
            var input: [KeyedReading] = []
            for step in 0..<2000 {
                level += Double.random(in: -1...1, using: &random)
                time += Int64.random(in: -2...10, using: &random) * Self.second
                var value = level
                if step % 97 == 0 { value = .nan }
                if step % 131 == 0 { value = .infinity }
                input.append(KeyedReading(key: "walk,n=\(step % 3) v", time: time, value: value))
            }
            var engine = ProcessingEngine(rules: [
                Self.rule("db", SeriesMatch(), .deadband(.init(delta: delta, heartbeat: heartbeat)))
            ])
            let (stored, _) = engine.run(input, batch: Int.random(in: 1...500, using: &random))
            try Self.checkDeadband(input: input, stored: stored, delta: delta, heartbeat: heartbeat)
            _ = round
        }
    }

    @Test(arguments: [60, 1800, 3600 * 6])
    func downsampleOnRealDataMatchesABruteForceAggregatePerWindow(seconds: Int64) throws {
        let input = try Self.glucose().filter { $0.key == "cgm glucose" }.sorted { $0.time < $1.time }
        let window = seconds * Self.second
        var engine = ProcessingEngine(rules: [
            Self.rule("ds", SeriesMatch(), .downsample(.init(window: window, aggregates: [.last, .mean, .min, .max])))
        ])
        let (stored, counts) = engine.run(input, batch: 1000, flushAtEnd: true)
        var expected: [Int64: [Double]] = [:]
        var lastOf: [Int64: KeyedReading] = [:]
        for reading in input {
            let start = ProcessingEngine.windowStart(reading.time, width: window)
            expected[start, default: []].append(reading.value)
            lastOf[start] = reading
        }
        let byField = Dictionary(grouping: stored, by: { $0.key })
        #expect(Set(byField.keys) == ["cgm glucose_last", "cgm glucose_mean", "cgm glucose_min", "cgm glucose_max"])
        let means = try #require(byField["cgm glucose_mean"])
        #expect(means.count == expected.count, "one reading per window and aggregate")
        for mean in means {
            let values = try #require(expected[mean.time], "a mean is stamped with its window's start")
            #expect(
                (mean.value - values.reduce(0, +) / Double(values.count)).magnitude <= 1e-9
                    * max(1, mean.value.magnitude))
        }
        for minimum in byField["cgm glucose_min"] ?? [] {
            let start = ProcessingEngine.windowStart(minimum.time, width: window)
            #expect(minimum.value == expected[start]?.min(), "the window's minimum is preserved exactly")
        }
        for maximum in byField["cgm glucose_max"] ?? [] {
            let start = ProcessingEngine.windowStart(maximum.time, width: window)
            #expect(maximum.value == expected[start]?.max(), "the window's maximum is preserved exactly")
        }
        for last in byField["cgm glucose_last"] ?? [] {
            let start = ProcessingEngine.windowStart(last.time, width: window)
            #expect(last.value == lastOf[start]?.value)
        }
        #expect(counts[0].reduced == Int64(input.count))
        #expect(counts[0].emitted == Int64(4 * expected.count))
    }

    @Test func downsampleLetsLateAndNonFiniteReadingsThroughAndFlushesIdleWindows() throws {
        let window = 10 * Self.second
        var engine = ProcessingEngine(rules: [
            Self.rule("ds", SeriesMatch(), .downsample(.init(window: window, aggregates: [.max])))
        ])
        let key = "m f"
        let first = engine.run(
            [
                KeyedReading(key: key, time: 10 * Self.second, value: 1),
                KeyedReading(key: key, time: 12 * Self.second, value: 5),
                KeyedReading(key: key, time: 21 * Self.second, value: 2),  // closes [10, 20)
                KeyedReading(key: key, time: 3 * Self.second, value: 9),  // late: passes through
                KeyedReading(key: key, time: 22 * Self.second, value: .nan),  // passes through
            ], now: 100)
        #expect(first.stored.map(\.time) == [12 * Self.second, 3 * Self.second, 22 * Self.second])
        #expect(first.stored[0].value == 5 && first.stored[1].value == 9 && first.stored[2].value.isNaN)
        // The open window [20, 30) took its reading at clock 100: idle since 200 means emitted.
        let early = engine.flush(idleBefore: 100, now: 150)
        #expect(early == nil)
        let idle = engine.flush(idleBefore: 200, now: 250)
        let flushed = try #require(idle)
        #expect(flushed.readings.map(\.value) == [2])
        #expect(flushed.counts[0].emitted == 1)
        let rest = engine.flush(idleBefore: nil, now: 300)
        #expect(rest == nil)
        #expect(ProcessingEngine.windowStart(-1, width: window) == -window)
    }

    @Test(arguments: [0.001, 0.01, 0.05, 0.5])
    func errorBoundKeepsEveryValueWithinItsBoundAndCompressesBetter(bound: Double) throws {
        let input = try Self.glucose()
        var engine = ProcessingEngine(rules: [Self.rule("lossy", SeriesMatch(field: Glob("isig")), .errorBound(bound))])
        let (stored, _) = engine.run(input)
        #expect(stored.count == input.count)
        for (original, kept) in zip(input, stored) {
            #expect(kept.key == original.key && kept.time == original.time)
            #expect((kept.value - original.value).magnitude <= bound)
            if original.key == "cgm glucose" { #expect(kept.value.bitPattern == original.value.bitPattern) }
        }
        var random = SeededRandom(seed: 7)
        for _ in 0..<10_000 {
            let value = Double.random(in: -1e6...1e6, using: &random)
            let exponent = ErrorBound.exponent(for: bound)
            #expect((ErrorBound.quantize(value, exponent: exponent, bound: bound) - value).magnitude <= bound)
        }
        let exponent = ErrorBound.exponent(for: bound)
        #expect(ErrorBound.quantize(.nan, exponent: exponent, bound: bound).isNaN)
        #expect(ErrorBound.quantize(1e300, exponent: exponent, bound: bound) == 1e300)
    }

    @Test func aWriteThatWasNotStoredGivesItsReducerStateBack() {
        var engine = ProcessingEngine(rules: [
            Self.rule("db", SeriesMatch(), .deadband(.init(delta: 1, heartbeat: 100 * Self.second)))
        ])
        let keys = ["m f"]
        let first = engine.process(seriesKeys: keys, readings: [Reading(series: 0, timestamp: 1, value: 10)], now: 0)
        #expect(first.readings.count == 1)
        engine.restore(first.undo)
        // The spool refused the first write: its retry is stored again, not left out as unchanged.
        let retry = engine.process(seriesKeys: keys, readings: [Reading(series: 0, timestamp: 1, value: 10)], now: 0)
        #expect(retry.readings.count == 1)
        let next = engine.process(seriesKeys: keys, readings: [Reading(series: 0, timestamp: 2, value: 10.5)], now: 0)
        #expect(next.readings.isEmpty && next.counts[0].reduced == 1)
        // A write between the failed one and its restore: the held value is forgotten instead.
        let failing = engine.process(seriesKeys: keys, readings: [Reading(series: 0, timestamp: 3, value: 20)], now: 0)
        _ = engine.process(seriesKeys: keys, readings: [Reading(series: 0, timestamp: 4, value: 20.5)], now: 0)
        engine.restore(failing.undo)
        let after = engine.process(seriesKeys: keys, readings: [Reading(series: 0, timestamp: 5, value: 20.5)], now: 0)
        #expect(after.readings.count == 1)
    }

    @Test func theSeriesCacheStaysWithinItsCapacityAndEmitsPendingWindows() {
        let window = 10 * Self.second
        var engine = ProcessingEngine(
            rules: [
                Self.rule(
                    "ds", SeriesMatch(measurement: Glob("ds")), .downsample(.init(window: window, aggregates: [.mean])))
            ],
            capacity: 50)
        var emitted = 0
        var reduced: Int64 = 0
        for round in 0..<20 {
            let keys = (0..<10).map { "ds,n=\(round)-\($0) v" } + (0..<10).map { "other,n=\(round)-\($0) v" }
            let readings = keys.indices.map { Reading(series: $0, timestamp: 1, value: Double($0)) }
            let output = engine.process(seriesKeys: keys, readings: readings, now: 0)
            emitted += Int(output.counts[0].emitted)
            reduced += output.counts[0].reduced
            #expect(engine.cachedSeries <= 50)
        }
        let rest = engine.flush(idleBefore: nil, now: 0)
        emitted += Int(rest?.counts[0].emitted ?? 0)
        // Every window is emitted exactly once, whether by eviction or by the final flush.
        #expect(emitted == 200 && reduced == 200)
    }

    @Test func globsMatchBytewiseWithoutBacktrackingBlowUp() {
        #expect(Glob("*").matches(""))
        #expect(Glob("a*b?c").matches("axxxbyc"))
        #expect(!Glob("a*b?c").matches("axxxbc"))
        #expect(Glob("*.temp").matches("room.temp"))
        #expect(!Glob("é").matches("e\u{301}"), "canonically equivalent spellings are different names")
        let long = String(repeating: "a", count: 5000)
        #expect(!Glob(String(repeating: "*a", count: 30) + "b").matches(long))
    }
}
