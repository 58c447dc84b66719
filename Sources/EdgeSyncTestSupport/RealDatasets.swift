import EdgeSyncCodec
import Foundation

/// The three real sensor logs in `shared/data`, turned into readings: every numeric column is a
/// series, rows are interleaved in file order, timestamps are the file's own (UTC).
///
/// The cycling log only has offsets from its start; they are placed on 2020-01-01T00:00:00Z.
/// Cells that hold no number (CGM's `nil`) are absent readings, not zeros.
public struct RealDataset: Sendable {
    public let name: String
    public let seriesKeys: [String]
    public let readings: [Reading]

    public init(name: String, seriesKeys: [String], readings: [Reading]) {
        self.name = name
        self.seriesKeys = seriesKeys
        self.readings = readings
    }

    public static let fileNames = ["CGM.csv.gz", "cycling.csv.gz", "sea_surface_temperature.csv.gz"]
    /// Every dataset the codec benchmark covers: the three CSV logs and the many-series gateway log.
    public static let codecFileNames = fileNames + ["plaid.lp.gz"]

    /// The `shared/data` folder beside the package checkout, found from this source file's path.
    public static var defaultDirectory: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/data")
    }

    /// Loads all three datasets from `directory`.
    public static func loadAll(from directory: URL = defaultDirectory) throws -> [RealDataset] {
        try fileNames.map { try load(directory.appendingPathComponent($0)) }
    }

    public static func load(_ file: URL) throws -> RealDataset {
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw DatasetError(
                    "dataset \(file.path) is missing; the real datasets live in shared/data beside the checkout")
        }
        let text = String(decoding: try Gzip.decompress([UInt8](data), maximumBytes: 1 << 30), as: UTF8.self)
        if file.lastPathComponent.hasSuffix(".lp.gz") {
            return try lineProtocol(text, name: file.lastPathComponent.replacingOccurrences(of: ".lp.gz", with: ""))
        }
        let name = file.lastPathComponent.replacingOccurrences(of: ".csv.gz", with: "")
        var lines = text.split(whereSeparator: \.isNewline).makeIterator()
        guard let headerLine = lines.next() else { throw DatasetError("\(file.path) is empty") }
        let header = headerLine.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let timeColumn: Int
        let skipped: Set<Int>
        let parseTime: (Substring) -> Int64?
        switch name {
        case "CGM":
            timeColumn = 1
            skipped = []
            parseTime = Timestamps.parseISO
        case "cycling":
            timeColumn = header.count - 1
            skipped = [0]
            parseTime = Timestamps.parseDayOffset
        default:
            timeColumn = 0
            skipped = []
            parseTime = Timestamps.parseISO
        }
        let valueColumns = header.indices.filter { $0 != timeColumn && !skipped.contains($0) }
        let seriesKeys = valueColumns.map { "\(name).\(header[$0])" }
        var readings: [Reading] = []
        var lineNumber = 1
        while let line = lines.next() {
            lineNumber += 1
            let cells = line.split(separator: ",", omittingEmptySubsequences: false)
            guard cells.count == header.count, let time = parseTime(cells[timeColumn]) else {
                throw DatasetError("\(file.lastPathComponent) line \(lineNumber): cannot read \"\(line)\"")
            }
            for (series, column) in valueColumns.enumerated() {
                if let value = Double(cells[column]) {
                    readings.append(Reading(series: series, timestamp: time, value: value))
                }
            }
        }
        return RealDataset(name: name, seriesKeys: seriesKeys, readings: readings)
    }

    /// Line protocol with one field per line (`plaid,appliance=type0,load=p0001 current=0.17339 T`):
    /// the series key is `measurement,tags field`, series numbered in order of first appearance.
    static func lineProtocol(_ text: String, name: String) throws -> RealDataset {
        var index = [String: Int]()
        var seriesKeys: [String] = []
        var readings: [Reading] = []
        for (number, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let equals = parts[1].lastIndex(of: "="),
                let value = Double(parts[1][parts[1].index(after: equals)...]), let time = Int64(parts[2])
            else {
                throw DatasetError("\(name) line \(number + 1): cannot read \"\(line)\"")
            }
            let key = "\(parts[0]) \(parts[1][..<equals])"
            let series = index[key] ?? {
                seriesKeys.append(key)
                index[key] = seriesKeys.count - 1
                return seriesKeys.count - 1
            }()
            readings.append(Reading(series: series, timestamp: time, value: value))
        }
        return RealDataset(name: name, seriesKeys: seriesKeys, readings: readings)
    }

    /// Cuts the readings into batches of `batchSize`, with consecutive sequence numbers, keeping in
    /// each batch only the series keys its readings use.
    public func batches(of batchSize: Int, device: String = "gateway-1", stream: UInt64 = 0x5EED_0000_0000_0001)
        -> [Batch]
    {
        stride(from: 0, to: readings.count, by: batchSize).map { start in
            let slice = readings[start..<min(start + batchSize, readings.count)]
            var remap = [Int: Int]()
            var keys: [String] = []
            let local = slice.map { reading -> Reading in
                let index =
                    remap[reading.series]
                    ?? {
                        keys.append(seriesKeys[reading.series])
                        remap[reading.series] = keys.count - 1
                        return keys.count - 1
                    }()
                return Reading(series: index, timestamp: reading.timestamp, value: reading.value)
            }
            return Batch(
                device: device, stream: stream, firstSequence: UInt64(start) + 1, seriesKeys: keys, readings: local,
                sentAt: 1_700_000_000_000_000_000)
        }
    }
}

/// Timestamp parsing for the dataset formats, without Foundation's date formatters.
enum Timestamps {
    static let nanosecondsPerSecond: Int64 = 1_000_000_000
    /// 2020-01-01T00:00:00Z, the origin for offsets without a date.
    static let offsetOrigin: Int64 = 1_577_836_800 * nanosecondsPerSecond

    /// `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DD HH:MM:SS`, read as UTC.
    static func parseISO(_ text: Substring) -> Int64? {
        let digits = Array(text.utf8)
        guard digits.count >= 19 else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                let digit = digits[index]
                guard digit >= 48, digit <= 57 else { return nil }
                value = value * 10 + Int64(digit - 48)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        return ((days * 24 + hour) * 60 + minute) * 60 * nanosecondsPerSecond + second * nanosecondsPerSecond
    }

    /// `D days HH:MM:SS` offsets, placed on ``offsetOrigin``.
    static func parseDayOffset(_ text: Substring) -> Int64? {
        let parts = text.split(separator: " ")
        guard parts.count == 3, let days = Int64(parts[0]) else { return nil }
        let clock = parts[2].split(separator: ":")
        guard clock.count == 3, let hours = Int64(clock[0]), let minutes = Int64(clock[1]),
            let seconds = Int64(clock[2])
        else {
            return nil
        }
        return offsetOrigin + (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * nanosecondsPerSecond
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

/// A dataset file that is missing or does not read as expected.
public struct DatasetError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
