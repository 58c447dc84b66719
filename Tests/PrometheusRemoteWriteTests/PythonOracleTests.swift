import EdgeAgent
import EdgeSyncTestSupport
import Foundation
import PrometheusRemoteWrite
import Testing

/// An independent implementation as the oracle: Python's `cramjam` (the Rust port of Google's Snappy)
/// compresses, and `google.protobuf`'s wire encoder writes the WriteRequest. Skipped, with the
/// reason printed, when python3 or the packages are not available.
struct PythonOracleTests {
    static let script = #"""
        import math, struct, sys
        import cramjam
        from google.protobuf.internal import encoder

        def varint(n):
            out = bytearray()
            encoder._VarintEncoder()(out.extend, n, True)
            return bytes(out)

        def field(number, wire, payload):
            return varint(number << 3 | wire) + payload

        def lengthed(number, payload):
            return field(number, 2, varint(len(payload)) + payload)

        def label(name, value):
            return lengthed(1, lengthed(1, name.encode()) + lengthed(2, value.encode()))

        def sample(value, ms):
            return lengthed(2, field(1, 1, struct.pack("<d", value)) + field(2, 0, varint(ms & (2**64 - 1))))

        series = []
        for i in range(300):
            body = label("__name__", "sensor_temperature") + label("site", "b%02d" % (i % 7)) + label("idx", str(i))
            for j in range(20):
                body += sample(20.0 + i / 10 + j / 100, 1700000000000 + 15000 * j - (i == 3) * 1800000000000)
            series.append(lengthed(1, body))
        stale = lengthed(2, field(1, 1, struct.pack("<Q", 0x7FF0000000000002)) + field(2, 0, varint(8)))
        series.append(lengthed(1, label("__name__", "up") + label("job", "π") + sample(float("nan"), 7) + stale))
        message = b"".join(series)
        sys.stdout.write(bytes(cramjam.snappy.compress_raw(message)).hex())
        """#

    @Test func decodesWhatPythonEncodes() async throws {
        guard let python = await Self.availablePython() else { return }
        let output = try await ChildProcess.run(URL(fileURLWithPath: "/usr/bin/env"), [python, "-c", Self.script])
        try #require(output.status == 0, "\(output.stderr)")
        let body = try #require(Self.bytes(hex: output.stdout))
        let result = try RemoteWriteReadings.decode(snappyBody: body)
        #expect(result.droppedNonFinite == 1)
        #expect(result.droppedStaleMarkers == 1)
        var expected: [IncomingReading] = []
        for i in 0..<300 {
            let key = RemoteWriteSeriesKey.make(
                name: "sensor_temperature",
                labels: [.init("site", "b0\(i % 7)"), .init("idx", String(i))])
            for j in 0..<20 {
                let milliseconds = 1_700_000_000_000 + 15_000 * Int64(j) - (i == 3 ? 1_800_000_000_000 : 0)
                expected.append(
                    IncomingReading(
                        seriesKey: key, timestamp: milliseconds * 1_000_000,
                        value: 20.0 + Double(i) / 10 + Double(j) / 100))
            }
        }
        #expect(result.readings == expected)
        #expect(expected[3 * 20].seriesKey == "sensor_temperature,idx=3,site=b03 value")
    }

    @Test func pythonDecompressesWhatSwiftCompresses() async throws {
        guard let python = await Self.availablePython() else { return }
        var random = SeededRandom(seed: 42)
        let request = WriteRequest(
            timeseries: (0..<200).map { index in
                .init(
                    name: "gauge", labels: [.init("n", String(index))],
                    samples: (0..<30).map { _ in
                        .init(value: Double(Int.random(in: 0...100, using: &random)) / 4, timestamp: 1_700_000_000_000)
                    })
            })
        let message = request.protobufEncoded()
        let body = Snappy.compress(message)
        let script =
            "import sys, cramjam; sys.stdout.write(bytes(cramjam.snappy.decompress_raw(sys.stdin.buffer.read())).hex())"
        let output = try await ChildProcess.run(
            URL(fileURLWithPath: "/usr/bin/env"), [python, "-c", script], input: Data(body))
        try #require(output.status == 0, "\(output.stderr)")
        #expect(Self.bytes(hex: output.stdout) == message)
        #expect(body.count < message.count / 2)
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
                return nil
            }
            bytes.append(byte)
        }
        return bytes
    }

    /// `python3` if it can import cramjam and protobuf, installing them with pip when needed.
    static func availablePython() async -> String? {
        let environment = URL(fileURLWithPath: "/usr/bin/env")
        let check = ["python3", "-c", "import cramjam, google.protobuf"]
        guard let first = try? await ChildProcess.run(environment, check) else {
            print("PythonOracleTests: skipped: python3 is not installed")
            return nil
        }
        if first.status == 0 { return "python3" }
        let install = try? await ChildProcess.run(
            environment, ["python3", "-m", "pip", "install", "--quiet", "cramjam", "protobuf"])
        guard install?.status == 0, (try? await ChildProcess.run(environment, check))?.status == 0 else {
            print(
                "PythonOracleTests: skipped: pip install cramjam protobuf failed: \(install?.stderr.suffix(300) ?? "")")
            return nil
        }
        return "python3"
    }
}
