import EdgeAgent
import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation

/// The processing rules (issue 23): what ten rules cost on the durable HTTP ingest path, against no
/// rules in the same run with alternating rounds, and what deadband, downsample and error_bound do
/// to the real datasets (readings kept, encoded bytes per original reading, the largest error each
/// introduced against the bound the rule promises).
enum ProcessingBenchmark: BenchmarkScenario {
    static let name = "processing"
    static let summary =
        "POST /write gzip 10,000 points with 10 rules vs none (alternating rounds); real-data reduction table"

    static func run(_ options: BenchmarkOptions) async throws {
        let datasets = try RealDataset.loadAll(from: options.dataDirectory)
        if !options.arguments.contains("--reduction-only") { try await ingest(datasets, options) }
        if options.arguments.contains("--engine-only") { return }
        var all = datasets
        let plaid = options.dataDirectory.appendingPathComponent("plaid.lp.gz")
        if FileManager.default.fileExists(atPath: plaid.path) {
            all.append(try RealDataset.load(plaid))
        } else {
            print("plaid.lp.gz not found in \(options.dataDirectory.path): its rows are left out")
        }
        try reduction(all)
    }

    // MARK: Ingest cost

    /// Ten rules of every kind that keeps readings (validate, validate with flag, convert with new
    /// values and new keys, drop of a series that is not sent), each matching some or all of the
    /// real series, so every write goes through the rules' full path (`site` changes every key).
    static let tenRules: [ProcessingRule] = {
        func validate(_ minimum: Double?, _ maximum: Double?) -> ProcessingRule.Validation {
            var validation = ProcessingRule.Validation()
            validation.minimum = minimum
            validation.maximum = maximum
            return validation
        }
        var future = validate(nil, nil)
        future.maximumFuture = 86_400 * 1_000_000_000
        var flagNegative = validate(-1e12, nil)
        flagNegative.action = .flag(tag: "flag")
        var site = ProcessingRule.Conversion()
        site.addTags = ["site": "gw-17"]
        var mmol = ProcessingRule.Conversion()
        mmol.scale = 1 / 18.016
        mmol.field = "glucose_mmol"
        var fahrenheit = ProcessingRule.Conversion()
        fahrenheit.scale = 1.8
        fahrenheit.offset = 32
        return [
            ProcessingRule(
                name: "cgm-range", match: SeriesMatch(measurement: Glob("CGM"), field: Glob("glucose")),
                action: .validate(validate(0, 1000))),
            ProcessingRule(
                name: "cgm-isig", match: SeriesMatch(measurement: Glob("CGM"), field: Glob("isig")),
                action: .validate(validate(-1000, 1000))),
            ProcessingRule(
                name: "sea-range", match: SeriesMatch(measurement: Glob("sea_surface_temperature")),
                action: .validate(validate(-5, 40))),
            ProcessingRule(
                name: "cycling-finite", match: SeriesMatch(measurement: Glob("cycling")),
                action: .validate(validate(nil, nil))),
            ProcessingRule(name: "future", action: .validate(future)),
            ProcessingRule(name: "site", action: .convert(site)),
            ProcessingRule(
                name: "glucose-mmol", match: SeriesMatch(measurement: Glob("CGM"), field: Glob("glucose")),
                action: .convert(mmol)),
            ProcessingRule(
                name: "sea-fahrenheit", match: SeriesMatch(measurement: Glob("sea_surface_temperature")),
                action: .convert(fahrenheit)),
            ProcessingRule(name: "debug", match: SeriesMatch(measurement: Glob("debug*")), action: .drop),
            ProcessingRule(
                name: "flag-negative", match: SeriesMatch(measurement: Glob("cycling"), field: Glob("power")),
                action: .validate(flagNegative)),
        ]
    }()

    /// The ten rules with the two rules that match nothing (`debug`, and `cycling-finite`, which the
    /// parser makes redundant) replaced by `error_bound` after each scaling `convert`: scaled
    /// decimals are no longer short decimals (`4.276 * 1.8 + 32` is `39.696799999999996`), so the
    /// codec falls back to XOR for them; rounding them back (0.001 °F, 0.0001 mmol/L) keeps the
    /// decimal path, as a configuration that converts units would.
    static let tenRulesRounded: [ProcessingRule] = {
        var rules = tenRules.filter { $0.name != "debug" && $0.name != "cycling-finite" }
        let glucose = rules.firstIndex { $0.name == "glucose-mmol" } ?? rules.count
        rules.insert(
            ProcessingRule(
                name: "mmol-rounding", match: SeriesMatch(measurement: Glob("CGM"), field: Glob("glucose_mmol")),
                action: .errorBound(0.00005)), at: glucose + 1)
        let sea = rules.firstIndex { $0.name == "sea-fahrenheit" } ?? rules.count
        rules.insert(
            ProcessingRule(
                name: "fahrenheit-rounding", match: SeriesMatch(measurement: Glob("sea_surface_temperature")),
                action: .errorBound(0.0005)), at: sea + 1)
        return rules
    }()

    private static func ingest(_ datasets: [RealDataset], _ options: BenchmarkOptions) async throws {
        let seconds = options.integer("--seconds") ?? 10
        let rounds = options.integer("--rounds") ?? 3
        let connections = options.integer("--connections") ?? 4
        let perRequest = 10_000
        let lines = InputsBenchmark.lineProtocol(datasets)
        let bodies = (0..<8).map { index -> [UInt8] in
            let start = (index * perRequest) % max(1, lines.count - perRequest)
            return Gzip.compress(Array(lines[start..<start + perRequest].joined(separator: "\n").utf8))
        }
        // Three variants, rotated each round so drift and load hit all alike.
        let variants: [(name: String, rules: [ProcessingRule])] = [
            ("none", []), ("ten rules", tenRules), ("ten, rounded", tenRulesRounded),
        ]
        for variant in variants.dropFirst() {
            try engineAlone(lines: lines, perRequest: perRequest, rules: variant.rules, name: variant.name)
        }
        if options.arguments.contains("--engine-only") { return }
        let load = InputsBenchmark.HTTPLoad(path: "/write?db=bench", bodies: bodies, encoding: "gzip")
        let maxSeries = Spool.Configuration(dataDirectory: "", device: "").maxSeries
        print(
            "processing ingest: POST /write, gzip line protocol, \(perRequest) points per request, fsync full,"
                + " \(connections) connections, \(rounds) rounds of \(seconds) s per variant, order rotated each round")
        var table = TextTable("round", "rules", "requests/s", "readings/s durable", "p50", "p99", "spool check")
        var totals = [Double](repeating: 0, count: variants.count)
        for round in 0..<rounds {
            for step in 0..<variants.count {
                let index = (round + step) % variants.count
                let result = try await InputsBenchmark.httpLoad(
                    load, readingsPerRequest: perRequest, connections: connections, seconds: seconds,
                    maxSeries: maxSeries, rules: variants[index].rules)
                let perSecond = result.requestsPerSecond * Double(perRequest)
                totals[index] += perSecond
                table.append(
                    String(round + 1), variants[index].name, String(format: "%.1f", result.requestsPerSecond),
                    InputsBenchmark.rate(perSecond), String(format: "%.1f ms", result.p50),
                    String(format: "%.1f ms", result.p99), result.check)
            }
        }
        print(table.render())
        let none = totals[0] / Double(max(1, rounds))
        var summary = "mean: none \(InputsBenchmark.rate(none)) readings/s"
        for index in variants.indices.dropFirst() {
            let mean = totals[index] / Double(max(1, rounds))
            summary += String(
                format: "; %@ %@ readings/s, %.1f %% below none", variants[index].name, InputsBenchmark.rate(mean),
                (1 - mean / none) * 100)
        }
        print(summary)
    }

    /// The engine by itself on one core: the same writes as the HTTP bodies, parsed once, processed
    /// again and again (the state of a write stays cached, as on a running agent).
    private static func engineAlone(lines: [String], perRequest: Int, rules: [ProcessingRule], name: String) throws {
        var blocks: [ReadingBlock] = []
        var parser = LineProtocolParser()
        for index in 0..<8 {
            let start = (index * perRequest) % max(1, lines.count - perRequest)
            let text = Array(lines[start..<start + perRequest].joined(separator: "\n").utf8)
            var block = ReadingBlock()
            try text.withUnsafeBufferPointer { buffer in
                _ = try parser.parseLines(buffer, defaultTimestamp: 0, into: &block)
            }
            blocks.append(block)
        }
        var engine = ProcessingEngine(rules: rules)
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        var processed = 0
        var kept = 0
        let started = ContinuousClock.now
        while ContinuousClock.now - started < .seconds(3) {
            for block in blocks {
                let output = engine.process(seriesKeys: block.seriesKeys, readings: block.readings, now: now)
                processed += block.count
                kept += output.readings.count
            }
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(
            String(
                format: "engine alone, %@, one core: %.1f ns per reading (%@ readings/s, %.3f kept per reading)",
                name, seconds * 1e9 / Double(processed), InputsBenchmark.rate(Double(processed) / seconds),
                Double(kept) / Double(processed)))
    }

    // MARK: Reduction on real data

    /// A dataset's readings in time order (a gateway receives them so), with keys the rules can
    /// match: `<dataset> <column>` for the CSV logs, the line protocol key for `plaid`.
    struct Input {
        var name: String
        var keys: [String]
        /// `measurement`, `field` of each key.
        var fields: [(measurement: String, field: String)]
        var readings: [Reading]
    }

    static func input(_ dataset: RealDataset) -> Input {
        var keys: [String] = []
        var fields: [(String, String)] = []
        for key in dataset.seriesKeys {
            if key.hasPrefix(dataset.name + ".") {
                let column = key.dropFirst(dataset.name.count + 1)
                    .map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
                keys.append("\(dataset.name) \(column)")
                fields.append((dataset.name, column))
            } else {
                keys.append(key)
                let measurement = key.prefix { $0 != "," && $0 != " " }
                fields.append((String(measurement), String(key.split(separator: " ").last ?? "")))
            }
        }
        let sorted = dataset.readings.enumerated().sorted {
            ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset)
        }.map(\.element)
        return Input(name: dataset.name, keys: keys, fields: fields, readings: sorted)
    }

    /// A stored reading, by key.
    struct Stored {
        var key: String
        var time: Int64
        var value: Double
    }

    /// Runs the engine over the input in writes of 10,000 readings, then stores the open windows.
    static func process(_ input: Input, rules: [ProcessingRule]) -> [Stored] {
        var engine = ProcessingEngine(rules: rules)
        var stored: [Stored] = []
        let now = (input.readings.last?.timestamp ?? 0) + 1
        var start = 0
        func collect(_ output: ProcessingEngine.Output, _ keys: [String], _ readings: ArraySlice<Reading>) {
            if output.isUnchanged {
                stored += readings.map { Stored(key: keys[$0.series], time: $0.timestamp, value: $0.value) }
            } else {
                stored += output.readings.map {
                    Stored(key: output.seriesKeys[$0.series], time: $0.timestamp, value: $0.value)
                }
            }
        }
        while start < input.readings.count {
            let end = min(start + 10_000, input.readings.count)
            let slice = input.readings[start..<end]
            collect(engine.process(seriesKeys: input.keys, readings: Array(slice), now: now), input.keys, slice)
            start = end
        }
        if let rest = engine.flush(idleBefore: nil, now: now) { collect(rest, [], []) }
        return stored
    }

    /// Encoded as the spool stores it (codec frames of 10,000 readings, the encoder's default
    /// format, v3 since encode-once, no deflate).
    static func encodedBytes(_ stored: [Stored]) throws -> Int {
        let encoder = BatchEncoder()
        var total = 0
        var start = 0
        while start < stored.count {
            let end = min(start + 10_000, stored.count)
            var keys: [String] = []
            var index: [String: Int] = [:]
            var readings: [Reading] = []
            for reading in stored[start..<end] {
                let series = index[reading.key] ?? keys.count
                if series == keys.count {
                    keys.append(reading.key)
                    index[reading.key] = series
                }
                readings.append(Reading(series: series, timestamp: reading.time, value: reading.value))
            }
            total += try encoder.encode(
                Batch(
                    device: "bench", stream: 1, firstSequence: UInt64(start + 1), seriesKeys: keys, readings: readings)
            ).count
            start = end
        }
        return total
    }

    /// Per field (measurement and field), the spread of its values: settings are fractions of it.
    static func ranges(_ input: Input) -> [String: Double] {
        var bounds: [String: (Double, Double)] = [:]
        for reading in input.readings where reading.value.isFinite {
            let (measurement, field) = input.fields[reading.series]
            let name = measurement + " " + field
            let (low, high) = bounds[name] ?? (reading.value, reading.value)
            bounds[name] = (min(low, reading.value), max(high, reading.value))
        }
        return bounds.mapValues { $0.1 - $0.0 }
    }

    /// One rule per field, each with its own setting (rules matching nothing are left out).
    static func perField(_ input: Input, _ action: (_ range: Double) -> ProcessingRule.Action?) -> [ProcessingRule] {
        var rules: [ProcessingRule] = []
        var seen: Set<String> = []
        let spreads = ranges(input)
        for (measurement, field) in input.fields where seen.insert(measurement + " " + field).inserted {
            guard let spread = spreads[measurement + " " + field], spread > 0, let action = action(spread) else {
                continue
            }
            rules.append(
                ProcessingRule(
                    name: "r\(rules.count)", match: SeriesMatch(measurement: Glob(measurement), field: Glob(field)),
                    action: action))
        }
        return rules
    }

    /// The median time between readings of one series, over all series.
    static func medianStep(_ input: Input) -> Int64 {
        var last: [Int: Int64] = [:]
        var steps: [Int64] = []
        for reading in input.readings {
            if let previous = last[reading.series], reading.timestamp > previous {
                steps.append(reading.timestamp - previous)
            }
            last[reading.series] = reading.timestamp
        }
        steps.sort()
        return steps.isEmpty ? 1_000_000_000 : steps[steps.count / 2]
    }

    /// Holding the last stored value of each series: the largest distance of a left-out reading from
    /// it, as a fraction of its field's delta (the promise is ≤ 1), and whether heartbeats held.
    static func deadbandError(_ input: Input, _ stored: [Stored], delta: [String: Double], heartbeat: Int64) -> Double {
        var queues: [String: [Stored]] = [:]
        for reading in stored { queues[reading.key, default: []].append(reading) }
        var cursor: [String: Int] = [:]
        var held: [String: Stored] = [:]
        var worst = 0.0
        for reading in input.readings {
            let key = input.keys[reading.series]
            let position = cursor[key] ?? 0
            if let queue = queues[key], position < queue.count, queue[position].time == reading.timestamp,
                queue[position].value.bitPattern == reading.value.bitPattern
            {
                held[key] = queue[position]
                cursor[key] = position + 1
                continue
            }
            let (measurement, field) = input.fields[reading.series]
            guard let last = held[key], let bound = delta[measurement + " " + field] else { return .infinity }
            if reading.timestamp - last.time >= heartbeat { return .infinity }
            worst = max(worst, (reading.value - last.value).magnitude / bound)
        }
        return worst
    }

    /// Each reading replaced by its window's stored mean: the largest distance, as a fraction of
    /// that window's range (the promise: within the window's min and max), and whether every
    /// stored aggregate equals the brute-force one.
    static func downsampleError(_ input: Input, _ stored: [Stored], window: Int64, aggregates: Int)
        -> (error: Double, exact: Bool)
    {
        struct Aggregate {
            var sum = 0.0
            var count = 0
            var minimum = Double.infinity
            var maximum = -Double.infinity
        }
        var windows: [String: [Int64: Aggregate]] = [:]
        for reading in input.readings {
            let start = ProcessingEngine.windowStart(reading.timestamp, width: window)
            var aggregate = windows[input.keys[reading.series], default: [:]][start] ?? Aggregate()
            aggregate.sum += reading.value
            aggregate.count += 1
            aggregate.minimum = min(aggregate.minimum, reading.value)
            aggregate.maximum = max(aggregate.maximum, reading.value)
            windows[input.keys[reading.series], default: [:]][start] = aggregate
        }
        var exact = true
        var means: [String: [Int64: Double]] = [:]
        for reading in stored {
            let (key, suffix): (String, String) =
                aggregates == 1
                ? (reading.key, "mean")
                : (
                    String(reading.key[..<(reading.key.lastIndex(of: "_") ?? reading.key.endIndex)]),
                    String(
                        reading.key[
                            (reading.key.lastIndex(of: "_").map { reading.key.index(after: $0) } ?? reading.key.endIndex)...
                        ])
                )
            let start = ProcessingEngine.windowStart(reading.time, width: window)
            guard let aggregate = windows[key]?[start] else {
                exact = false
                continue
            }
            switch suffix {
            case "mean":
                let mean = aggregate.sum / Double(aggregate.count)
                if (reading.value - mean).magnitude > 1e-9 * max(1, mean.magnitude) { exact = false }
                means[key, default: [:]][start] = reading.value
            case "min": if reading.value != aggregate.minimum { exact = false }
            case "max": if reading.value != aggregate.maximum { exact = false }
            default: break
            }
        }
        var worst = 0.0
        for reading in input.readings {
            let key = input.keys[reading.series]
            let start = ProcessingEngine.windowStart(reading.timestamp, width: window)
            guard let aggregate = windows[key]?[start], let mean = means[key]?[start] else { return (.infinity, false) }
            let spread = aggregate.maximum - aggregate.minimum
            // A mean of equal values may differ from them in the last bit (sum, then divide).
            let distance = max(0, (reading.value - mean).magnitude - 1e-12 * max(1, mean.magnitude))
            let relative: Double = spread > 0 ? distance / spread : (distance == 0 ? 0 : Double.infinity)
            worst = max(worst, relative)
        }
        return (worst, exact)
    }

    private static func reduction(_ datasets: [RealDataset]) throws {
        print(
            "\nprocessing on the real data (time order, writes of 10,000 readings, encoded as the spool stores"
                + " them: codec v3 frames of 10,000 readings, no deflate); settings per field, as fractions of the"
                + " field's value range or multiples of the dataset's median step")
        var table = TextTable(
            "dataset", "rule", "setting", "readings kept", "kept %", "bytes / original reading",
            "largest error / promised bound", "promise held")
        for dataset in datasets {
            let input = input(dataset)
            let count = input.readings.count
            let spreads = ranges(input)
            let baseline = try encodedBytes(
                input.readings.map { Stored(key: input.keys[$0.series], time: $0.timestamp, value: $0.value) })
            func row(_ rule: String, _ setting: String, _ stored: [Stored], _ error: String, _ held: Bool) throws {
                table.append(
                    input.name, rule, setting, String(stored.count),
                    String(format: "%.1f", Double(stored.count) / Double(count) * 100),
                    String(format: "%.3f", Double(try encodedBytes(stored)) / Double(count)), error, held ? "yes" : "NO"
                )
            }
            table.append(
                input.name, "none", "lossless", String(count), "100.0",
                String(format: "%.3f", Double(baseline) / Double(count)), "0", "yes")
            let heartbeat: Int64 = 6 * 3600 * 1_000_000_000
            for fraction in [0.001, 0.01, 0.05] {
                let rules = perField(input) { .deadband(.init(delta: $0 * fraction, heartbeat: heartbeat)) }
                let stored = process(input, rules: rules)
                let deltas = spreads.mapValues { $0 * fraction }
                let error = deadbandError(input, stored, delta: deltas, heartbeat: heartbeat)
                try row(
                    "deadband", String(format: "δ %.1f %% of range, heartbeat 6 h", fraction * 100), stored,
                    String(format: "%.3f × δ", error), error <= 1)
            }
            let step = medianStep(input)
            for multiple: Int64 in [10, 60] {
                let window = max(1_000_000, step * multiple)
                for aggregates in [
                    [ProcessingRule.Downsample.Aggregate.mean], ProcessingRule.Downsample.Aggregate.allCases,
                ] {
                    let rules = perField(input) { _ in .downsample(.init(window: window, aggregates: aggregates)) }
                    let stored = process(input, rules: rules)
                    let (error, exact) = downsampleError(input, stored, window: window, aggregates: aggregates.count)
                    try row(
                        "downsample " + (aggregates.count == 1 ? "mean" : "all"),
                        "every \(seconds(window)) (\(window / step) × median step)", stored,
                        String(format: "%.3f × window range%@", error, exact ? "" : ", aggregates NOT exact"),
                        error <= 1 && exact)
                }
            }
            for fraction in [0.001, 0.01] {
                let rules = perField(input) { .errorBound($0 * fraction) }
                let stored = process(input, rules: rules)
                var worst = 0.0
                for (original, kept) in zip(input.readings, stored) {
                    let (measurement, field) = input.fields[original.series]
                    guard let spread = spreads[measurement + " " + field], spread > 0 else { continue }
                    worst = max(worst, (kept.value - original.value).magnitude / (spread * fraction))
                }
                try row(
                    "error_bound", String(format: "bound %.1f %% of range", fraction * 100), stored,
                    String(format: "%.3f × bound", worst), worst <= 1 && stored.count == count)
            }
        }
        print(table.render())
    }

    private static func seconds(_ nanoseconds: Int64) -> String {
        let value = Double(nanoseconds) / 1e9
        switch value {
        case ..<1: return String(format: "%.0f ms", value * 1000)
        case ..<120: return String(format: "%.0f s", value)
        case ..<7200: return String(format: "%.0f min", value / 60)
        default: return String(format: "%.1f h", value / 3600)
        }
    }
}
