import EdgeSyncCommandLine
import Foundation
import NATSJetStream

/// Where `cloud-collector serve` streams accepted readings (the `stream.*` keys, decision 0019):
/// a NATS server with JetStream, its credentials, the stream and its subjects, and the outbox's
/// bound. Secrets are read from files at start and never logged.
package struct StreamDestination: Sendable, Equatable {
    package static let defaultPort = 4222
    package static let defaultStreamName = "EDGESYNC"
    package static let defaultSubjectPrefix = "edgesync"

    package var host: String
    package var port: Int
    package var token: String?
    package var user: String?
    package var password: String?
    /// The JetStream stream (created when missing unless `createsStream` is off).
    package var streamName = defaultStreamName
    /// Subjects are `<prefix>.<device>.<measurement>`; the stream captures `<prefix>.>`.
    package var subjectPrefix = defaultSubjectPrefix
    /// Past this many payload bytes waiting in the outbox, ingest answers 503 `stream_backlog`.
    package var maximumOutboxBytes: Int64 = 1 << 30
    /// The duplicate window of a stream this collector creates.
    package var duplicateWindow: Duration = .seconds(120)
    /// Creates the stream when it does not exist; off: a missing stream is a publish failure
    /// (logged and retried) until the operator creates it.
    package var createsStream = true

    package init(host: String, port: Int = defaultPort) {
        self.host = host
        self.port = port
    }

    /// `nats://host:port` as logs may show it (no credentials).
    package var description: String {
        "nats://\(host.contains(":") ? "[\(host)]" : host):\(port) stream \(streamName) subjects \(subjectPrefix).>"
    }

    /// The settings the ingest transaction writes the outbox with.
    package func outboxSettings(gauge: StreamOutboxGauge) -> StreamOutboxSettings {
        StreamOutboxSettings(
            messages: StreamMessages(subjectPrefix: subjectPrefix), maximumBytes: maximumOutboxBytes, gauge: gauge)
    }

    /// The relay's publisher settings.
    package func publisherConfiguration(clientName: String = "cloud-collector") -> JetStreamPublisher.Configuration {
        var client = JetStreamClient.Configuration(
            host: host, port: port,
            options: .init(name: clientName, version: "1", token: token, user: user, password: password))
        client.requestTimeout = .seconds(10)
        var stream: JetStreamClient.StreamConfiguration?
        if createsStream {
            var created = JetStreamClient.StreamConfiguration(name: streamName, subjects: [subjectPrefix + ".>"])
            created.duplicateWindow = duplicateWindow
            stream = created
        }
        return JetStreamPublisher.Configuration(client: client, stream: stream)
    }
}

extension StreamDestination {
    /// The `stream.*` keys of a collector configuration file; nil when `stream.nats` is absent
    /// (and no other `stream.*` key is set). With `readsSecrets: false` (`config check`) the token
    /// and password files are checked for presence in the file only, not read.
    package init?(file: ConfigurationFile, readsSecrets: Bool = true) throws(UsageError) {
        let source = file.source
        func setting(_ key: String) -> String { "\(source): stream.\(key)" }
        let url = try file.string("stream.nats")
        let tokenFile = try file.string("stream.token_file")
        let user = try file.string("stream.user")
        let passwordFile = try file.string("stream.password_file")
        let name = try file.string("stream.name")
        let prefix = try file.string("stream.subject_prefix")
        let maximumBytes = try file.integer("stream.max_outbox_bytes", in: (1 << 20)...Int64.max)
        let window = try file.integer("stream.duplicate_window_seconds", in: 1...(366 * 86_400))
        let creates = try file.bool("stream.create_if_missing")
        guard let url else {
            let others: [(String, Bool)] = [
                ("token_file", tokenFile != nil), ("user", user != nil), ("password_file", passwordFile != nil),
                ("name", name != nil), ("subject_prefix", prefix != nil), ("max_outbox_bytes", maximumBytes != nil),
                ("duplicate_window_seconds", window != nil), ("create_if_missing", creates != nil),
            ]
            if let other = others.first(where: \.1) {
                throw UsageError(
                    "is set but stream.nats is not (stream.nats names the NATS server)", setting: setting(other.0))
            }
            return nil
        }
        let address = try Self.parseURL(url, setting: setting("nats"))
        self.init(host: address.host, port: address.port)
        if let name {
            guard Self.isStreamName(name) else {
                throw UsageError(
                    "expected a JetStream stream name of 1 to 64 ASCII letters, digits, '-' or '_', found \"\(name)\"",
                    setting: setting("name"))
            }
            streamName = name
        }
        if let prefix {
            guard Self.isSubjectPrefix(prefix) else {
                throw UsageError(
                    "expected dot-separated subject tokens (letters, digits, '-', '_'; no wildcards or spaces),"
                        + " at most 128 bytes, found \"\(prefix)\"", setting: setting("subject_prefix"))
            }
            subjectPrefix = prefix
        }
        if let maximumBytes { maximumOutboxBytes = maximumBytes }
        if let window { duplicateWindow = .seconds(window) }
        if let creates { createsStream = creates }
        if tokenFile != nil, user != nil || passwordFile != nil {
            throw UsageError(
                "give either a token (stream.token_file) or a user and password (stream.user, stream.password_file),"
                    + " not both", setting: setting("token_file"))
        }
        if user != nil, passwordFile == nil {
            throw UsageError("stream.user needs stream.password_file", setting: setting("password_file"))
        }
        if passwordFile != nil, user == nil {
            throw UsageError("stream.password_file needs stream.user", setting: setting("user"))
        }
        if let user {
            guard !user.isEmpty, user.utf8.count <= 256, !user.contains(where: { $0.isNewline || $0 == "\u{0}" }) else {
                throw UsageError("must be 1 to 256 bytes on one line", setting: setting("user"))
            }
            self.user = user
        }
        guard readsSecrets else { return }
        if let tokenFile { token = try Self.secret(from: tokenFile, setting: setting("token_file")) }
        if let passwordFile { password = try Self.secret(from: passwordFile, setting: setting("password_file")) }
    }

    /// `nats://HOST[:PORT]` (IPv6 in brackets). Credentials in the URL are refused (they would
    /// show in process lists and logs), and so is `tls://`, which the client does not speak.
    package static func parseURL(_ text: String, setting: String) throws(UsageError) -> (host: String, port: Int) {
        let lowered = text.lowercased()
        if lowered.hasPrefix("tls://") {
            throw UsageError(
                "TLS to NATS is not supported by this collector (decision 0019): use nats:// to a server on this host"
                    + " or a local TLS proxy", setting: setting)
        }
        guard lowered.hasPrefix("nats://") else {
            throw UsageError("expected a nats://HOST:PORT URL, found \"\(text.prefix(200))\"", setting: setting)
        }
        var rest = String(text.dropFirst("nats://".count))
        if rest.hasSuffix("/") { rest.removeLast() }
        if rest.contains("@") {
            throw UsageError(
                "must not hold credentials (the value is not shown): use stream.token_file or stream.user and"
                    + " stream.password_file", setting: setting)
        }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("?"), rest.utf8.count <= 300,
            !rest.contains(where: { $0.isWhitespace || $0.isNewline })
        else {
            throw UsageError("expected a nats://HOST:PORT URL, found \"\(text.prefix(200))\"", setting: setting)
        }
        let hasPort = rest.hasPrefix("[") ? rest.contains("]:") : rest.contains(":")
        guard let address = ListenAddress.parse(hasPort ? rest : rest + ":\(defaultPort)"), address.port > 0 else {
            throw UsageError(
                "expected a nats://HOST:PORT URL with a port in 1...65535, found \"\(text.prefix(200))\"",
                setting: setting)
        }
        return (address.host, address.port)
    }

    /// JetStream takes more, but a stream name also goes into API subjects: keep to a safe set.
    static func isStreamName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy(isTokenByte)
    }

    static func isSubjectPrefix(_ prefix: String) -> Bool {
        guard !prefix.isEmpty, prefix.utf8.count <= 128 else { return false }
        let tokens = prefix.split(separator: ".", omittingEmptySubsequences: false)
        return tokens.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy(isTokenByte) }
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }

    /// A secret file's contents without the trailing newline; never shown in errors.
    static func secret(from path: String, setting: String) throws(UsageError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("cannot read \(path)", setting: setting)
        }
        guard data.count <= 4096, let text = String(data: data, encoding: .utf8) else {
            throw UsageError("\(path) is not UTF-8 text of at most 4096 bytes", setting: setting)
        }
        let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !secret.isEmpty else { throw UsageError("\(path) is empty", setting: setting) }
        guard !secret.contains(where: { $0.isNewline || $0 == "\u{0}" }) else {
            throw UsageError("\(path) must hold one line", setting: setting)
        }
        return secret
    }
}
