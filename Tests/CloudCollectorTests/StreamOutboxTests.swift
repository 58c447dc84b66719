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
            #expect(entries.reduce(0) { $0 + $1.message.readings } == 400)
            #expect(entries.map(\.message.messageID).filter { $0.contains("/1-300/") }.count == 3)
            #expect(entries.map(\.message.messageID).filter { $0.contains("/301-400/") }.count == 3)
            #expect(entries.allSatisfy { $0.createdAt == 5 || $0.createdAt == 7 })
            #expect(try reader.size().messages == 6)
            #expect(gauge.messages == 6)
            #expect(gauge.bytes == entries.reduce(0) { $0 + Int64($1.message.payload.count) })
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
        try withStore(maximumBytes: 1000) { store, path, gauge in
            _ = try store.store([Fixtures.batch(first: 1, count: 100)], receivedAt: 1)
            #expect(gauge.bytes >= 1000)
            #expect {
                _ = try store.store([Fixtures.batch(first: 101, count: 10)], receivedAt: 2)
            } throws: { error in
                let refusal = error as? CollectorError
                return refusal?.code == "stream_backlog" && refusal?.response.headers["retry-after"] == "30"
            }
            // Nothing of the refused batch was stored: the edge still has it and sends it again.
            #expect(try store.receivedRanges(of: StreamKey(device: "gateway-1", stream: 0xFEED_0000_0000_0001)).ranges == [SequenceRange(1, 100)])
            let reader = try SQLiteStreamOutbox.Reader(path: path)
            _ = try reader.drain(limit: 10) { entries in entries.map(\.id) }
            gauge.reset(messages: 0, bytes: 0)
            _ = try store.store([Fixtures.batch(first: 101, count: 10)], receivedAt: 3)
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

    private func relay(path: String, port: Int, gauge: StreamOutboxGauge) -> StreamRelay {
        var configuration = StreamRelay.Configuration()
        configuration.idleWait = .milliseconds(50)
        configuration.maximumBackoff = .milliseconds(400)
        let publisher = JetStreamPublisher.Configuration(
            client: .init(host: "127.0.0.1", port: port, options: .init(name: "relay", version: "0")),
            stream: .init(name: "EDGESYNC", subjects: ["edgesync.>"]))
        return StreamRelay(
            configuration: configuration, gauge: gauge, reader: { try SQLiteStreamOutbox.Reader(path: path) },
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

    @Test func everyStoredReadingReachesTheStreamOnceAcrossAnOutageAndARestart() async throws {
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
            configuration.streamOutbox = StreamOutboxSettings(messages: StreamMessages(maximumPayloadBytes: 2048), gauge: gauge)
            let store = try SQLiteReadingStore(path: path, configuration: configuration)
            var batches: [Batch] = []

            // 1. Stored while the relay runs.
            var relay = relay(path: path, port: server.port, gauge: gauge)
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
            relay = self.relay(path: path, port: server.port, gauge: gauge)
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
            let store = try SQLiteReadingStore(path: path, configuration: configuration)
            _ = try store.store([Fixtures.batch(first: 1, count: 300)], receivedAt: 1)
            // A relay that published and died before deleting: the stream has the messages, the
            // outbox still lists them.
            let waiting = try SQLiteStreamOutbox.Reader(path: path).pending(limit: 100)
            let publisher = JetStreamPublisher(
                .init(
                    client: .init(host: "127.0.0.1", port: server.port, options: .init(name: "first", version: "0")),
                    stream: .init(name: "EDGESYNC", subjects: ["edgesync.>"])))
            #expect(try publisher.publish(waiting.map(\.message)).allSatisfy { $0 == .stored })

            let relay = relay(path: path, port: server.port, gauge: gauge)
            relay.start()
            try await drained(gauge, relay, path: path)
            relay.stop()
            #expect(relay.counters.duplicates == Int64(waiting.count))
            #expect(relay.counters.published == 0)
            #expect(try streamContents(port: server.port).readings.count == 300)
        }
    }
}

/// The outbox on PostgreSQL with two collectors on one database, each with its own relay: every
/// newly stored reading reaches the stream once, and the relays never hand one message over twice
/// (`FOR UPDATE SKIP LOCKED`).
@Suite(.serialized, .timeLimit(.minutes(3))) struct PostgresStreamOutboxTests {
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
                    configuration.streamOutbox = StreamOutboxSettings(
                        messages: StreamMessages(maximumPayloadBytes: 1024), gauge: gauge)
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
                        reader: { try PostgresStreamOutbox.Reader(session: PostgresSession.Configuration(url: url)) },
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
