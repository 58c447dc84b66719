import Foundation

/// What a NATS server sends a client (the client protocol, version 1 with headers).
package enum NATSServerOperation: Equatable, Sendable {
    case info(NATSServerInfo)
    case message(NATSMessage)
    case ok
    /// `-ERR 'reason'`, with the quotes removed.
    case error(String)
    case ping
    case pong
}

/// The fields of `INFO` a client acts on; the others are ignored.
package struct NATSServerInfo: Equatable, Sendable, Decodable {
    package var serverID: String?
    package var version: String?
    /// Largest payload (headers included) the server accepts, bytes.
    package var maximumPayload: Int?
    package var supportsHeaders: Bool?
    package var requiresAuthentication: Bool?
    package var requiresTLS: Bool?
    package var supportsJetStream: Bool?

    enum CodingKeys: String, CodingKey {
        case serverID = "server_id", version, maximumPayload = "max_payload", supportsHeaders = "headers"
        case requiresAuthentication = "auth_required", requiresTLS = "tls_required", supportsJetStream = "jetstream"
    }

    package init(
        serverID: String? = nil, version: String? = nil, maximumPayload: Int? = nil, supportsHeaders: Bool? = nil,
        requiresAuthentication: Bool? = nil, requiresTLS: Bool? = nil, supportsJetStream: Bool? = nil
    ) {
        self.serverID = serverID
        self.version = version
        self.maximumPayload = maximumPayload
        self.supportsHeaders = supportsHeaders
        self.requiresAuthentication = requiresAuthentication
        self.requiresTLS = requiresTLS
        self.supportsJetStream = supportsJetStream
    }
}

/// A delivered message (`MSG` or `HMSG`).
package struct NATSMessage: Equatable, Sendable {
    package var subject: String
    package var subscription: String
    package var replyTo: String?
    /// The status of a headers block such as `NATS/1.0 503` (no responders), nil without one.
    package var status: Int?
    package var statusDescription: String
    package var headers: [(name: String, value: String)]
    package var payload: [UInt8]

    package init(
        subject: String, subscription: String, replyTo: String? = nil, status: Int? = nil,
        statusDescription: String = "", headers: [(name: String, value: String)] = [], payload: [UInt8]
    ) {
        self.subject = subject
        self.subscription = subscription
        self.replyTo = replyTo
        self.status = status
        self.statusDescription = statusDescription
        self.headers = headers
        self.payload = payload
    }

    package static func == (lhs: NATSMessage, rhs: NATSMessage) -> Bool {
        lhs.subject == rhs.subject && lhs.subscription == rhs.subscription && lhs.replyTo == rhs.replyTo
            && lhs.status == rhs.status && lhs.statusDescription == rhs.statusDescription
            && lhs.headers.map(\.name) == rhs.headers.map(\.name) && lhs.headers.map(\.value) == rhs.headers.map(\.value)
            && lhs.payload == rhs.payload
    }

    /// The first header called `name` (ASCII case-insensitive, as NATS compares them).
    package func header(_ name: String) -> String? {
        headers.first { $0.name.utf8.elementsEqual(name.utf8, by: { Self.lower($0) == Self.lower($1) }) }?.value
    }

    private static func lower(_ byte: UInt8) -> UInt8 { byte >= 65 && byte <= 90 ? byte + 32 : byte }
}

/// A server that broke the protocol (or exceeded a limit this client sets); the connection must
/// be dropped, as nothing after the bad bytes can be framed.
package struct NATSProtocolViolation: Error, Equatable, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
