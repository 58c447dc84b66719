import CloudCollector
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

/// The collector over real loopback sockets, in-process: status codes, JSON bodies, and that a
/// refused request stores nothing.
struct IngestHTTPTests {
    let encoder = BatchEncoder()

    @Test func acknowledgesAfterCommitAndCountsDuplicates() async throws {
        try await RunningCollector.with { collector, tokens in
            let batch = Fixtures.batch(first: 1, count: 1000)
            let frame = try encoder.encode(batch)
            let first = try await collector.post(ProtocolPath.batches, body: frame, token: tokens["gateway-1"])
            #expect(first.status == 200)
            #expect(first.header("content-type") == "application/json")
            let ack = try JSONDecoder().decode(BatchAcknowledgement.self, from: Data(first.body))
            #expect(
                ack
                    == BatchAcknowledgement(
                        device: "gateway-1", stream: batch.stream, accepted: 1000, duplicates: 0,
                        acknowledged: [SequenceRange(1, 1000)]))
            #expect(first.text.contains("\"stream\":\"\(batch.stream)\""))

            let overlapping = try encoder.encode(Fixtures.batch(first: 501, count: 1000))
            let second = try await collector.post(ProtocolPath.batches, body: overlapping, token: tokens["gateway-1"])
            let secondAck = try JSONDecoder().decode(BatchAcknowledgement.self, from: Data(second.body))
            #expect(secondAck.accepted == 500 && secondAck.duplicates == 500)
            #expect(secondAck.acknowledged == [SequenceRange(501, 1500)])

            let again = try await collector.post(ProtocolPath.batches, body: frame, token: tokens["gateway-1"])
            let againAck = try JSONDecoder().decode(BatchAcknowledgement.self, from: Data(again.body))
            #expect(againAck.accepted == 0 && againAck.duplicates == 1000)
            #expect(
                try Fixtures.storedReadings(databasePath: collector.databasePath)
                    == Fixtures.expected([batch, Fixtures.batch(first: 501, count: 1000)]))
        }
    }

    /// Eight gateways' worth of connections race overlapping batches of one stream (and repeats)
    /// through the group-committing writer: every reading stored once, every ack consistent.
    @Test func concurrentOverlappingBatchesAreStoredExactlyOnce() async throws {
        try await RunningCollector.with { collector, tokens in
            let batches = (0..<64).map { Fixtures.batch(first: UInt64($0 * 300 + 1), count: 700) }  // overlap 400
            let frames = try batches.map { try encoder.encode($0) }
            let token = tokens["gateway-1"] ?? ""
            let acks = try await withThrowingTaskGroup(of: [BatchAcknowledgement].self) { group in
                for lane in 0..<8 {
                    let mine = stride(from: lane, to: frames.count, by: 8).map { frames[$0] } + [frames[lane]]
                    group.addTask { [port = collector.port] in
                        try await onDedicatedThread {
                            let client = BlockingHTTPClient(port: port)
                            return try mine.map { frame in
                                let response = try client.post(
                                    ProtocolPath.batches, body: frame, headers: [("Authorization", "Bearer \(token)")])
                                return try JSONDecoder().decode(BatchAcknowledgement.self, from: Data(response.body))
                            }
                        }
                    }
                }
                var all: [BatchAcknowledgement] = []
                for try await part in group { all += part }
                return all
            }
            #expect(acks.count == 72)
            #expect(acks.allSatisfy { $0.accepted + $0.duplicates == 700 })
            let total = 63 * 300 + 700
            #expect(acks.reduce(0) { $0 + $1.accepted } == total)
            #expect(try Fixtures.storedReadings(databasePath: collector.databasePath) == Fixtures.expected(batches))
        }
    }

    @Test func authenticationFailures() async throws {
        try await RunningCollector.with { collector, tokens in
            let frame = try encoder.encode(Fixtures.batch(device: "gateway-1", first: 1, count: 10))
            let missing = try await collector.post(ProtocolPath.batches, body: frame, token: nil)
            let wrong = try await collector.post(
                ProtocolPath.batches, body: frame, token: "est_" + String(repeating: "0", count: 64))
            let otherDevice = try await collector.post(ProtocolPath.batches, body: frame, token: tokens["gateway-2"])
            let basic = try await onDedicatedThread { [port = collector.port] in
                try BlockingHTTPClient(port: port).post(
                    ProtocolPath.batches, body: frame, headers: [("Authorization", "Basic Z2F0ZXdheS0xOng=")])
            }
            #expect(missing.status == 401)
            #expect(wrong.status == 401)
            #expect(basic.status == 401)
            #expect(otherDevice.status == 403)
            let error = try JSONDecoder().decode(ErrorBody.self, from: Data(otherDevice.body))
            #expect(error.error == "wrong_device")

            // Revoking takes effect at once, also while the collector runs.
            let database = try SQLiteDatabase(path: collector.databasePath)
            #expect(try TokenStore.revoke(device: "gateway-1", in: database))
            let revoked = try await collector.post(ProtocolPath.batches, body: frame, token: tokens["gateway-1"])
            #expect(revoked.status == 401)
            #expect(try Fixtures.readingCount(databasePath: collector.databasePath) == 0)
        }
    }

    /// Each hostile body gets its status and leaves nothing in storage.
    @Test func hostileBodiesAreRefusedAndStoreNothing() async throws {
        try await RunningCollector.with { collector, tokens in
            let valid = try encoder.encode(Fixtures.batch(first: 1, count: 2000))
            var corrupted = valid
            corrupted[corrupted.count / 2] ^= 0x40
            var futureVersion = valid
            futureVersion[4] = 99
            // A header declaring a 4 GiB payload: refused from the first 14 bytes.
            let declaredBomb =
                Array(Fixtures.frame(payload: [1, 2, 3]).prefix(14)).enumerated().map { index, byte in
                    (10...13).contains(index) ? 0xFF : byte
                } + [UInt8](repeating: 0, count: 64)
            // 50 MiB of zeros deflate to about 50 KiB: refused by the declared size...
            let zeros = [UInt8](repeating: 0, count: 50 << 20)
            let inflatesHuge = Fixtures.frame(payload: zeros, storedPayload: Fixtures.deflate(zeros), deflated: true)
            // ...and when it lies about its size, inflating stops at the declared 4 KiB.
            var lyingHeader = inflatesHuge
            lyingHeader.replaceSubrange(10..<14, with: Fixtures.littleEndian(4096))
            lyingHeader = Fixtures.resealed(lyingHeader)
            // A valid frame whose payload declares 2^40 readings (payload fields as in wire-format.md).
            var payload = Fixtures.varint(9) + Array("gateway-1".utf8)
            payload += [UInt8](repeating: 1, count: 8)  // stream
            payload += Fixtures.varint(1) + Fixtures.varint(0)  // first sequence, sent at
            payload += Fixtures.varint(1 << 40) + Fixtures.varint(1) + Fixtures.varint(1) + Array("x".utf8)
            let hugeCount = Fixtures.frame(payload: payload)
            // A well-formed frame whose series key holds U+0000 (PostgreSQL text cannot store it).
            let nulKey = try encoder.encode(
                Batch(
                    device: "gateway-1", stream: 1, firstSequence: 1, seriesKeys: ["temp\u{0}erature"],
                    readings: [Reading(series: 0, timestamp: 1, value: 1)]))

            let cases: [(String, [UInt8], Int)] = [
                ("truncated", Array(valid.prefix(valid.count - 9)), 400),
                ("truncated header", Array(valid.prefix(9)), 400),
                ("empty", [], 400),
                ("corrupted", corrupted, 400),
                ("trailing bytes", valid + [0], 400),
                ("bad magic", Array("GET / HTTP/1.1".utf8) + valid, 400),
                ("future version", futureVersion, 415),
                ("declared 4 GiB payload", declaredBomb, 413),
                ("deflate bomb", inflatesHuge, 413),
                ("deflate bomb with a small declared size", lyingHeader, 400),
                ("huge declared reading count", hugeCount, 413),
                ("series key with U+0000", nulKey, 400),
            ]
            for (name, body, status) in cases {
                let response = try await collector.post(ProtocolPath.batches, body: body, token: tokens["gateway-1"])
                #expect(response.status == status, "\(name): \(response.text)")
                let error = try? JSONDecoder().decode(ErrorBody.self, from: Data(response.body))
                #expect(error != nil, "\(name) answers with an ErrorBody")
            }
            let wrongType = try await collector.post(
                ProtocolPath.batches, body: valid, token: tokens["gateway-1"], contentType: "application/json")
            #expect(wrongType.status == 415)
            #expect(try Fixtures.readingCount(databasePath: collector.databasePath) == 0)
            // The collector still works after all that.
            let ok = try await collector.post(ProtocolPath.batches, body: valid, token: tokens["gateway-1"])
            #expect(ok.status == 200)
        }
    }

    /// About 1 MiB on the wire that inflates to 1 GiB: refused from its declared size, and
    /// when the header lies (declares 4 KiB), inflating stops at 4 KiB.
    @Test func gigabyteDecompressionBomb() async throws {
        let inflated = 1 << 30
        let deflated = Fixtures.deflatedZeros(count: inflated)
        #expect(deflated.count < 8 << 20)
        var frame = Array("ESYB".utf8) + [FrameHeader.currentVersion, 1]
        frame += Fixtures.littleEndian(UInt32(deflated.count)) + Fixtures.littleEndian(UInt32(inflated))
        frame += deflated + [0, 0, 0, 0]
        let honest = Fixtures.resealed(frame)
        var lying = honest
        lying.replaceSubrange(10..<14, with: Fixtures.littleEndian(4096))
        lying = Fixtures.resealed(lying)
        try await RunningCollector.with { collector, tokens in
            let refused = try await collector.post(ProtocolPath.batches, body: honest, token: tokens["gateway-1"])
            #expect(refused.status == 413)
            let lied = try await collector.post(ProtocolPath.batches, body: lying, token: tokens["gateway-1"])
            #expect(lied.status == 400)
            #expect(try Fixtures.readingCount(databasePath: collector.databasePath) == 0)
        }
    }

    @Test func bodyOverTheFrameLimitIs413() async throws {
        try await RunningCollector.with(configure: { $0.ingest.limits.maximumFrameBytes = 4096 }) { collector, tokens in
            var random = SeededRandom(seed: 5)
            var batch = Fixtures.batch(first: 1, count: 5000)
            for index in batch.readings.indices {
                batch.readings[index].value = Double(bitPattern: random.next())  // incompressible
            }
            let frame = try encoder.encode(batch)
            #expect(frame.count > 4096)
            let response = try await collector.post(ProtocolPath.batches, body: frame, token: tokens["gateway-1"])
            #expect(response.status == 413)
            #expect(try Fixtures.readingCount(databasePath: collector.databasePath) == 0)
        }
    }

    @Test func saturatedIngestAnswers503WithRetryAfter() async throws {
        try await RunningCollector.with(configure: { $0.ingest.maximumConcurrentRequests = 0 }) { collector, tokens in
            let frame = try encoder.encode(Fixtures.batch(first: 1, count: 10))
            let response = try await collector.post(ProtocolPath.batches, body: frame, token: tokens["gateway-1"])
            #expect(response.status == 503)
            #expect(response.header("retry-after") == "1")
            #expect(try JSONDecoder().decode(ErrorBody.self, from: Data(response.body)).error == "busy")
            #expect(try Fixtures.readingCount(databasePath: collector.databasePath) == 0)
        }
    }

    @Test func droppedRangesAndOtherRoutes() async throws {
        try await RunningCollector.with { collector, tokens in
            let report = DroppedRangesReport(device: "gateway-1", stream: 42, dropped: [SequenceRange(1, 99)])
            let body = Array(try JSONEncoder().encode(report))
            let ok = try await collector.post(
                ProtocolPath.droppedRanges, body: body, token: tokens["gateway-1"], contentType: "application/json")
            #expect(ok.status == 200)
            let forbidden = try await collector.post(
                ProtocolPath.droppedRanges, body: body, token: tokens["gateway-2"], contentType: "application/json")
            #expect(forbidden.status == 403)
            let malformed = try await collector.post(
                ProtocolPath.droppedRanges, body: Array("[1,".utf8), token: tokens["gateway-1"],
                contentType: "application/json")
            #expect(malformed.status == 400)

            let (health, missing, wrongMethod) = try await onDedicatedThread { [port = collector.port] in
                let client = BlockingHTTPClient(port: port)
                return (
                    try client.send(method: "GET", path: "/healthz"),
                    try client.send(method: "GET", path: "/nope"),
                    try client.send(method: "GET", path: ProtocolPath.batches)
                )
            }
            #expect(health.status == 200)
            #expect(missing.status == 404)
            #expect(wrongMethod.status == 405 && wrongMethod.header("allow") == "POST")
        }
    }
}
