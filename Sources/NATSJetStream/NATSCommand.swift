import Foundation

/// What a NATS client sends, as bytes. Subjects and header fields are checked first: a space or a
/// line break in a subject would let a value choose the next protocol line.
package enum NATSCommand {
    package struct Invalid: Error, Equatable, CustomStringConvertible {
        package var description: String
        package init(_ description: String) { self.description = description }
    }

    /// The options of `CONNECT`. Credentials are optional; headers and no-responders are always
    /// asked for, since JetStream publishing relies on both.
    package struct ConnectOptions: Sendable, Equatable {
        package var name: String
        package var version: String
        package var token: String?
        package var user: String?
        package var password: String?

        package init(name: String, version: String, token: String? = nil, user: String? = nil, password: String? = nil) {
            self.name = name
            self.version = version
            self.token = token
            self.user = user
            self.password = password
        }
    }

    package static let ping: [UInt8] = Array("PING\r\n".utf8)
    package static let pong: [UInt8] = Array("PONG\r\n".utf8)

    package static func connect(_ options: ConnectOptions) -> [UInt8] {
        var object: [String: Any] = [
            "verbose": false, "pedantic": false, "lang": "swift", "protocol": 1, "headers": true,
            "no_responders": true, "name": options.name, "version": options.version,
        ]
        if let token = options.token { object["auth_token"] = token }
        if let user = options.user { object["user"] = user }
        if let password = options.password { object["pass"] = password }
        // Values are escaped by the serializer, so a password cannot end the line.
        let json = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Array("CONNECT ".utf8) + Array(json) + [13, 10]
    }

    /// `SUB <subject> <sid>`; the subject may hold wildcards.
    package static func subscribe(_ subject: String, sid: String) throws(Invalid) -> [UInt8] {
        try checkSubject(subject, wildcards: true)
        guard isToken(sid) else { throw Invalid("subscription id '\(sid)' is not a token") }
        return Array("SUB \(subject) \(sid)\r\n".utf8)
    }

    /// `PUB` without headers, `HPUB` with them (each name a token, each value one line).
    package static func publish(
        _ subject: String, replyTo: String? = nil, headers: [(name: String, value: String)] = [], payload: [UInt8]
    ) throws(Invalid) -> [UInt8] {
        try checkSubject(subject, wildcards: false)
        if let replyTo { try checkSubject(replyTo, wildcards: false) }
        let reply = replyTo.map { " " + $0 } ?? ""
        guard !headers.isEmpty else {
            return Array("PUB \(subject)\(reply) \(payload.count)\r\n".utf8) + payload + [13, 10]
        }
        var block = "NATS/1.0\r\n"
        for (name, value) in headers {
            guard isHeaderName(name) else { throw Invalid("header name '\(name)' is not a token") }
            guard !value.utf8.contains(where: { $0 == 13 || $0 == 10 }) else {
                throw Invalid("header \(name) has a line break in its value")
            }
            block += "\(name): \(value)\r\n"
        }
        block += "\r\n"
        let headerBytes = Array(block.utf8)
        return Array("HPUB \(subject)\(reply) \(headerBytes.count) \(headerBytes.count + payload.count)\r\n".utf8)
            + headerBytes + payload + [13, 10]
    }

    /// A subject: dot-separated tokens, none empty, no spaces or control characters; `*` and `>`
    /// only as whole tokens and only where wildcards are allowed (`>` last).
    package static func checkSubject(_ subject: String, wildcards: Bool) throws(Invalid) {
        let tokens = subject.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard !subject.isEmpty, subject.utf8.count <= 1024 else { throw Invalid("subject must be 1 to 1024 bytes") }
        for (index, token) in tokens.enumerated() {
            guard !token.isEmpty else { throw Invalid("subject '\(subject)' has an empty token") }
            guard !token.contains(where: { $0 <= 32 || $0 == 127 }) else {
                throw Invalid("subject '\(subject.debugDescription)' has a space or control character")
            }
            let isWildcard = token.elementsEqual("*".utf8) || token.elementsEqual(">".utf8)
            if isWildcard {
                guard wildcards else { throw Invalid("subject '\(subject)' has a wildcard") }
                if token.elementsEqual(">".utf8), index != tokens.count - 1 {
                    throw Invalid("subject '\(subject)' has '>' before its last token")
                }
            } else if token.contains(where: { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: ">") }) {
                throw Invalid("subject '\(subject)' has a wildcard inside a token")
            }
        }
    }

    private static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 > 32 && $0 < 127 }
    }

    private static func isHeaderName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }
    }
}
