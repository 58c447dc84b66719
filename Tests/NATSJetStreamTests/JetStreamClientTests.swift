import EdgeSyncTestSupport
import Foundation
import Testing

@testable import NATSJetStream

/// The client against a real `nats-server -js`: streams made and found, publishes acknowledged in
/// order, a retried message id dropped as a duplicate, and every failure named.
@Suite(.timeLimit(.minutes(2))) struct JetStreamClientTests {
    private func withServer(token: String? = nil, _ body: (NATSTestServer) async throws -> Void) async throws {
        guard NATSTestServer.executable != nil else {
            print("skipped: nats-server is not installed (Debian package nats-server)")
            return
        }
        try await withTemporaryDirectory { directory in
            let server = try await NATSTestServer.start(in: directory, token: token)
            do {
                try await body(server)
            } catch {
                await server.stop()
                throw error
            }
            await server.stop()
        }
    }

    private func client(_ server: NATSTestServer, token: String? = nil) throws -> JetStreamClient {
        try JetStreamClient(.init(host: "127.0.0.1", port: server.port, options: .init(name: "test", version: "0", token: token)))
    }

    @Test func aStreamIsCreatedOnceAndPublishesAreAcknowledgedInOrder() async throws {
        try await withServer { server in
            let client = try client(server)
            #expect(client.serverInfo.supportsJetStream == true)
            #expect(try client.streamState("EDGESYNC") == nil)
            #expect(try client.ensureStream(.init(name: "EDGESYNC", subjects: ["edgesync.>"])) == true)
            #expect(try client.ensureStream(.init(name: "EDGESYNC", subjects: ["edgesync.>"])) == false)

            let messages = (0..<1000).map {
                JetStreamClient.Message(subject: "edgesync.gw\($0 % 7).m", messageID: "id-\($0)", payload: Array("payload \($0)".utf8))
            }
            let results = try client.publish(messages)
            let acknowledgements = try results.map { try $0.get() }
            #expect(acknowledgements.map(\.sequence) == Array(1...1000))
            #expect(acknowledgements.allSatisfy { $0.stream == "EDGESYNC" && !$0.duplicate })
            let state = try #require(try client.streamState("EDGESYNC"))
            #expect(state.messages == 1000)
            #expect(state.lastSequence == 1000)
            #expect(state.duplicateWindow == .seconds(120))
        }
    }

    @Test func aRetriedMessageIdIsADuplicateNotASecondMessage() async throws {
        try await withServer { server in
            let client = try client(server)
            try client.ensureStream(.init(name: "S", subjects: ["s.>"]))
            let first = try client.publish([.init(subject: "s.a", messageID: "batch-1", payload: [1])])
            #expect(try first[0].get() == .init(stream: "S", sequence: 1, duplicate: false))
            // A second connection, as after a collector restart, publishing the same message again.
            let again = try self.client(server).publish([
                .init(subject: "s.a", messageID: "batch-1", payload: [1]), .init(subject: "s.a", messageID: "batch-2", payload: [2]),
            ])
            #expect(try again[0].get() == .init(stream: "S", sequence: 1, duplicate: true))
            #expect(try again[1].get() == .init(stream: "S", sequence: 2, duplicate: false))
            #expect(try client.streamState("S")?.messages == 2)
        }
    }

    @Test func aSubjectNoStreamCapturesHasNoResponders() async throws {
        try await withServer { server in
            let client = try client(server)
            try client.ensureStream(.init(name: "S", subjects: ["s.>"]))
            let results = try client.publish([
                .init(subject: "elsewhere.a", messageID: "x", payload: [1]), .init(subject: "s.a", messageID: "y", payload: [2]),
            ])
            #expect(throws: JetStreamClient.Failure.noResponders(subject: "elsewhere.a")) { try results[0].get() }
            #expect(try results[1].get().sequence == 1)
        }
    }

    @Test func anExistingStreamThatMissesASubjectIsAnError() async throws {
        try await withServer { server in
            let client = try client(server)
            try client.ensureStream(.init(name: "S", subjects: ["other.>"]))
            #expect(throws: JetStreamClient.Failure.self) { try client.ensureStream(.init(name: "S", subjects: ["s.>"])) }
        }
    }

    @Test func messagesThatCannotBeSentAreRefusedOneByOne() async throws {
        try await withServer { server in
            let client = try client(server)
            try client.ensureStream(.init(name: "S", subjects: ["s.>"]))
            let limit = client.serverInfo.maximumPayload ?? 0
            #expect(limit > 0)
            let results = try client.publish([
                .init(subject: "s.big", messageID: "big", payload: [UInt8](repeating: 7, count: limit + 1)),
                .init(subject: "s bad", messageID: "bad", payload: [1]),
                .init(subject: "s.ok", messageID: "ok", payload: [1]),
            ])
            #expect(throws: JetStreamClient.Failure.self) { try results[0].get() }
            #expect(throws: JetStreamClient.Failure.self) { try results[1].get() }
            #expect(try results[2].get().sequence == 1)
        }
    }

    @Test func aWrongTokenIsRefusedAndTheRightOneAccepted() async throws {
        try await withServer(token: "s3cret") { server in
            #expect {
                _ = try self.client(server, token: "wrong")
            } throws: { error in
                guard case .server(let text) = error as? JetStreamClient.Failure else { return false }
                return text.lowercased().contains("authorization")
            }
            let client = try client(server, token: "s3cret")
            #expect(try client.ensureStream(.init(name: "S", subjects: ["s.>"])) == true)
        }
    }

    @Test func aServerThatGoesAwayIsAConnectionFailure() async throws {
        try await withServer { server in
            let client = try client(server)
            try client.ensureStream(.init(name: "S", subjects: ["s.>"]))
            await server.kill()
            #expect {
                _ = try client.publish([.init(subject: "s.a", messageID: "x", payload: [1])])
            } throws: { error in
                if case .connection = error as? JetStreamClient.Failure { return true }
                return false
            }
            #expect {
                _ = try self.client(server)
            } throws: { error in
                guard case .connection(let text) = error as? JetStreamClient.Failure else { return false }
                return text.contains("127.0.0.1:\(server.port)")
            }
            // JetStream kept the stream on disk across the kill.
            try await server.restart()
            #expect(try self.client(server).streamState("S") != nil)
        }
    }
}
