import CloudCollector
import EdgeSyncCodec
import EdgeSyncCommandLine
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import NATSJetStream
import Synchronization
import Testing

@testable import CloudCollector

/// The `stream.*` keys of `cloud-collector serve`: defaults, every key, and a clear error naming
/// the key for each bad setting.
@Suite struct StreamConfigurationTests {
    let parser = ArgumentParser(options: CollectorService.Configuration.options)

    private func configuration(_ stream: String, readsSecrets: Bool = true) throws -> CollectorService.Configuration {
        try withTemporaryDirectory(prefix: "stream-config") { directory in
            let path = directory + "/collector.json"
            try Data(#"{"data_dir": "/d", "stream": {\#(stream)}}"#.utf8).write(to: URL(fileURLWithPath: path))
            return try CollectorService.Configuration(
                arguments: parser.parse(["--config", path]), environment: [:], readsOperatorToken: readsSecrets)
        }
    }

    /// The error for `stream`, as `serve` would print it.
    private func error(_ stream: String) -> String {
        do {
            _ = try configuration(stream)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func withoutTheKeysThereIsNoStream() throws {
        let parsed = try CollectorService.Configuration(
            arguments: parser.parse(["--data-dir", "/d"]), environment: [:])
        #expect(parsed.stream == nil)
    }

    @Test func defaultsAndEveryKey() throws {
        let plain = try #require(try configuration(#""nats": "nats://127.0.0.1:4333""#).stream)
        #expect(plain.host == "127.0.0.1" && plain.port == 4333)
        #expect(plain.streamName == "EDGESYNC" && plain.subjectPrefix == "edgesync")
        #expect(plain.maximumOutboxBytes == 1 << 30 && plain.duplicateWindow == .seconds(120))
        #expect(plain.createsStream && plain.token == nil && plain.user == nil)
        #expect(try configuration(#""nats": "nats://nats.example""#).stream?.port == 4222)
        #expect(
            try configuration(#""nats": "nats://[::1]:4225/""#).stream.map { ($0.host, $0.port) } ?? ("", 0) == (
                "::1", 4225
            ))

        try withTemporaryDirectory(prefix: "stream-secrets") { directory in
            try "s3cret-token\n".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
            try "pass word\n".write(toFile: directory + "/password", atomically: true, encoding: .utf8)
            let full = try #require(
                try configuration(
                    #""nats": "nats://h:1", "token_file": "\#(directory)/token", "name": "SENSORS_1","#
                        + #""subject_prefix": "plant.north", "max_outbox_bytes": 2097152, "duplicate_window_seconds": 3600,"#
                        + #""create_if_missing": false"#
                ).stream)
            #expect(full.token == "s3cret-token")
            #expect(full.streamName == "SENSORS_1" && full.subjectPrefix == "plant.north")
            #expect(
                full.maximumOutboxBytes == 2_097_152 && full.duplicateWindow == .seconds(3600) && !full.createsStream)
            #expect(full.publisherConfiguration().stream == nil)
            #expect(full.publisherConfiguration().client.options.token == "s3cret-token")
            let user = try #require(
                try configuration(
                    #""nats": "nats://h:1", "user": "collector", "password_file": "\#(directory)/password""#
                ).stream)
            #expect(user.user == "collector" && user.password == "pass word")
            // `config check` does not read secrets.
            let unread = try configuration(
                #""nats": "nats://h:1", "token_file": "/nonexistent/token""#, readsSecrets: false)
            #expect(unread.stream?.token == nil)
            // Credentials never reach the description logs show.
            #expect(!user.description.contains("pass") && !full.description.contains("s3cret"))
            let created = try #require(plain.publisherConfiguration().stream)
            #expect(created.subjects == ["edgesync.>"] && created.duplicateWindow == .seconds(120))
        }
    }

    @Test(arguments: [
        (#""nats": "http://h:4222""#, "stream.nats: expected a nats://HOST:PORT URL"),
        (#""nats": "tls://h:4222""#, "stream.nats: TLS to NATS is not supported"),
        (#""nats": "nats://user:secret@h:4222""#, "stream.nats: must not hold credentials"),
        (#""nats": "nats://h:99999""#, "stream.nats: expected a nats://HOST:PORT URL with a port"),
        (#""nats": "nats://""#, "stream.nats: expected a nats://HOST:PORT URL"),
        (#""nats": "nats://h:1/x""#, "stream.nats: expected a nats://HOST:PORT URL"),
        (#""nats": "nats://h 1:2""#, "stream.nats: expected a nats://HOST:PORT URL"),
        (#""nats": 4222"#, "stream.nats: expected a string"),
        (#""name": "EDGESYNC""#, "stream.name: is set but stream.nats is not"),
        (#""nats": "nats://h:1", "name": "a.b""#, "stream.name: expected a JetStream stream name"),
        (#""nats": "nats://h:1", "name": """#, "stream.name: expected a JetStream stream name"),
        (#""nats": "nats://h:1", "subject_prefix": "a.>""#, "stream.subject_prefix: expected dot-separated"),
        (#""nats": "nats://h:1", "subject_prefix": "a..b""#, "stream.subject_prefix: expected dot-separated"),
        (#""nats": "nats://h:1", "subject_prefix": "a b""#, "stream.subject_prefix: expected dot-separated"),
        (#""nats": "nats://h:1", "max_outbox_bytes": 10"#, "stream.max_outbox_bytes: 10 is out of range"),
        (#""nats": "nats://h:1", "duplicate_window_seconds": 0"#, "stream.duplicate_window_seconds: 0 is out of range"),
        (#""nats": "nats://h:1", "create_if_missing": "yes""#, "stream.create_if_missing: expected true or false"),
        (#""nats": "nats://h:1", "user": "u""#, "stream.password_file: stream.user needs stream.password_file"),
        (#""nats": "nats://h:1", "password_file": "/p""#, "stream.user: stream.password_file needs stream.user"),
        (#""nats": "nats://h:1", "token_file": "/t", "user": "u""#, "stream.token_file: give either a token"),
        (#""nats": "nats://h:1", "token_file": "/nonexistent/t""#, "stream.token_file: cannot read /nonexistent/t"),
        (#""nats": "nats://h:1", "colour": "red""#, "stream.colour: unknown configuration key"),
    ])
    func badSettingsAreNamed(stream: String, expected: String) {
        let message = error(stream)
        #expect(message.contains(expected), "\(message)")
        #expect(!message.contains("secret"))
    }

    @Test func emptyAndMultiLineSecretFilesAreRefusedWithoutShowingThem() throws {
        try withTemporaryDirectory(prefix: "stream-secrets") { directory in
            try "\n".write(toFile: directory + "/empty", atomically: true, encoding: .utf8)
            try "one-secret\ntwo-secret\n".write(toFile: directory + "/two", atomically: true, encoding: .utf8)
            try Data([0xFF, 0xFE]).write(to: URL(fileURLWithPath: directory + "/binary"))
            #expect(error(#""nats": "nats://h:1", "token_file": "\#(directory)/empty""#).contains("is empty"))
            let twoLines = error(#""nats": "nats://h:1", "token_file": "\#(directory)/two""#)
            #expect(twoLines.contains("must hold one line") && !twoLines.contains("one-secret"))
            #expect(error(#""nats": "nats://h:1", "token_file": "\#(directory)/binary""#).contains("not UTF-8"))
        }
    }
}

/// `serve` with a stream: the service makes the outbox, runs the relay, shows it on /metrics and
/// stops it with the service.
@Suite(.timeLimit(.minutes(3))) struct StreamServiceTests {
    @Test func acceptedReadingsReachTheStreamAndMetricsShowTheRelay() async throws {
        guard NATSTestServer.executable != nil else {
            print("skipped: nats-server is not installed")
            return
        }
        try await withTemporaryDirectory(prefix: "stream-service") { natsDirectory in
            let server = try await NATSTestServer.start(in: natsDirectory, token: "nats-token-1")
            defer { Task { await server.stop() } }
            try "nats-token-1\n".write(toFile: natsDirectory + "/token", atomically: true, encoding: .utf8)
            try await RunningCollector.with(configure: { configuration in
                var destination = StreamDestination(host: "127.0.0.1", port: server.port)
                destination.token = "nats-token-1"
                destination.subjectPrefix = "plant"
                destination.streamName = "PLANT"
                configuration.stream = destination
                configuration.relay.idleWait = .milliseconds(50)
                configuration.relay.maximumBackoff = .milliseconds(200)
            }) { collector, tokens in
                let batches = [Fixtures.batch(first: 1, count: 400), Fixtures.batch(first: 301, count: 300)]
                for batch in batches {
                    let response = try await collector.post(
                        ProtocolPath.batches,
                        body: try BatchEncoder(options: EncodingOptions(version: .v2)).encode(batch),
                        token: tokens["gateway-1"])
                    try #require(response.status == 200)
                }
                let relay = try #require(collector.service.relay)
                let deadline = ContinuousClock.now + .seconds(60)
                while relay.counters.publishedReadings < 600, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(relay.counters.publishedReadings == 600)
                let metrics = try await collector.get("/metrics", token: nil)
                let text = String(decoding: metrics.body, as: UTF8.self)
                #expect(text.contains("collector_stream_published_readings_total 600"))
                #expect(text.contains("collector_stream_outbox_messages "))
                #expect(text.contains("collector_stream_publish_lag_seconds "))
                #expect(text.contains("collector_stream_duplicate_messages_total 0"))
                #expect(text.contains("collector_stream_publish_failures_total 0"))

                let client = try JetStreamClient(
                    .init(
                        host: "127.0.0.1", port: server.port,
                        options: .init(name: "check", version: "0", token: "nats-token-1")))
                let stored = try client.storedMessages(stream: "PLANT")
                #expect(stored.allSatisfy { $0.subject.hasPrefix("plant.gateway-1.") })
                let lines = stored.flatMap { String(decoding: $0.payload, as: UTF8.self).split(separator: "\n") }
                #expect(lines.count == 600)
                #expect(Set(stored.compactMap(\.messageID)).count == stored.count)
            }
        }
    }

    @Test func whileNATSIsDownIngestGoesOnAndMetricsShowTheBacklog() async throws {
        let clock = Mutex<Int64>(10_000_000_000_000)
        try await RunningCollector.with(
            configure: { configuration in
                // Nothing listens on this port.
                configuration.stream = StreamDestination(host: "127.0.0.1", port: (try? freeLoopbackPort()) ?? 1)
                configuration.relay.idleWait = .milliseconds(50)
                configuration.relay.maximumBackoff = .milliseconds(100)
            }, now: { clock.withLock { $0 } }
        ) { collector, tokens in
            let response = try await collector.post(
                ProtocolPath.batches,
                body: try BatchEncoder(options: EncodingOptions(version: .v2)).encode(
                    Fixtures.batch(first: 1, count: 50)),
                token: tokens["gateway-1"])
            try #require(response.status == 200)
            let relay = try #require(collector.service.relay)
            let deadline = ContinuousClock.now + .seconds(30)
            while relay.counters.failures < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            clock.withLock { $0 += 5_000_000_000 }
            let text = String(decoding: try await collector.get("/metrics", token: nil).body, as: UTF8.self)
            #expect(relay.counters.failures >= 2)
            #expect(text.contains("collector_stream_publish_lag_seconds 5\n"), "\(text)")
            #expect(text.contains("collector_stream_outbox_messages 3"))
            #expect(!text.contains("collector_stream_publish_failures_total 0\n"))
            #expect(text.contains("collector_stream_published_messages_total 0"))
        }
    }
}
