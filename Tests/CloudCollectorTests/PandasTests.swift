import CloudCollector
import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation
import Testing

/// Analysts read central data with `pandas.read_sql_query`; this runs that for real against a
/// database the collector wrote.
struct PandasTests {
    static let script = """
        import json, sqlite3, sys
        import pandas
        connection = sqlite3.connect(sys.argv[1])
        frame = pandas.read_sql_query(
            "SELECT device, series_key, timestamp, value, stream, seq FROM readings_view ORDER BY stream, seq",
            connection)
        def value(v):
            if pandas.isna(v): return None
            return float(v) if abs(v) != float("inf") else repr(float(v))
        # Timestamps as strings: JSON numbers lose precision above 2^53.
        rows = [[r.device, r.series_key, str(int(r.timestamp)), value(r.value), r.stream, int(r.seq)]
                for r in frame.itertuples()]
        print(json.dumps({"columns": list(frame.columns), "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
                          "rows": rows}))
        """

    /// Runs a command, returning its status and stdout.
    static func run(_ executable: String, _ arguments: [String]) async throws -> (Int32, String, String) {
        let output = try await ChildProcess.run(URL(fileURLWithPath: "/usr/bin/env"), [executable] + arguments)
        return (output.status, output.stdout, output.stderr)
    }

    @Test func pandasReadsTheView() async throws {
        guard (try? await Self.run("python3", ["--version"]))?.0 == 0 else {
            print("PandasTests: skipped: python3 is not installed")
            return
        }
        if try await Self.run("python3", ["-c", "import pandas"]).0 != 0 {
            let (status, _, stderr) = try await Self.run("python3", ["-m", "pip", "install", "--quiet", "pandas"])
            guard status == 0 else {
                print("PandasTests: skipped: pip install pandas failed: \(stderr.suffix(300))")
                return
            }
        }
        try await withTemporaryDirectory(prefix: "collector-pandas") { directory in
            let path = (directory as NSString).appendingPathComponent("collector.sqlite")
            let store = try SQLiteReadingStore(path: path)
            var batch = Fixtures.batch(device: "gw-π", stream: UInt64.max - 1, first: 1, count: 300)
            batch.readings[7].value = .nan
            batch.readings[8].value = -0.0
            batch.readings[9].value = .infinity
            _ = try store.store([batch], receivedAt: 0)

            let scriptPath = (directory as NSString).appendingPathComponent("read.py")
            try Data(Self.script.utf8).write(to: URL(fileURLWithPath: scriptPath))
            let (status, stdout, stderr) = try await Self.run("python3", [scriptPath, path])
            try #require(status == 0, "\(stderr)")

            struct Output: Decodable {
                var columns: [String]
                var dtypes: [String: String]
                var rows: [[Cell]]
            }
            enum Cell: Decodable, Equatable {
                case text(String), number(Double), null
                init(from decoder: any Decoder) throws {
                    let container = try decoder.singleValueContainer()
                    if container.decodeNil() {
                        self = .null
                    } else if let number = try? container.decode(Double.self) {
                        self = .number(number)
                    } else {
                        self = .text(try container.decode(String.self))
                    }
                }
            }
            let output = try JSONDecoder().decode(Output.self, from: Data(stdout.utf8))
            #expect(output.columns == ["device", "series_key", "timestamp", "value", "stream", "seq"])
            #expect(output.dtypes["timestamp"] == "int64" && output.dtypes["value"] == "float64")
            #expect(output.rows.count == 300)
            for (index, row) in output.rows.enumerated() {
                let reading = batch.readings[index]
                let value: Cell =
                    reading.value.isNaN
                    ? .null
                    : reading.value.isInfinite ? .text(reading.value > 0 ? "inf" : "-inf") : .number(reading.value)
                let expected: [Cell] = [
                    .text("gw-π"), .text(batch.seriesKeys[reading.series]), .text(String(reading.timestamp)),
                    value, .text(String(UInt64.max - 1)), .number(Double(index + 1)),
                ]
                #expect(row == expected, "row \(index)")
            }
        }
    }
}
