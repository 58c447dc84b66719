/// The MQTT protocol level a connection speaks: 3.1.1 (level 4) or 5.0 (level 5).
package enum MQTTVersion: UInt8, Sendable, CaseIterable {
    case v311 = 4
    case v5 = 5

    /// `"3.1.1"` or `"5"`, as the configuration spells it.
    package init?(name: String) {
        switch name {
        case "3.1.1", "4": self = .v311
        case "5", "5.0": self = .v5
        default: return nil
        }
    }

    package var name: String { self == .v311 ? "3.1.1" : "5" }
}

/// An application message the broker delivered.
package struct MQTTPublish: Sendable, Equatable {
    /// The topic name's bytes (valid UTF-8 without wildcards or U+0000: the decoder checks).
    package var topic: [UInt8]
    package var payload: [UInt8]
    package var qos: UInt8
    /// Present for QoS 1 and 2 (never 0).
    package var packetID: UInt16?
    /// Set by the broker on a redelivery of a message it may have sent before.
    package var isDuplicate: Bool
    package var isRetained: Bool

    package init(
        topic: [UInt8], payload: [UInt8], qos: UInt8 = 0, packetID: UInt16? = nil, isDuplicate: Bool = false,
        isRetained: Bool = false
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.packetID = packetID
        self.isDuplicate = isDuplicate
        self.isRetained = isRetained
    }
}

/// A control packet a client receives from a broker (the decoder refuses the client-to-server
/// kinds and QoS 2's handshake, which this client never asks for).
package enum MQTTPacket: Sendable, Equatable {
    /// `reasonCode` is 3.1.1's return code or 5's reason code (0: accepted).
    case connack(sessionPresent: Bool, reasonCode: UInt8, serverKeepAlive: UInt16?)
    case publish(MQTTPublish)
    /// The broker's acknowledgement of a QoS 1 message the client published (test publisher, benchmark).
    case puback(packetID: UInt16, reasonCode: UInt8)
    case suback(packetID: UInt16, reasonCodes: [UInt8])
    case pingresp
    /// MQTT 5 only: the broker closes the connection, saying why.
    case disconnect(reasonCode: UInt8)
}

/// A malformed or unexpected packet, or a protocol violation: what is wrong and in which packet.
/// The connection must be closed; the session state of the broker says what is redelivered.
package struct MQTTProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    package var message: String

    package init(_ message: String) { self.message = message }

    package var description: String { message }
}

/// The packets this client sends, as bytes (MQTT 3.1.1 and 5.0).
package enum MQTTPacketEncoder {
    /// What CONNECT carries.
    package struct Connect: Sendable, Equatable {
        package var version: MQTTVersion
        package var clientID: String
        package var keepAliveSeconds: UInt16
        /// false asks the broker to resume the stored session (3.1.1 "clean session", 5 "clean start").
        package var cleanStart: Bool
        /// MQTT 5: how long the broker keeps the session after a disconnect (3.1.1 keeps it until a
        /// clean connect).
        package var sessionExpirySeconds: UInt32
        /// MQTT 5: most QoS 1 messages the broker may have unacknowledged towards this client.
        package var receiveMaximum: UInt16
        package var username: String?
        package var password: [UInt8]?

        package init(
            version: MQTTVersion, clientID: String, keepAliveSeconds: UInt16 = 30, cleanStart: Bool = false,
            sessionExpirySeconds: UInt32 = 0, receiveMaximum: UInt16 = 65535, username: String? = nil,
            password: [UInt8]? = nil
        ) {
            self.version = version
            self.clientID = clientID
            self.keepAliveSeconds = keepAliveSeconds
            self.cleanStart = cleanStart
            self.sessionExpirySeconds = sessionExpirySeconds
            self.receiveMaximum = receiveMaximum
            self.username = username
            self.password = password
        }
    }

    package static func connect(_ connect: Connect) -> [UInt8] {
        var body: [UInt8] = []
        appendString(Array("MQTT".utf8), to: &body)
        body.append(connect.version.rawValue)
        var flags: UInt8 = connect.cleanStart ? 0x02 : 0
        if connect.username != nil { flags |= 0x80 }
        if connect.password != nil { flags |= 0x40 }
        body.append(flags)
        appendUInt16(connect.keepAliveSeconds, to: &body)
        if connect.version == .v5 {
            var properties: [UInt8] = []
            if connect.sessionExpirySeconds > 0 {
                properties.append(0x11)
                appendUInt32(connect.sessionExpirySeconds, to: &properties)
            }
            if connect.receiveMaximum != 65535 {
                properties.append(0x21)
                appendUInt16(connect.receiveMaximum, to: &properties)
            }
            appendVariableInteger(properties.count, to: &body)
            body += properties
        }
        appendString(Array(connect.clientID.utf8), to: &body)
        if let username = connect.username { appendString(Array(username.utf8), to: &body) }
        if let password = connect.password { appendString(password, to: &body) }
        return packet(0x10, body)
    }

    /// SUBSCRIBE for `filters`, each at most at `qos`.
    package static func subscribe(packetID: UInt16, filters: [String], qos: UInt8, version: MQTTVersion) -> [UInt8] {
        var body: [UInt8] = []
        appendUInt16(packetID, to: &body)
        if version == .v5 { body.append(0) }
        for filter in filters {
            appendString(Array(filter.utf8), to: &body)
            // MQTT 5 retain handling 1: retained messages only when the subscription is new, so a
            // reconnect to the persistent session does not store them again.
            body.append(qos & 0x03 | (version == .v5 ? 0x10 : 0))
        }
        return packet(0x82, body)
    }

    /// PUBLISH (the tests' publisher and the benchmark's; the agent only subscribes).
    package static func publish(_ message: MQTTPublish, version: MQTTVersion) -> [UInt8] {
        var body: [UInt8] = []
        appendString(message.topic, to: &body)
        if message.qos > 0 { appendUInt16(message.packetID ?? 1, to: &body) }
        if version == .v5 { body.append(0) }
        body += message.payload
        let flags = (message.isDuplicate ? 0x08 : 0) | (message.qos & 0x03) << 1 | (message.isRetained ? 1 : 0)
        return packet(0x30 | flags, body)
    }

    /// PUBACK with success (the 5.0 reason code 0 and empty properties may be left out).
    package static func puback(packetID: UInt16) -> [UInt8] {
        [0x40, 0x02, UInt8(packetID >> 8), UInt8(packetID & 0xFF)]
    }

    /// Appends PUBACKs for many messages into one buffer, for one write.
    package static func appendPuback(packetID: UInt16, to out: inout [UInt8]) {
        out += [0x40, 0x02, UInt8(packetID >> 8), UInt8(packetID & 0xFF)]
    }

    package static let pingreq: [UInt8] = [0xC0, 0x00]
    /// A normal disconnect (5.0: reason 0 and no properties, which a zero length means).
    package static let disconnect: [UInt8] = [0xE0, 0x00]

    // MARK: Primitives

    static func packet(_ first: UInt8, _ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [first]
        out.reserveCapacity(body.count + 5)
        appendVariableInteger(body.count, to: &out)
        out += body
        return out
    }

    /// The variable byte integer: 7 bits per byte, least significant first, high bit "more follows".
    static func appendVariableInteger(_ value: Int, to out: inout [UInt8]) {
        precondition(value >= 0 && value <= MQTTPacketDecoder.maximumVariableInteger, "not a variable byte integer")
        var rest = value
        repeat {
            var byte = UInt8(rest & 0x7F)
            rest >>= 7
            if rest > 0 { byte |= 0x80 }
            out.append(byte)
        } while rest > 0
    }

    static func appendUInt16(_ value: UInt16, to out: inout [UInt8]) {
        out.append(UInt8(value >> 8))
        out.append(UInt8(value & 0xFF))
    }

    static func appendUInt32(_ value: UInt32, to out: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8((value >> UInt32(shift)) & 0xFF)) }
    }

    /// A two-byte length, then the bytes (strings and binary data alike).
    static func appendString(_ bytes: [UInt8], to out: inout [UInt8]) {
        precondition(bytes.count <= 65535, "MQTT strings hold at most 65535 bytes")
        appendUInt16(UInt16(bytes.count), to: &out)
        out += bytes
    }
}
