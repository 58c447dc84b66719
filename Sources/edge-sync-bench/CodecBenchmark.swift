import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation

/// `codec`: bytes per reading and single-core speed on the real datasets, against what other
/// agents send (InfluxDB line protocol, and fixed binary rows, both deflated at zlib level 6).
enum CodecBenchmark: BenchmarkScenario {
    static let name = "codec"
    static let summary = "codec bytes/reading and speed on the real datasets, against zlib baselines"

    static let batchSize = 10_000
    /// The replay batch size: a backlog is sent in batches as large as the limits allow.
    static let replayBatchSize = 100_000
    /// Minimum measuring time per timed loop, so that short datasets are repeated enough.
    static let minimumSeconds = 0.5

    static func run(_ options: BenchmarkOptions) async throws {
        let datasets = try RealDataset.codecFileNames.map { file -> RealDataset in
            let url = options.dataDirectory.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw BenchmarkError("dataset \(url.path) is missing; pass --data DIR with \(RealDataset.codecFileNames.joined(separator: ", "))")
            }
            return try RealDataset.load(url)
        }
        print("codec: batches of \(batchSize) and \(replayBatchSize) readings, data from \(options.dataDirectory.path)\n")

        var table = TextTable(
            "dataset", "batch", "readings", "v3 B/r", "v2 B/r", "naive zlib-9 B/r", "v3 / naive", "LP zlib-6 B/r",
            "v3 deflated B/r", "v3 encode M/s", "v3 decode M/s", "v2 encode M/s", "v2 decode M/s")
        var bytesPerReading: [Double] = []
        for dataset in datasets {
            for size in [batchSize, replayBatchSize] {
                let batches = dataset.batches(of: size)
                let v3 = BatchEncoder()
                let v2 = BatchEncoder(options: EncodingOptions(version: .v2))
                let frames = try batches.map { try v3.encode($0) }
                let v2Frames = try batches.map { try v2.encode($0) }
                let deflated = try batches.map { try BatchEncoder(options: EncodingOptions(deflateLevel: 6)).encode($0) }
                let decoder = BatchDecoder()
                for (batch, frame) in zip(batches, frames) {
                    var expected = batch
                    expected.sentAt = 0
                    guard try decoder.decode(frame) == expected else {
                        throw BenchmarkError("\(dataset.name): a version 3 batch did not round-trip")
                    }
                }
                for (batch, frame) in zip(batches, v2Frames) where try decoder.decode(frame) != batch {
                    throw BenchmarkError("\(dataset.name): a version 2 batch did not round-trip")
                }
                let readings = Double(dataset.readings.count)
                let ours = Double(frames.reduce(0) { $0 + $1.count }) / readings
                let oursV2 = Double(v2Frames.reduce(0) { $0 + $1.count }) / readings
                let oursDeflated = Double(deflated.reduce(0) { $0 + $1.count }) / readings
                let naive = Double(batches.reduce(0) { $0 + Baselines.naiveColumnarSize($1) }) / readings
                let lineProtocolBytes = Double(batches.reduce(0) { $0 + Baselines.zlibSize(Baselines.lineProtocol($1)) }) / readings
                let encodeRate = try rate(readings: dataset.readings.count) {
                    for batch in batches { _ = try v3.encode(batch) }
                }
                let decodeRate = try rate(readings: dataset.readings.count) {
                    for frame in frames { _ = try decoder.decode(frame) }
                }
                let v2EncodeRate = try rate(readings: dataset.readings.count) {
                    for batch in batches { _ = try v2.encode(batch) }
                }
                let v2DecodeRate = try rate(readings: dataset.readings.count) {
                    for frame in v2Frames { _ = try decoder.decode(frame) }
                }
                if size == batchSize { bytesPerReading.append(ours) }
                table.append(
                    dataset.name, "\(size)", "\(dataset.readings.count)", format(ours, 3), format(oursV2, 3), format(naive, 3),
                    format(ours / naive, 2), format(lineProtocolBytes, 2), format(oursDeflated, 3),
                    format(encodeRate / 1e6, 1), format(decodeRate / 1e6, 1), format(v2EncodeRate / 1e6, 1), format(v2DecodeRate / 1e6, 1))
            }
        }
        print(table.render())
        if options.arguments.contains("--detail") { try printSeriesDetail(datasets) }
        let mean = bytesPerReading.reduce(0, +) / Double(bytesPerReading.count)
        print("\nmean bytes per reading over the datasets at \(batchSize): \(format(mean, 3))\n")

        var lossy = TextTable("dataset", "lossless B/r", "±0.001 B/r", "±0.01 B/r", "±0.1 B/r", "±1 B/r")
        for dataset in datasets {
            let batches = dataset.batches(of: batchSize)
            var row = [dataset.name]
            for bound in [nil, 0.001, 0.01, 0.1, 1.0] as [Double?] {
                let bounds = Dictionary(uniqueKeysWithValues: dataset.seriesKeys.map { ($0, bound ?? 0) })
                let encoder = BatchEncoder(options: EncodingOptions(errorBounds: bound == nil ? [:] : bounds))
                let bytes = try batches.reduce(0) { $0 + (try encoder.encode($1)).count }
                row.append(format(Double(bytes) / Double(dataset.readings.count), 3))
            }
            lossy.rows.append(row)
        }
        print("lossy mode, batches of \(batchSize) (every series with the same absolute error bound):\n")
        print(lossy.render())
    }

    /// Bytes per reading of each series encoded alone (its own timestamps, no order section), to
    /// see which columns cost what. `--detail` prints it.
    static func printSeriesDetail(_ datasets: [RealDataset]) throws {
        var sections = TextTable("dataset", "batch", "frame B/r", "keys B/r", "order+timestamps B/r", "values B/r")
        for dataset in datasets {
            for size in [batchSize, replayBatchSize] {
                let batches = dataset.batches(of: size)
                let total = try batches.reduce(0) { $0 + (try BatchEncoder().encode($1)).count }
                // Sections by difference: no readings (header and keys), then constant values.
                let keys = try batches.reduce(0) {
                    var empty = $1
                    empty.readings = []
                    return $0 + (try BatchEncoder().encode(empty)).count
                }
                let times = try batches.reduce(0) {
                    var constant = $1
                    constant.readings = constant.readings.map { Reading(series: $0.series, timestamp: $0.timestamp, value: 0) }
                    return $0 + (try BatchEncoder().encode(constant)).count
                }
                let readings = Double(dataset.readings.count)
                sections.append(
                    dataset.name, "\(size)", format(Double(total) / readings, 3), format(Double(keys) / readings, 3),
                    format(Double(times - keys) / readings, 3), format(Double(total - times) / readings, 3))
            }
        }
        print("\nwhere the bytes go (version 3):\n")
        print(sections.render())
        var table = TextTable("series", "readings", "B/reading alone", "timestamps only B/r")
        for dataset in datasets where dataset.seriesKeys.count < 100 {
            for (series, key) in dataset.seriesKeys.enumerated() {
                let readings = dataset.readings.filter { $0.series == series }.map {
                    Reading(series: 0, timestamp: $0.timestamp, value: $0.value)
                }
                let alone = RealDataset(name: key, seriesKeys: [key], readings: readings)
                let constant = RealDataset(name: key, seriesKeys: [key], readings: readings.map {
                    Reading(series: 0, timestamp: $0.timestamp, value: 0)
                })
                let bytes = try alone.batches(of: batchSize).reduce(0) { $0 + (try BatchEncoder().encode($1)).count }
                let timeBytes = try constant.batches(of: batchSize).reduce(0) { $0 + (try BatchEncoder().encode($1)).count }
                table.append(key, "\(readings.count)", format(Double(bytes) / Double(readings.count), 3),
                    format(Double(timeBytes) / Double(readings.count), 3))
            }
        }
        print("\nper series, each encoded alone:\n")
        print(table.render())
    }

    /// Readings per second of `body`, repeated for at least ``minimumSeconds``.
    static func rate(readings: Int, _ body: () throws -> Void) throws -> Double {
        let clock = ContinuousClock()
        var rounds = 0
        let start = clock.now
        var elapsed = Duration.zero
        repeat {
            try body()
            rounds += 1
            elapsed = clock.now - start
        } while elapsed < .seconds(minimumSeconds)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(readings * rounds) / seconds
    }

    /// Fixed 24-byte rows: series index (Int64), timestamp, value bits.
    static func binaryRows(_ batch: Batch) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(batch.readings.count * 24)
        for reading in batch.readings {
            withUnsafeBytes(of: Int64(reading.series).littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: reading.timestamp.littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: reading.value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    static func format(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
}
