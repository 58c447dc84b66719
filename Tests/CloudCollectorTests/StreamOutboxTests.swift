import CloudCollector
import EdgeSyncCodec
import EdgeSyncPostgres
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import NATSJetStream
import Synchronization
import Testing

@testable import CloudCollector

/// Stream messages: subjects that cannot be confused, ids that depend only on what a message
/// holds, line protocol that reads back to the exact values, payloads under their bound.
@Suite struct StreamMessagesTests {
    @Test func keysSplitIntoMeasurementAndLinePrefix() {
        #expect(StreamMessages.split("weather,site=a temp").measurement == "weather")
        #expect(String(decoding: StreamMessages.split("weather,site=a temp").prefix, as: UTF8.self) == "weather,site=a temp=")
        #expect(StreamMessages.split("cpu usage").measurement == "cpu")
        #expect(StreamMessages.split(#"we\,ird\ name,t=1 f"#).measurement == #"we\,ird\ name"#)
        #expect(StreamMessages.split("temperature,site=a").measurement == "temperature")
        #expect(String(decoding: StreamMessages.split("temperature,site=a").prefix, as: UTF8.self) == "temperature,site=a value=")
        #expect(StreamMessages.split("bare").measurement == "bare")
    }

    @Test func subjectTokensKeepDistinctNamesDistinct() {
        #expect(StreamMessages.subjectToken("gw-1") == "gw-1")
        #expect(StreamMessages.subjectToken("a.b") == "a~2Eb")
        #expect(StreamMessages.subjectToken("a~2Eb") == "a~7E2Eb")
        #expect(StreamMessages.subjectToken("x y*>\t") == "x~20y~2A~3E~09")
        #expect(StreamMessages.subjectToken("") == "~")
        #expect(StreamMessages.subjectToken("température") == "température")
        // Every token is a valid subject token.
        for name in ["a.b", "x y*>\t", "", "température", "\u{7f}", "a>b"] {
            #expect((try? NATSCommand.checkSubject("p." + StreamMessages.subjectToken(name), wildcards: false)) != nil)
        }
    }

    @Test func valuesReadBackExactly() {
        let values: [Double] = [21.5, -0.0, 1e-300, 0.1 + 0.2, .greatestFiniteMagnitude, .leastNonzeroMagnitude, 1234567.0]
        for value in values {
            var line: [UInt8] = []
            StreamMessages.appendValue(value, to: &line)
            #expect(Double(String(decoding: line, as: UTF8.self))?.bitPattern == value.bitPattern)
        }
        for (value, text) in [(Double.nan, "NaN"), (.infinity, "+Inf"), (-.infinity, "-Inf")] {
            var line: [UInt8] = []
            StreamMessages.appendValue(value, to: &line)
            #expect(String(decoding: line, as: UTF8.self) == text)
        }
    }

    @Test func oneMessagePerMeasurementWithIdsFromContent() {
        let batch = Batch(
            device: "gw.1", stream: 7, firstSequence: 10,
            seriesKeys: ["weather,site=a temp", "weather,site=a hum", "power load"],
            readings: [
                Reading(series: 0, timestamp: 100, value: 21.5), Reading(series: 2, timestamp: 100, value: 3),
                Reading(series: 1, timestamp: 100, value: 40), Reading(series: 0, timestamp: 200, value: 22),
            ])
        let messages = StreamMessages().messages(for: batch, range: SequenceRange(10, 13))
        #expect(messages.map(\.subject) == ["edgesync.gw~2E1.weather", "edgesync.gw~2E1.power"])
        #expect(messages.map(\.messageID) == ["gw.1/7/10-13/weather", "gw.1/7/10-13/power"])
        #expect(messages.map(\.readings) == [3, 1])
        #expect(
            String(decoding: messages[0].payload, as: UTF8.self)
                == "weather,site=a temp=21.5 100\nweather,site=a hum=40.0 100\nweather,site=a temp=22.0 200\n")
        // Only the range asked for, and the same ids for the same content.
        let part = StreamMessages().messages(for: batch, range: SequenceRange(11, 12))
        #expect(part.map(\.messageID) == ["gw.1/7/11-12/weather", "gw.1/7/11-12/power"])
        #expect(StreamMessages().messages(for: batch, range: SequenceRange(10, 13)) == messages)
    }

    @Test func largePayloadsAreSplitIntoNumberedParts() {
        let batch = Fixtures.batch(first: 1, count: 3000)
        let messages = StreamMessages(maximumPayloadBytes: 4096).messages(for: batch, range: SequenceRange(1, 3000))
        #expect(messages.allSatisfy { $0.payload.count <= 4096 })
        #expect(messages.reduce(0) { $0 + $1.readings } == 3000)
        #expect(Set(messages.map(\.messageID)).count == messages.count)
        #expect(messages.contains { $0.messageID.hasSuffix("/temperature#1") })
        let lines = messages.flatMap { String(decoding: $0.payload, as: UTF8.self).split(separator: "\n") }
        #expect(lines.count == 3000)
    }
}

/// The outbox inside the ingest transaction: a message for every newly stored reading, none for
/// a duplicate, none left behind by a transaction that failed, and 503 past its bound.
@Suite struct StreamOutboxStoreTests {
    private func withStore<T>(maximumBytes: Int64 = 1 << 30, _ body: (SQLiteReadingStore, String, StreamOutboxGauge) throws -> T) throws -> T {
        try withTemporaryDirectory(prefix: "collector-outbox") { directory in
            let path = (directory as NSString).appendingPathComponent("collector.sqlite")
            let gauge = StreamOutboxGauge()
            var configuration = SQLiteReadingStore.Configuration()
            configuration.streamOutbox = StreamOutboxSettings(maximumBytes: maximumBytes, gauge: gauge)
            return try body(try SQLiteReadingStore(path: path, configuration: configuration), path, gauge)
        }
    }

    @Test func newReadingsGetMessagesAndDuplicatesNone() throws {
        try withStore { store, path, gauge in
            _ = try store.store([Fixtures.batch(first: 1, count: 300)], receivedAt: 5)
            _ = try store.store([Fixtures.batch(first: 1, count: 300)], receivedAt: 6)  // a retry
            _ = try store.store([Fixtures.batch(first: 201, count: 200)], receivedAt: 7)  // 100 new
            let reader = try SQLiteStreamOutbox.Reader(path: path)
            let entries = try reader.pending(limit: 100)
            // One row per newly stored range, each a frame that becomes one message per measurement.
            #expect(entries.count == 2)
            #expect(entries.reduce(0) { $0 + $1.readings } == 400)
            let ids = entries.flatMap(\.messages).map(\.messageID)
            #expect(ids.filter { $0.contains("/1-300/") }.count == 3)
            #expect(ids.filter { $0.contains("/301-400/") }.count == 3)
            #expect(entries.map(\.createdAt) == [5, 7])
            #expect(try reader.size().messages == 2)
            #expect(gauge.messages == 2)
            #expect(gauge.bytes == entries.reduce(0) { $0 + $1.storedBytes })
            // The messages are those the readings themselves give (the first layout wrote them at ingest).
            let direct =
                StreamMessages().messages(for: Fixtures.batch(first: 1, count: 300), range: SequenceRange(1, 300))
                + StreamMessages().messages(for: Fixtures.batch(first: 201, count: 200), range: SequenceRange(301, 400))
            #expect(Set(entries.flatMap(\.messages).map(\.messageID)) == Set(direct.map(\.messageID)))
            #expect(
                entries.flatMap(\.messages).sorted { $0.messageID < $1.messageID }
                    == direct.sorted { $0.messageID < $1.messageID })
            // A frame is a few bytes a reading; line protocol was about 48.
            #expect(gauge.bytes < 400 * 16)
        }
    }

    @Test func aFailedTransactionLeavesNoMessage() throws {
        try withStore { store, path, gauge in
            let bad = Batch(
                device: "gateway-1", stream: 1, firstSequence: UInt64(Int64.max), seriesKeys: ["a v"],
                readings: [Reading(series: 0, timestamp: 1, value: 1), Reading(series: 0, timestamp: 2, value: 2)])
            #expect(throws: (any Error).self) {
                _ = try store.store([Fixtures.batch(device: "gateway-1", stream: 1, first: 1, count: 50), bad], receivedAt: 1)
            }
            let size = try SQLiteStreamOutbox.Reader(path: path).size()
            #expect(size.messages == 0)
            #expect(gauge.messages == 0)
        }
    }

    @Test func pastItsBoundTheOutboxRefusesIngestWithRetryAfter() throws {
        try withStore(maximumBytes: 64) { store, path, gauge in
            _ = try store.store([Fixtures.batch(first: 1, count: 100)], receivedAt: 1)
            #expect(gauge.bytes >= 64)
            #expect {
                _ = try store.store([Fixtures.batch(first: 101, count: 10)], receivedAt: 2)
            } throws: { error in
                let refusal = error as? CollectorError
                return refusal?.code == "stream_backlog" && refusal?.response.headers["retry-after"] == "30"
            }
            // Nothing of the refused batch was stored: the edge still has it and sends it again.
            #expect(try store.receivedRanges(of: StreamKey(device: "gateway-1", stream: 0xFEED_0000_0000_0001)).ranges == [SequenceRange(1, 100)])
            let reader = try SQLiteStreamOutbox.Reader(path: path)
            _ = try reader.drain(limit: 10, readings: .max) { entries in entries.map(\.id) }
            gauge.reset(messages: 0, bytes: 0)
            _ = try store.store([Fixtures.batch(first: 101, count: 10)], receivedAt: 3)
        }
    }
}

extension StreamOutboxStoreTests {
    /// Rows as the first release with a stream wrote them: one line-protocol message per row in
    /// `stream_outbox`, made at ingest.
    static func writeFirstLayout(_ batch: Batch, range: SequenceRange, createdAt: Int64, path: String) throws {
        let database = try SQLiteDatabase(path: path)
        let insert = try database.statement(
            "INSERT INTO stream_outbox (created_at, subject, message_id, readings, payload) VALUES (?1, ?2, ?3, ?4, ?5)")
        for message in StreamMessages().messages(for: batch, range: range) {
            try insert.bind(createdAt, at: 1)
            try insert.bind(message.subject, at: 2)
            try insert.bind(message.messageID, at: 3)
            try insert.bind(Int64(message.readings), at: 4)
            try insert.bind(bytes: message.payload, at: 5)
            try insert.run()
        }
    }

    @Test func rowsOfTheFirstLayoutAreReadBeforeFramesAndCounted() throws {
        try withStore { store, path, gauge in
            // An outbox left by the previous release (its collector stopped with messages waiting),
            // then this release stores more.
            let old = Fixtures.batch(first: 1, count: 300)
            _ = try store.store([old], receivedAt: 1)
            let database = try SQLiteDatabase(path: path)
            try database.execute("DELETE FROM stream_outbox_frames")
            try Self.writeFirstLayout(old, range: SequenceRange(1, 300), createdAt: 1, path: path)
            _ = try store.store([Fixtures.batch(first: 301, count: 100)], receivedAt: 2)

            let reader = try SQLiteStreamOutbox.Reader(path: path)
            #expect(try reader.size().messages == 4)  // three line-protocol rows and one frame
            let first = try reader.drain(limit: 10, readings: .max) { entries in entries.map(\.id) }
            #expect(first.map(\.createdAt) == [1, 1, 1])
            #expect(first.flatMap(\.messages) == StreamMessages().messages(for: old, range: SequenceRange(1, 300)))
            #expect(first.allSatisfy { $0.storedBytes == Int64($0.messages[0].payload.count) })
            let second = try reader.drain(limit: 10, readings: .max) { entries in entries.map(\.id) }
            #expect(second.map(\.createdAt) == [2])
            #expect(second.flatMap(\.messages).map(\.messageID).allSatisfy { $0.contains("/301-400/") })
            #expect(try reader.size().messages == 0)
            _ = gauge
        }
    }

    @Test func aDamagedFrameIsReportedAndDoesNotStopTheOthers() throws {
        try withStore { store, path, _ in
            _ = try store.store([Fixtures.batch(first: 1, count: 10)], receivedAt: 1)
            let database = try SQLiteDatabase(path: path)
            try database.execute("UPDATE stream_outbox_frames SET frame = x'45534201ffff'")
            _ = try store.store([Fixtures.batch(first: 11, count: 10)], receivedAt: 2)
            let entries = try SQLiteStreamOutbox.Reader(path: path).pending(limit: 10)
            #expect(entries.count == 2)
            #expect(entries[0].messages.isEmpty && entries[0].damage?.contains("does not decode") == true)
            #expect(entries[1].damage == nil && entries[1].readings == 10)
        }
    }

    @Test func aRunStopsAtItsReadingBoundButTakesAtLeastOneRow() throws {
        try withStore { store, path, _ in
            for first in stride(from: 1, through: 901, by: 100) {
                _ = try store.store([Fixtures.batch(first: UInt64(first), count: 100)], receivedAt: 1)
            }
            let reader = try SQLiteStreamOutbox.Reader(path: path)
            #expect(try reader.drain(limit: 100, readings: 250) { _ in [] }.count == 2)
            #expect(try reader.drain(limit: 100, readings: 1) { _ in [] }.count == 1)
            #expect(try reader.drain(limit: 3, readings: .max) { _ in [] }.count == 3)
        }
    }

    @Test func rangesOfABatchAreFramedAsTheyWereStored() throws {
        try withStore { store, path, _ in
            // 1...50 first, then 1...100 of which 51...100 are new.
            _ = try store.store([Fixtures.batch(first: 1, count: 50)], receivedAt: 1)
            _ = try store.store([Fixtures.batch(first: 1, count: 100)], receivedAt: 2)
            let entries = try SQLiteStreamOutbox.Reader(path: path).pending(limit: 10)
            #expect(entries.map(\.readings) == [50, 50])
            #expect(
                entries[1].messages
                    == StreamMessages().messages(for: Fixtures.batch(first: 1, count: 100), range: SequenceRange(51, 100)))
        }
    }
}

/// The relay against a real `nats-server -js`: every newly stored reading reaches the stream
/// exactly once, across a server outage and across a collector that stopped between its commit
/// and the publish.
@Suite(.timeLimit(.minutes(3))) struct StreamRelayTests {
    /// Reads every message of the stream with a plain NATS client (a consumer, as a user's would).
    private func streamContents(port: Int) throws -> (readings: [String], messageIDs: [String]) {
        let client = try JetStreamClient(.init(host: "127.0.0.1", port: port, options: .init(name: "reader", version: "0")))
        let messages = try client.storedMessages(stream: "EDGESYNC")
        return (
            messages.flatMap { String(decoding: $0.payload, as: UTF8.self).split(separator: "\n").map(String.init) },
            messages.compactMap(\.messageID)
        )
    }

    private func relay(
        path: String, port: Int, gauge: StreamOutboxGauge, messages: StreamMessages = StreamMessages()
    ) -> StreamRelay {
        var configuration = StreamRelay.Configuration()
        configuration.idleWait = .milliseconds(50)
        configuration.maximumBackoff = .milliseconds(400)
        let publisher = JetStreamPublisher.Configuration(
            client: .init(host: "127.0.0.1", port: port, options: .init(name: "relay", version: "0")),
            stream: .init(name: "EDGESYNC", subjects: ["edgesync.>"]))
        return StreamRelay(
            configuration: configuration, gauge: gauge,
            reader: { try SQLiteStreamOutbox.Reader(path: path, messages: messages) },
            publisher: { JetStreamPublisher(publisher) })
    }

    /// Waits, with a deadline, until the relay has emptied the outbox.
    private func drained(_ gauge: StreamOutboxGauge, _ relay: StreamRelay, path: String) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if try SQLiteStreamOutbox.Reader(path: path).size().messages == 0 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("the outbox did not drain: \(relay.counters)")
    }

    /// A real server and a store writing the outbox, in a temporary directory; skipped (with a
    /// line saying so) where nats-server is not installed.
    private func withServerAndStore(
        _ body: (NATSTestServer, String, StreamOutboxGauge, SQLiteReadingStore) async throws -> Void
    ) async throws {
        guard NATSTestServer.executable != nil else {
            print("skipped: nats-server is not installed")
            return
        }
        try await withTemporaryDirectory(prefix: "stream-relay") { directory in
            let server = try await NATSTestServer.start(in: directory)
            defer { Task { await server.stop() } }
            let path = directory + "/collector.sqlite"
            let gauge = StreamOutboxGauge()
            var configuration = SQLiteReadingStore.Configuration()
            configuration.streamOutbox = StreamOutboxSettings(gauge: gauge)
            try await body(server, path, gauge, try SQLiteReadingStore(path: path, configuration: configuration))
        }
    }

    @Test func everyStoredReadingReachesTheStreamOnceAcrossAnOutageAndARestart() async throws {
        try await withServerAndStore { server, path, gauge, store in
            var batches: [Batch] = []

            // 1. Stored while the relay runs.
            // Small payloads: the frames split into numbered parts.
            let small = StreamMessages(maximumPayloadBytes: 2048)
            var relay = relay(path: path, port: server.port, gauge: gauge, messages: small)
            relay.start()
            for first in stride(from: 1, through: 2001, by: 500) {
                let batch = Fixtures.batch(first: UInt64(first), count: 500)
                batches.append(batch)
                _ = try store.store([batch, batch], receivedAt: 1)  // a duplicate in the same group
            }
            try await drained(gauge, relay, path: path)

            // 2. The server goes away: ingest goes on, the outbox holds the messages.
            await server.kill()
            for first in stride(from: 2501, through: 3501, by: 500) {
                let batch = Fixtures.batch(first: UInt64(first), count: 500)
                batches.append(batch)
                _ = try store.store([batch], receivedAt: 2)
            }
            #expect(try SQLiteStreamOutbox.Reader(path: path).size().messages > 0)

            // 3. The collector stops before it could publish them (the relay ends), the server
            //    comes back, a new relay (a restarted collector) publishes what waited.
            relay.stop()
            try await server.restart()
            relay = self.relay(path: path, port: server.port, gauge: gauge, messages: small)
            relay.start()
            try await drained(gauge, relay, path: path)
            relay.stop()

            let contents = try streamContents(port: server.port)
            let expected = Fixtures.expected(batches).map { reading in
                var line: [UInt8] = Array(reading.seriesKey.utf8) + Array(" value=".utf8)
                StreamMessages.appendValue(Double(bitPattern: reading.valueBits), to: &line)
                return String(decoding: line, as: UTF8.self) + " \(reading.timestamp)"
            }
            #expect(contents.readings.count == 4000)
            #expect(contents.readings.sorted() == expected.sorted())
            #expect(Set(contents.messageIDs).count == contents.messageIDs.count)
        }
    }

    @Test func aPublishWhoseAcknowledgementWasLostIsADuplicateNotASecondMessage() async throws {
        try await withServerAndStore { server, path, gauge, store in
            _ = try store.store([Fixtures.batch(first: 1, count: 300)], receivedAt: 1)
            // A relay that published and died before deleting: the stream has the messages, the
            // outbox still lists them.
            let waiting = try SQLiteStreamOutbox.Reader(path: path).pending(limit: 100)
            let publisher = JetStreamPublisher(
                .init(
                    client: .init(host: "127.0.0.1", port: server.port, options: .init(name: "first", version: "0")),
                    stream: .init(name: "EDGESYNC", subjects: ["edgesync.>"])))
            #expect(try publisher.publish(waiting.flatMap(\.messages)).allSatisfy { $0 == .stored })

            let relay = relay(path: path, port: server.port, gauge: gauge)
            relay.start()
            try await drained(gauge, relay, path: path)
            relay.stop()
            #expect(relay.counters.duplicates == Int64(waiting.flatMap(\.messages).count))
            #expect(relay.counters.published == 0)
            #expect(try streamContents(port: server.port).readings.count == 300)
        }
    }

    @Test func rowsLeftByThePreviousReleaseArePublishedOnceBesideNewFrames() async throws {
        try await withServerAndStore { server, path, gauge, store in
            let old = Fixtures.batch(first: 1, count: 300)
            _ = try store.store([old], receivedAt: 1)
            try SQLiteDatabase(path: path).execute("DELETE FROM stream_outbox_frames")
            try StreamOutboxStoreTests.writeFirstLayout(old, range: SequenceRange(1, 300), createdAt: 1, path: path)
            // The previous release's relay published one of them and died before deleting it.
            let first = try #require(StreamMessages().messages(for: old, range: SequenceRange(1, 300)).first)
            let publisher = JetStreamPublisher(
                .init(
                    client: .init(host: "127.0.0.1", port: server.port, options: .init(name: "old", version: "0")),
                    stream: .init(name: "EDGESYNC", subjects: ["edgesync.>"])))
            #expect(try publisher.publish([first]) == [.stored])
            let new = Fixtures.batch(first: 301, count: 300)
            _ = try store.store([new], receivedAt: 2)

            let relay = relay(path: path, port: server.port, gauge: gauge)
            relay.start()
            try await drained(gauge, relay, path: path)
            relay.stop()
            #expect(relay.counters.duplicates == 1)
            let contents = try streamContents(port: server.port)
            #expect(contents.readings.count == 600)
            #expect(Set(contents.readings).count == 600)
            #expect(Set(contents.messageIDs).count == contents.messageIDs.count)
        }
    }
}

/// The outbox on PostgreSQL with two collectors on one database, each with its own relay: every
/// newly stored reading reaches the stream once, and the relays never hand one message over twice
/// (`FOR UPDATE SKIP LOCKED`).
@Suite(.serialized, .timeLimit(.minutes(3))) struct PostgresStreamOutboxTests {
    @Test func rowsOfTheFirstLayoutAreReadBeforeFrames() async throws {
        try await withPostgresDatabase { url in
            let session = PostgresSession.Configuration(url: url)
            var configuration = PostgresReadingStore.Configuration()
            configuration.streamOutbox = StreamOutboxSettings(gauge: StreamOutboxGauge())
            let store = try PostgresReadingStore(session: session, configuration: configuration)
            let old = Fixtures.batch(first: 1, count: 300)
            let oldMessages = StreamMessages().messages(for: old, range: SequenceRange(1, 300))
            // Stored by the previous release, which wrote line protocol as text, one row per message.
            _ = try store.store([old], receivedAt: 1)
            try PostgresSession(configuration: session).withConnection { connection in
                try connection.execute("DELETE FROM stream_outbox_frames")
                for message in oldMessages {
                    try connection.query(
                        "INSERT INTO stream_outbox (created_at, subject, message_id, readings, payload) VALUES ($1, $2, $3, $4, $5)",
                        [
                            "1", message.subject, message.messageID, String(message.readings),
                            String(decoding: message.payload, as: UTF8.self),
                        ])
                }
            }
            _ = try store.store([Fixtures.batch(first: 301, count: 100)], receivedAt: 2)
            let reader = try PostgresStreamOutbox.Reader(session: session)
            #expect(try reader.size().messages == 4)
            let first = try reader.drain(limit: 10, readings: .max) { $0.map(\.id) }
            #expect(first.flatMap(\.messages).map(\.messageID) == oldMessages.map(\.messageID))
            #expect(first.flatMap(\.messages) == oldMessages, "payloads read back as written")
            let second = try reader.drain(limit: 10, readings: .max) { $0.map(\.id) }
            #expect(second.map(\.readings) == [100])
            let expected = StreamMessages().messages(
                for: Fixtures.batch(first: 301, count: 100), range: SequenceRange(301, 400))
            #expect(second.flatMap(\.messages) == expected, "the frame becomes the messages of its readings")
            #expect(try reader.size().messages == 0)
        }
    }

    @Test func byteaHexRoundTripsAndRefusesGarbage() {
        let bytes: [UInt8] = [0, 1, 0x7f, 0x80, 0xff, 0x45]
        #expect(PostgresStreamOutbox.bytes(fromHex: PostgresStreamOutbox.hex(bytes)) == bytes)
        #expect(PostgresStreamOutbox.bytes(fromHex: "\\x") == [])
        for bad in ["", "x00", "\\x0", "\\xzz", "\\x0g", "00"] {
            #expect(PostgresStreamOutbox.bytes(fromHex: bad) == nil)
        }
    }

    @Test func twoCollectorsAndTwoRelaysPublishEveryReadingOnce() async throws {
        guard NATSTestServer.executable != nil else {
            print("skipped: nats-server is not installed")
            return
        }
        try await withPostgresDatabase { url in
            try await withTemporaryDirectory(prefix: "stream-pg") { directory in
                let server = try await NATSTestServer.start(in: directory)
                defer { Task { await server.stop() } }
                let gauges = [StreamOutboxGauge(), StreamOutboxGauge()]
                let stores = try gauges.map { gauge in
                    var configuration = PostgresReadingStore.Configuration()
                    configuration.streamOutbox = StreamOutboxSettings(gauge: gauge)
                    return try PostgresReadingStore(session: PostgresSession.Configuration(url: url), configuration: configuration)
                }
                var relayConfiguration = StreamRelay.Configuration()
                relayConfiguration.idleWait = .milliseconds(50)
                relayConfiguration.batchMessages = 16
                let publisher = JetStreamPublisher.Configuration(
                    client: .init(host: "127.0.0.1", port: server.port, options: .init(name: "relay", version: "0")),
                    stream: .init(name: "EDGESYNC", subjects: ["edgesync.>"]))
                let relays = gauges.map { gauge in
                    StreamRelay(
                        configuration: relayConfiguration, gauge: gauge,
                        reader: {
                            try PostgresStreamOutbox.Reader(
                                session: PostgresSession.Configuration(url: url),
                                messages: StreamMessages(maximumPayloadBytes: 1024))
                        },
                        publisher: { JetStreamPublisher(publisher) })
                }
                relays.forEach { $0.start() }
                // Both collectors receive every batch (an edge retrying against another collector).
                var batches: [Batch] = []
                for first in stride(from: 1, through: 1801, by: 200) {
                    let batch = Fixtures.batch(first: UInt64(first), count: 200)
                    batches.append(batch)
                    for store in stores { _ = try store.store([batch], receivedAt: 1) }
                }
                let reader = try PostgresStreamOutbox.Reader(session: PostgresSession.Configuration(url: url))
                let deadline = ContinuousClock.now + .seconds(60)
                while try reader.size().messages > 0, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                relays.forEach { $0.stop() }
                #expect(try reader.size().messages == 0)
                let published = relays.reduce(0) { $0 + $1.counters.publishedReadings }
                #expect(published == 2000)
                #expect(relays.reduce(0) { $0 + $1.counters.duplicates } == 0)
                let client = try JetStreamClient(.init(host: "127.0.0.1", port: server.port, options: .init(name: "check", version: "0")))
                let state = try #require(try client.streamState("EDGESYNC"))
                #expect(state.messages == UInt64(relays.reduce(0) { $0 + $1.counters.published }))
            }
        }
    }
}
