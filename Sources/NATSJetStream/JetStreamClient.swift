import Foundation
import HTTPCore

/// A NATS connection for publishing to JetStream and calling its API, written on the package's
/// own sockets. Synchronous: it belongs to one thread (an outbox relay), and every call has a
/// deadline. After any failure the connection is spent: close it and connect again.
///
/// Publishes are pipelined: `publish(_:)` writes a run of messages, each with its own reply
/// subject under one inbox, then collects JetStream's acknowledgement of each. Every message
/// carries `Nats-Msg-Id`, so a publish retried after a lost acknowledgement is dropped by the
/// stream's duplicate window instead of stored twice (the acknowledgement then says `duplicate`).
package final class JetStreamClient {
    package struct Configuration: Sendable, Equatable {
        package var host: String
        package var port: Int
        package var connectTimeout: Duration = .seconds(5)
        /// For each call: a publish run, a stream lookup.
        package var requestTimeout: Duration = .seconds(10)
        package var options: NATSCommand.ConnectOptions

        package init(host: String, port: Int, options: NATSCommand.ConnectOptions) {
            self.host = host
            self.port = port
            self.options = options
        }
    }

    package enum Failure: Error, Equatable, CustomStringConvertible {
        /// The connection could not be made or broke.
        case connection(String)
        case protocolViolation(String)
        /// The server said `-ERR` (authorization, permissions, parser errors).
        case server(String)
        case timeout(String)
        /// Nothing listens on the subject: no stream captures it.
        case noResponders(subject: String)
        /// JetStream answered with an error object.
        case jetStream(code: Int, errorCode: Int, description: String)
        /// Refused before sending (a bad subject or header, a message over the server's limit).
        case invalid(String)

        package var description: String {
            switch self {
            case .connection(let text): "NATS connection: \(text)"
            case .protocolViolation(let text): "NATS protocol violation: \(text)"
            case .server(let text): "NATS server error: \(text)"
            case .timeout(let text): "NATS timeout: \(text)"
            case .noResponders(let subject): "no JetStream stream captures subject \(subject)"
            case .jetStream(let code, let errorCode, let description): "JetStream error \(code)/\(errorCode): \(description)"
            case .invalid(let text): "not sent: \(text)"
            }
        }
    }

    /// One message to publish.
    package struct Message: Sendable, Equatable {
        package var subject: String
        /// Becomes `Nats-Msg-Id`: the same logical message must always get the same id.
        package var messageID: String
        package var payload: [UInt8]
        package var headers: [String: String]

        package init(subject: String, messageID: String, payload: [UInt8], headers: [String: String] = [:]) {
            self.subject = subject
            self.messageID = messageID
            self.payload = payload
            self.headers = headers
        }
    }

    /// JetStream's acknowledgement of one stored (or recognised duplicate) message.
    package struct Acknowledgement: Sendable, Equatable {
        package var stream: String
        package var sequence: UInt64
        package var duplicate: Bool
    }

    /// What a stream is created with, in JetStream's own terms.
    package struct StreamConfiguration: Sendable, Equatable {
        package var name: String
        package var subjects: [String]
        /// Messages with an id seen within this window are dropped as duplicates.
        package var duplicateWindow: Duration = .seconds(120)
        package var fileStorage = true
        /// -1: no limit.
        package var maximumBytes: Int64 = -1

        package init(name: String, subjects: [String]) {
            self.name = name
            self.subjects = subjects
        }
    }

    /// The state of a stream as `STREAM.INFO` reports it.
    package struct StreamState: Sendable, Equatable {
        package var messages: UInt64
        package var bytes: UInt64
        package var firstSequence: UInt64
        package var lastSequence: UInt64
        package var subjects: [String]
        package var duplicateWindow: Duration
    }

    package let configuration: Configuration
    package private(set) var serverInfo = NATSServerInfo()
    private let socket: ClientSocket
    private var parser: NATSParser
    private let inbox: String
    private var nextReply: UInt64 = 0

    /// Connects, reads `INFO`, authenticates with `CONNECT` and waits for the `PONG` that proves
    /// the server took it, then subscribes to this connection's reply inbox.
    package init(_ configuration: Configuration) throws(Failure) {
        self.configuration = configuration
        do {
            socket = try ClientSocket.connect(host: configuration.host, port: configuration.port, timeout: configuration.connectTimeout)
        } catch {
            throw .connection(error.description)
        }
        parser = NATSParser()
        inbox = "_INBOX." + Self.randomToken()
        let deadline = ContinuousClock.now + configuration.connectTimeout
        guard case .info(let info)? = try readOperation(before: deadline, during: "waiting for INFO") else {
            throw .protocolViolation("the server did not start with INFO")
        }
        serverInfo = info
        if info.requiresTLS == true {
            throw .connection("\(socket.peer) requires TLS; put it behind a TLS-terminating local proxy or disable tls for this listener")
        }
        guard info.supportsHeaders == true else {
            throw .connection("\(socket.peer) does not support message headers (NATS 2.2 or later is needed)")
        }
        parser = NATSParser(maximumPayload: max(info.maximumPayload ?? 1 << 20, 1 << 20) + 4096)
        try send(NATSCommand.connect(configuration.options) + NATSCommand.ping, before: deadline)
        while true {
            switch try readOperation(before: deadline, during: "waiting for the server to accept CONNECT") {
            case .pong?: break
            case .ok?, .info?: continue
            case .message?: throw .protocolViolation("a message before the subscription")
            case nil: throw .timeout("the server did not answer CONNECT within \(configuration.connectTimeout)")
            case .ping?, .error?: continue  // handled in readOperation
            }
            break
        }
        let subscribe: [UInt8]
        do {
            subscribe = try NATSCommand.subscribe(inbox + ".*", sid: "1")
        } catch {
            throw .invalid(error.description)
        }
        try send(subscribe, before: deadline)
    }

    deinit { socket.close() }

    package func close() { socket.close() }

    /// Publishes `messages` to JetStream and returns each one's outcome, in order. A message whose
    /// acknowledgement does not come within the request timeout gets `.timeout`; the connection
    /// should then be dropped (a late acknowledgement would be mistaken for a later request's).
    package func publish(_ messages: [Message]) throws(Failure) -> [Result<Acknowledgement, Failure>] {
        guard !messages.isEmpty else { return [] }
        let limit = serverInfo.maximumPayload ?? 1 << 20
        var results = [Result<Acknowledgement, Failure>?](repeating: nil, count: messages.count)
        var replies: [String: Int] = [:]
        var bytes: [UInt8] = []
        bytes.reserveCapacity(messages.reduce(0) { $0 + $1.payload.count + 128 })
        for (index, message) in messages.enumerated() {
            let reply = nextReplySubject()
            var headers = [(name: "Nats-Msg-Id", value: message.messageID)]
            headers += message.headers.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
            // The server's limit counts the headers block and the payload.
            let size = message.payload.count + headers.reduce(12) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
            do {
                let command = try NATSCommand.publish(message.subject, replyTo: reply, headers: headers, payload: message.payload)
                guard size <= limit else {
                    results[index] = .failure(.invalid("message of \(message.payload.count) bytes exceeds the server's \(limit)-byte limit"))
                    continue
                }
                bytes += command
                replies[reply] = index
            } catch {
                results[index] = .failure(.invalid(error.description))
            }
        }
        let deadline = ContinuousClock.now + configuration.requestTimeout
        if !bytes.isEmpty { try send(bytes, before: deadline) }
        while !replies.isEmpty {
            guard let operation = try readOperation(before: deadline, during: "waiting for acknowledgements") else {
                for (_, index) in replies {
                    results[index] = .failure(.timeout("no acknowledgement within \(configuration.requestTimeout)"))
                }
                break
            }
            guard case .message(let answer) = operation, let index = replies.removeValue(forKey: answer.subject) else { continue }
            results[index] = Self.acknowledgement(answer, subject: messages[index].subject)
        }
        return results.map { $0! }
    }

    /// `$JS.API.STREAM.INFO.<name>`: the stream's state, or nil when there is no such stream.
    package func streamState(_ name: String) throws(Failure) -> StreamState? {
        let answer = try request("$JS.API.STREAM.INFO.\(name)", payload: [])
        let reply: StreamInfoReply
        do {
            reply = try JSONDecoder().decode(StreamInfoReply.self, from: Data(answer))
        } catch {
            throw .protocolViolation("STREAM.INFO answered something other than its JSON")
        }
        if let error = reply.error {
            if error.code == 404 { return nil }
            throw .jetStream(code: error.code, errorCode: error.err_code ?? 0, description: error.description ?? "")
        }
        guard let state = reply.state, let config = reply.config else {
            throw .protocolViolation("STREAM.INFO without config and state")
        }
        return StreamState(
            messages: state.messages, bytes: state.bytes, firstSequence: state.first_seq, lastSequence: state.last_seq,
            subjects: config.subjects ?? [], duplicateWindow: .nanoseconds(config.duplicate_window ?? 0))
    }

    /// Creates the stream unless one of that name exists; returns whether it created it. An
    /// existing stream is left as it is (an operator may have tuned it), but one that does not
    /// capture every configured subject is an error, since publishes to it would go nowhere.
    @discardableResult
    package func ensureStream(_ stream: StreamConfiguration) throws(Failure) -> Bool {
        if let existing = try streamState(stream.name) {
            let missing = stream.subjects.filter { !existing.subjects.contains($0) }
            guard missing.isEmpty else {
                throw .invalid("stream \(stream.name) exists but does not capture \(missing.joined(separator: ", "))")
            }
            return false
        }
        let body: [String: Any] = [
            "name": stream.name, "subjects": stream.subjects, "retention": "limits",
            "storage": stream.fileStorage ? "file" : "memory", "discard": "old", "num_replicas": 1,
            "max_bytes": stream.maximumBytes,
            "duplicate_window": Self.nanoseconds(stream.duplicateWindow),
        ]
        let payload = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        let answer = try request("$JS.API.STREAM.CREATE.\(stream.name)", payload: Array(payload))
        guard let reply = try? JSONDecoder().decode(StreamInfoReply.self, from: Data(answer)) else {
            throw .protocolViolation("STREAM.CREATE answered something other than its JSON")
        }
        if let error = reply.error {
            throw .jetStream(code: error.code, errorCode: error.err_code ?? 0, description: error.description ?? "")
        }
        return true
    }

    /// One message as the stream stores it (`STREAM.MSG.GET`).
    package struct StoredMessage: Sendable, Equatable {
        package var subject: String
        package var sequence: UInt64
        /// The `Nats-Msg-Id` header it was published with, if any.
        package var messageID: String?
        package var payload: [UInt8]
    }

    /// `$JS.API.STREAM.MSG.GET.<name>`: the message at `sequence`, nil when there is none (deleted,
    /// or outside the stream). For checks and tools; consumers use a consumer.
    package func storedMessage(stream: String, sequence: UInt64) throws(Failure) -> StoredMessage? {
        let answer = try request("$JS.API.STREAM.MSG.GET.\(stream)", payload: Array(#"{"seq":\#(sequence)}"#.utf8))
        guard let reply = try? JSONDecoder().decode(MessageGetReply.self, from: Data(answer)) else {
            throw .protocolViolation("STREAM.MSG.GET answered something other than its JSON")
        }
        if let error = reply.error {
            if error.code == 404 { return nil }
            throw .jetStream(code: error.code, errorCode: error.err_code ?? 0, description: error.description ?? "")
        }
        guard let message = reply.message else { throw .protocolViolation("STREAM.MSG.GET without a message") }
        guard let data = Data(base64Encoded: message.data ?? ""),
            let headers = Data(base64Encoded: message.hdrs ?? "")
        else { throw .protocolViolation("STREAM.MSG.GET with data or headers that are not base64") }
        // Headers block: `NATS/1.0\r\nName: value\r\n…\r\n\r\n`.
        let id = String(decoding: headers, as: UTF8.self).components(separatedBy: "\r\n").lazy
            .compactMap { line -> String? in
                guard let colon = line.firstIndex(of: ":"),
                    line[..<colon].utf8.elementsEqual("Nats-Msg-Id".utf8)
                else { return nil }
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }.first
        return StoredMessage(subject: message.subject, sequence: message.seq, messageID: id, payload: Array(data))
    }

    /// Every message of the stream, oldest first (small streams: one request per message).
    package func storedMessages(stream: String) throws(Failure) -> [StoredMessage] {
        guard let state = try streamState(stream), state.messages > 0, state.lastSequence >= state.firstSequence else {
            return []
        }
        var messages: [StoredMessage] = []
        for sequence in state.firstSequence...state.lastSequence {
            if let message = try storedMessage(stream: stream, sequence: sequence) { messages.append(message) }
        }
        return messages
    }

    /// A request to `subject` and its one answer's payload.
    package func request(_ subject: String, payload: [UInt8]) throws(Failure) -> [UInt8] {
        let reply = nextReplySubject()
        let command: [UInt8]
        do {
            command = try NATSCommand.publish(subject, replyTo: reply, payload: payload)
        } catch {
            throw .invalid(error.description)
        }
        let deadline = ContinuousClock.now + configuration.requestTimeout
        try send(command, before: deadline)
        while true {
            guard let operation = try readOperation(before: deadline, during: "waiting for the answer to \(subject)") else {
                throw .timeout("\(subject) was not answered within \(configuration.requestTimeout)")
            }
            guard case .message(let answer) = operation, answer.subject == reply else { continue }
            if answer.status == 503 { throw .noResponders(subject: subject) }
            return answer.payload
        }
    }

    // MARK: - Internals

    private func nextReplySubject() -> String {
        nextReply += 1
        return "\(inbox).\(nextReply)"
    }

    private func send(_ bytes: [UInt8], before deadline: ContinuousClock.Instant) throws(Failure) {
        do {
            try socket.send(bytes, before: deadline)
        } catch {
            throw .connection(error.description)
        }
    }

    /// The next operation other than `PING` (answered here); nil at the deadline. `-ERR` is thrown.
    private func readOperation(before deadline: ContinuousClock.Instant, during activity: String) throws(Failure)
        -> NATSServerOperation?
    {
        while true {
            let operation: NATSServerOperation?
            do {
                operation = try parser.next()
            } catch {
                throw .protocolViolation(error.description)
            }
            switch operation {
            case .ping?:
                try send(NATSCommand.pong, before: deadline)
                continue
            case .error(let text)?:
                throw .server(text)
            case let operation?:
                return operation
            case nil:
                break
            }
            let bytes: [UInt8]?
            do {
                bytes = try socket.receive(before: deadline)
            } catch {
                throw .connection(error.description)
            }
            guard let bytes else { return nil }
            guard !bytes.isEmpty else { throw .connection("\(socket.peer) closed the connection while \(activity)") }
            parser.append(bytes)
        }
    }

    private static func acknowledgement(_ answer: NATSMessage, subject: String) -> Result<Acknowledgement, Failure> {
        if answer.status == 503 { return .failure(.noResponders(subject: subject)) }
        if let status = answer.status, answer.payload.isEmpty {
            return .failure(.jetStream(code: status, errorCode: 0, description: answer.statusDescription))
        }
        guard let reply = try? JSONDecoder().decode(PublishReply.self, from: Data(answer.payload)) else {
            return .failure(.protocolViolation("a publish acknowledgement that is not JetStream's JSON"))
        }
        if let error = reply.error {
            return .failure(.jetStream(code: error.code, errorCode: error.err_code ?? 0, description: error.description ?? ""))
        }
        guard let stream = reply.stream, let sequence = reply.seq else {
            return .failure(.protocolViolation("a publish acknowledgement without stream and sequence"))
        }
        return .success(Acknowledgement(stream: stream, sequence: sequence, duplicate: reply.duplicate ?? false))
    }

    private static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        return String(decoding: (0..<22).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }, as: UTF8.self)
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    // JetStream's JSON, the fields used here.
    private struct APIError: Decodable {
        var code: Int
        var err_code: Int?
        var description: String?
    }
    private struct PublishReply: Decodable {
        var stream: String?
        var seq: UInt64?
        var duplicate: Bool?
        var error: APIError?
    }
    private struct MessageGetReply: Decodable {
        struct Message: Decodable {
            var subject: String
            var seq: UInt64
            var hdrs: String?
            var data: String?
        }
        var message: Message?
        var error: APIError?
    }
    private struct StreamInfoReply: Decodable {
        struct Config: Decodable {
            var subjects: [String]?
            var duplicate_window: Int64?
        }
        struct State: Decodable {
            var messages: UInt64
            var bytes: UInt64
            var first_seq: UInt64
            var last_seq: UInt64
        }
        var config: Config?
        var state: State?
        var error: APIError?
    }
}
