import CloudCollector
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import Testing

/// A fleet upgrades gateway by gateway: the collector takes version 2 frames from old agents
/// (clock inside the frame) beside version 3 frame runs from new ones (clock in a header).
@Suite struct RollingUpgradeTests {
    static let sentAt: Int64 = 1_700_000_100_000_000_000
    static let receivedAt: Int64 = 1_700_000_103_000_000_000

    /// The same readings from two gateways: one old (a version 2 frame, `sentAt` inside), one new
    /// (version 3 frames as a run, `Edge-Sync-Sent-At`). Rows and clock skew come out identical.
    @Test func aVersion2FrameAndAVersion3RunOfTheSameReadingsGiveIdenticalRows() async throws {
        try await RunningCollector.with(now: { Self.receivedAt }) { collector, tokens in
            var old = Fixtures.batch(device: "gateway-1", first: 1, count: 3000)
            old.sentAt = Self.sentAt
            let v2 = try BatchEncoder(options: EncodingOptions(version: .v2)).encode(old)
            let oldAnswer = try await collector.post(ProtocolPath.batches, body: v2, token: tokens["gateway-1"])
            #expect(oldAnswer.status == 200, "\(oldAnswer.text)")

            let new = Fixtures.batch(device: "gateway-2", first: 1, count: 3000)
            let parts = [SequenceRange(1, 1000), SequenceRange(1001, 2500), SequenceRange(2501, 3000)].map { range in
                Batch(
                    device: new.device, stream: new.stream, firstSequence: range.first, seriesKeys: new.seriesKeys,
                    readings: Array(new.readings[Int(range.first - 1)..<Int(range.last)]))
            }
            let run = FrameRun.join(try parts.map { try BatchEncoder().encode($0) })
            let newAnswer = try await collector.post(
                ProtocolPath.batches, body: run, token: tokens["gateway-2"], contentType: FrameRun.mediaType,
                headers: [(ProtocolHeader.sentAt, String(Self.sentAt))])
            #expect(newAnswer.status == 200, "\(newAnswer.text)")
            let ack = try JSONDecoder().decode(BatchAcknowledgement.self, from: Data(newAnswer.body))
            #expect(ack.accepted == 3000 && ack.acknowledged == [SequenceRange(1, 3000)])

            let rows = try Fixtures.storedReadings(databasePath: collector.databasePath)
            func strip(_ device: String) -> [StoredReading] {
                rows.filter { $0.device == device }.map { row in
                    var row = row
                    row.device = ""
                    return row
                }
            }
            #expect(strip("gateway-1").count == 3000)
            #expect(strip("gateway-1") == strip("gateway-2"))
            let streams = try await SQLiteReadingQueries(databasePath: collector.databasePath).streams()
            let skews = Dictionary(uniqueKeysWithValues: streams.map { ($0.device, $0.skewNanoseconds) })
            #expect(skews["gateway-1"] == 3e9 && skews["gateway-2"] == 3e9, "\(skews)")
        }
    }

    /// An agent of the previous release: one version 2 frame, the frame media type, no header.
    /// Its clock still counts; a header, when sent, wins over the frame's field.
    @Test func anOldAgentKeepsWorkingAndTheHeaderWinsOverTheFrame() async throws {
        try await RunningCollector.with(now: { Self.receivedAt }) { collector, tokens in
            var batch = Fixtures.batch(first: 1, count: 500)
            batch.sentAt = Self.sentAt
            let frame = try BatchEncoder(options: EncodingOptions(version: .v2)).encode(batch)
            let answer = try await collector.post(ProtocolPath.batches, body: frame, token: tokens["gateway-1"])
            #expect(answer.status == 200)
            #expect(try Fixtures.storedReadings(databasePath: collector.databasePath) == Fixtures.expected([batch]))
            let streams = try await SQLiteReadingQueries(databasePath: collector.databasePath).streams()
            #expect(streams.first?.skewNanoseconds == 3e9)

            var later = Fixtures.batch(first: 501, count: 10)
            later.sentAt = 1  // a wrong clock in the frame, the right one in the header
            let laterFrame = try BatchEncoder(options: EncodingOptions(version: .v2)).encode(later)
            let withHeader = try await collector.post(
                ProtocolPath.batches, body: laterFrame, token: tokens["gateway-1"],
                headers: [(ProtocolHeader.sentAt, String(Self.receivedAt - 3_000_000_000))])
            #expect(withHeader.status == 200)
            let after = try await SQLiteReadingQueries(databasePath: collector.databasePath).streams()
            let skew = try #require(after.first?.skewNanoseconds)
            #expect(abs(skew - 3e9) < 1e6, "the header's clock was used: \(skew)")
        }
    }

    @Test func aBadClockHeaderAndHostileRunsAreRefused() async throws {
        try await RunningCollector.with { collector, tokens in
            let token = tokens["gateway-1"]
            let frame = try BatchEncoder().encode(Fixtures.batch(first: 1, count: 10))
            for bad in ["", "soon", "1.5e18", "99999999999999999999", String(repeating: "1", count: 40)] {
                let answer = try await collector.post(
                    ProtocolPath.batches, body: frame, token: token, contentType: FrameRun.mediaType,
                    headers: [(ProtocolHeader.sentAt, bad)])
                #expect(answer.status == 400, "\(bad.debugDescription): \(answer.text)")
            }
            let other = try BatchEncoder().encode(Fixtures.batch(stream: 9, first: 11, count: 10))
            let gap = try BatchEncoder().encode(Fixtures.batch(first: 12, count: 10))
            let wrongDevice = try BatchEncoder().encode(Fixtures.batch(device: "gateway-2", first: 1, count: 10))
            let cases: [(String, [UInt8], Int)] = [
                ("another stream", frame + other, 400),
                ("a gap", frame + gap, 400),
                ("truncated", Array((frame + gap).dropLast(1)), 400),
                ("another device's frames", wrongDevice, 403),
            ]
            for (name, body, status) in cases {
                let answer = try await collector.post(
                    ProtocolPath.batches, body: body, token: token, contentType: FrameRun.mediaType)
                #expect(answer.status == status, "\(name): \(answer.text)")
            }
            #expect(try Fixtures.readingCount(databasePath: collector.databasePath) == 0)
        }
    }

    /// What an agent meets at a collector older than frame runs: 415, whatever the body.
    @Test func aCollectorWithoutFrameRunsAnswers415() async throws {
        try await RunningCollector.with(configure: { $0.ingest.acceptsFrameRuns = false }) { collector, tokens in
            let frame = try BatchEncoder().encode(Fixtures.batch(first: 1, count: 10))
            let run = try await collector.post(
                ProtocolPath.batches, body: frame, token: tokens["gateway-1"], contentType: FrameRun.mediaType)
            #expect(run.status == 415)
            let single = try await collector.post(ProtocolPath.batches, body: frame, token: tokens["gateway-1"])
            #expect(single.status == 200)
        }
    }
}
