import CloudCollector
import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation
import Testing

/// A range far larger than the collector's memory streams out as CSV while the collector's peak
/// resident memory stays small: the export holds one fetch and one output buffer, never the range.
/// (The benchmark's `query` scenario does the same with 10 million readings, in a release build.)
@Suite(.serialized) struct LargeExportTests {
    @Test func threeMillionReadingsStreamOutAsCSVInBoundedCollectorMemory() async throws {
        try await withTemporaryDirectory { directory in
            let readings = 3_000_000
            let key = "weather,site=b01 temperature"
            // Filled through the store directly: fast, and the same rows ingest would write.
            let store = try SQLiteReadingStore(path: directory + "/collector.sqlite")
            let start: Int64 = 1_700_000_000_000_000_000
            var stored = 0
            while stored < readings {
                let count = min(200_000, readings - stored)
                let batch = Batch(
                    device: "gw-big", stream: 7, firstSequence: UInt64(stored + 1), seriesKeys: [key],
                    readings: (stored..<stored + count).map {
                        Reading(series: 0, timestamp: start + Int64($0) * 1_000_000_000, value: Double($0 % 4000) / 100)
                    }, sentAt: start)
                stored += try store.store([batch], receivedAt: start).outcomes[0].accepted
            }
            let token = String(repeating: "a1", count: 16)
            let collector = try await CollectorUnderTest.start(
                dataDirectory: directory, environment: ["CLOUD_COLLECTOR_OPERATOR_TOKEN": token])
            defer { collector.process.kill() }
            let series = key.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let output = try await ChildProcess.run(
                URL(fileURLWithPath: "/bin/bash"),
                [
                    "-c",
                    "curl -sS --fail -H 'Authorization: Bearer \(token)' '\(collector.url)/v1/readings?device=gw-big&series=\(series)&format=csv&limit=\(readings)' | tee >(wc -c >&2) | wc -l",
                ])
            #expect(output.status == 0, "\(output.stderr)")
            // A header line, then one line per reading.
            #expect(Int(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == readings + 1)
            let bytes = Int(output.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last ?? "") ?? 0
            #expect(bytes > 64 << 20, "the answer (\(bytes) bytes) is larger than the memory bound")
            let peak = ProcessStatus.kilobytes("VmHWM", pid: collector.process.processIdentifier) ?? .max
            #expect(peak < 64 * 1024, "collector peak RSS \(peak) kB")
        }
    }
}
