/// An incremental decoder of the packets a broker sends a client: bytes in, packets out, no I/O.
///
/// Feed bytes as they arrive with `append(_:)` in any chunking, then call `next()` until it returns
/// `nil` ("need more bytes"). The first error puts the decoder in a failed state: every later
/// `next()` throws the same error, because after a framing error the start of the next packet is
/// unknowable and the connection must be closed.
///
/// Limits are checked before anything is buffered for them: a remaining length above
/// `maximumPacketBytes` fails as soon as its length field has arrived, so a hostile broker cannot
/// make the client hold more than one packet's worth of bytes.
package struct MQTTPacketDecoder: Sendable {
    package struct Limits: Sendable, Equatable {
        /// Largest remaining length (everything after the fixed header) accepted.
        package var maximumPacketBytes = 1 << 20
        /// Longest topic name in bytes.
        package var maximumTopicBytes = 1024

        package init(maximumPacketBytes: Int = 1 << 20, maximumTopicBytes: Int = 1024) {
            self.maximumPacketBytes = maximumPacketBytes
            self.maximumTopicBytes = maximumTopicBytes
        }
    }

    /// 268,435,455: the largest value four bytes of variable byte integer hold.
    package static let maximumVariableInteger = 0x0FFF_FFFF

    package let version: MQTTVersion
    package let limits: Limits
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var failure: MQTTProtocolError?

    package init(version: MQTTVersion, limits: Limits = Limits()) {
        self.version = version
        self.limits = limits
    }

    /// Bytes appended but not yet consumed.
    package var bufferedByteCount: Int { buffer.count - readIndex }

    package mutating func append(_ bytes: some Sequence<UInt8>) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    package mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        buffer.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
    }

    private mutating func compact() {
        guard readIndex > 0 else { return }
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 256 << 10)
            readIndex = 0
        } else if readIndex >= 4096 && readIndex * 2 >= buffer.count {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }

    /// The next whole packet, or `nil` when more bytes are needed.
    package mutating func next() throws(MQTTProtocolError) -> MQTTPacket? {
        if let failure { throw failure }
        do {
            return try step()
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func step() throws(MQTTProtocolError) -> MQTTPacket? {
        let available = buffer.count - readIndex
        guard available >= 2 else { return nil }
        // The remaining length: one to four bytes after the first.
        var length = 0
        var headerBytes = 1
        while true {
            guard headerBytes < available else { return nil }
            let byte = buffer[readIndex + headerBytes]
            length |= Int(byte & 0x7F) << (7 * (headerBytes - 1))
            headerBytes += 1
            if byte & 0x80 == 0 { break }
            guard headerBytes <= 4 else {
                throw MQTTProtocolError("packet header: the remaining length takes more than four bytes")
            }
        }
        let first = buffer[readIndex]
        guard length <= limits.maximumPacketBytes else {
            throw MQTTProtocolError(
                "\(Self.name(of: first >> 4)): remaining length \(length) exceeds the limit of \(limits.maximumPacketBytes) bytes"
            )
        }
        guard available - headerBytes >= length else { return nil }
        let start = readIndex + headerBytes
        let body = buffer[start..<start + length]
        readIndex = start + length
        return try decode(first: first, body: body)
    }

    private func decode(first: UInt8, body: ArraySlice<UInt8>) throws(MQTTProtocolError) -> MQTTPacket {
        let type = first >> 4
        let flags = first & 0x0F
        let name = Self.name(of: type)
        var reader = Reader(bytes: body, packet: name)
        guard [2, 3, 4, 9, 13, 14].contains(type) else {
            throw MQTTProtocolError("\(name): not a packet this client accepts from a broker")
        }
        if type != 3, flags != 0 {
            throw MQTTProtocolError("\(name): reserved flags 0x\(String(flags, radix: 16)) must be 0")
        }
        switch type {
        case 2:
            let acknowledgeFlags = try reader.byte("acknowledge flags")
            guard acknowledgeFlags & 0xFE == 0 else {
                throw MQTTProtocolError("CONNACK: reserved acknowledge flag bits are set")
            }
            let code = try reader.byte("reason code")
            var keepAlive: UInt16?
            if version == .v5 {
                let properties = try reader.properties()
                keepAlive = properties.serverKeepAlive
            }
            try reader.expectEnd()
            return .connack(sessionPresent: acknowledgeFlags == 1, reasonCode: code, serverKeepAlive: keepAlive)

        case 3:
            let qos = (flags >> 1) & 0x03
            guard qos < 3 else { throw MQTTProtocolError("PUBLISH: QoS 3 does not exist") }
            let isDuplicate = flags & 0x08 != 0
            guard qos > 0 || !isDuplicate else { throw MQTTProtocolError("PUBLISH: DUP set on a QoS 0 message") }
            let topic = try reader.string("topic name", maximumBytes: limits.maximumTopicBytes)
            guard !topic.isEmpty else {
                // MQTT 5 allows an empty topic with a topic alias; this client allows no aliases.
                throw MQTTProtocolError("PUBLISH: empty topic name")
            }
            guard !topic.contains(where: { $0 == 0x2B || $0 == 0x23 }) else {
                throw MQTTProtocolError("PUBLISH: the topic name contains a wildcard (+ or #)")
            }
            var packetID: UInt16?
            if qos > 0 {
                let id = try reader.uInt16("packet identifier")
                guard id != 0 else { throw MQTTProtocolError("PUBLISH: packet identifier 0") }
                packetID = id
            }
            if version == .v5 {
                let properties = try reader.properties()
                guard !properties.hasTopicAlias else {
                    throw MQTTProtocolError("PUBLISH: a topic alias, but the client allows none")
                }
            }
            return .publish(
                MQTTPublish(
                    topic: topic, payload: Array(reader.rest()), qos: qos, packetID: packetID,
                    isDuplicate: isDuplicate, isRetained: flags & 0x01 != 0))

        case 4:
            let id = try reader.uInt16("packet identifier")
            var code: UInt8 = 0
            if version == .v5, !reader.isAtEnd {
                code = try reader.byte("reason code")
                if !reader.isAtEnd { _ = try reader.properties() }
            }
            try reader.expectEnd()
            return .puback(packetID: id, reasonCode: code)

        case 9:
            let id = try reader.uInt16("packet identifier")
            if version == .v5 { _ = try reader.properties() }
            let codes = Array(reader.rest())
            guard !codes.isEmpty else { throw MQTTProtocolError("SUBACK: no reason codes") }
            return .suback(packetID: id, reasonCodes: codes)

        case 13:
            try reader.expectEnd()
            return .pingresp

        case 14:
            guard version == .v5 else { throw MQTTProtocolError("DISCONNECT: a 3.1.1 broker never sends one") }
            var code: UInt8 = 0
            if !reader.isAtEnd {
                code = try reader.byte("reason code")
                if !reader.isAtEnd { _ = try reader.properties() }
            }
            try reader.expectEnd()
            return .disconnect(reasonCode: code)

        default:
            throw MQTTProtocolError("\(name): not a packet this client accepts from a broker")
        }
    }

    static func name(of type: UInt8) -> String {
        switch type {
        case 1: "CONNECT"
        case 2: "CONNACK"
        case 3: "PUBLISH"
        case 4: "PUBACK"
        case 5: "PUBREC"
        case 6: "PUBREL"
        case 7: "PUBCOMP"
        case 8: "SUBSCRIBE"
        case 9: "SUBACK"
        case 10: "UNSUBSCRIBE"
        case 11: "UNSUBACK"
        case 12: "PINGREQ"
        case 13: "PINGRESP"
        case 14: "DISCONNECT"
        case 15: "AUTH"
        default: "packet type 0"
        }
    }
}

/// The MQTT 5 properties this client looks at; the rest are checked for form and skipped.
struct MQTTProperties {
    var serverKeepAlive: UInt16?
    var hasTopicAlias = false
}

/// Reads the fields of one packet's body, failing with the packet's name and the field's.
private struct Reader {
    var bytes: ArraySlice<UInt8>
    let packet: String

    init(bytes: ArraySlice<UInt8>, packet: String) {
        self.bytes = bytes
        self.packet = packet
    }

    var isAtEnd: Bool { bytes.isEmpty }

    func truncated(_ field: String) -> MQTTProtocolError {
        MQTTProtocolError("\(packet): truncated in the \(field)")
    }

    mutating func byte(_ field: String) throws(MQTTProtocolError) -> UInt8 {
        guard let byte = bytes.first else { throw truncated(field) }
        bytes = bytes.dropFirst()
        return byte
    }

    mutating func uInt16(_ field: String) throws(MQTTProtocolError) -> UInt16 {
        guard bytes.count >= 2 else { throw truncated(field) }
        let value = UInt16(bytes[bytes.startIndex]) << 8 | UInt16(bytes[bytes.startIndex + 1])
        bytes = bytes.dropFirst(2)
        return value
    }

    mutating func uInt32(_ field: String) throws(MQTTProtocolError) -> UInt32 {
        guard bytes.count >= 4 else { throw truncated(field) }
        var value: UInt32 = 0
        for byte in bytes.prefix(4) { value = value << 8 | UInt32(byte) }
        bytes = bytes.dropFirst(4)
        return value
    }

    mutating func variableInteger(_ field: String) throws(MQTTProtocolError) -> Int {
        var value = 0
        for index in 0..<4 {
            let byte = try self.byte(field)
            value |= Int(byte & 0x7F) << (7 * index)
            if byte & 0x80 == 0 { return value }
        }
        throw MQTTProtocolError("\(packet): the \(field) takes more than four bytes")
    }

    /// Two-byte length and binary data.
    mutating func binary(_ field: String) throws(MQTTProtocolError) -> ArraySlice<UInt8> {
        let count = Int(try uInt16(field))
        guard bytes.count >= count else { throw truncated(field) }
        let value = bytes.prefix(count)
        bytes = bytes.dropFirst(count)
        return value
    }

    /// A UTF-8 string: well-formed, without U+0000 (MQTT 1.5.4).
    mutating func string(_ field: String, maximumBytes: Int = 65535) throws(MQTTProtocolError) -> [UInt8] {
        let value = try binary(field)
        guard value.count <= maximumBytes else {
            throw MQTTProtocolError(
                "\(packet): the \(field) is \(value.count) bytes, more than the limit of \(maximumBytes)")
        }
        guard !value.contains(0), String(validating: value, as: UTF8.self) != nil else {
            throw MQTTProtocolError("\(packet): the \(field) is not valid UTF-8 without U+0000")
        }
        return Array(value)
    }

    mutating func rest() -> ArraySlice<UInt8> {
        defer { bytes = bytes[bytes.endIndex...] }
        return bytes
    }

    func expectEnd() throws(MQTTProtocolError) {
        guard bytes.isEmpty else { throw MQTTProtocolError("\(packet): \(bytes.count) bytes after the last field") }
    }

    /// A property length and the properties it covers (MQTT 5 section 2.2.2).
    mutating func properties() throws(MQTTProtocolError) -> MQTTProperties {
        let length = try variableInteger("property length")
        guard bytes.count >= length else { throw truncated("properties") }
        var inner = Reader(bytes: bytes.prefix(length), packet: packet)
        bytes = bytes.dropFirst(length)
        var properties = MQTTProperties()
        while !inner.isAtEnd {
            let identifier = try inner.variableInteger("property identifier")
            switch identifier {
            case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A:
                _ = try inner.byte("property 0x\(String(identifier, radix: 16))")
            case 0x02, 0x11, 0x18, 0x27:
                _ = try inner.uInt32("property 0x\(String(identifier, radix: 16))")
            case 0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F:
                _ = try inner.string("property 0x\(String(identifier, radix: 16))")
            case 0x09, 0x16:
                _ = try inner.binary("property 0x\(String(identifier, radix: 16))")
            case 0x0B:
                _ = try inner.variableInteger("subscription identifier")
            case 0x13:
                properties.serverKeepAlive = try inner.uInt16("server keep alive")
            case 0x21, 0x22:
                _ = try inner.uInt16("property 0x\(String(identifier, radix: 16))")
            case 0x23:
                _ = try inner.uInt16("topic alias")
                properties.hasTopicAlias = true
            case 0x26:
                _ = try inner.string("user property name")
                _ = try inner.string("user property value")
            default:
                throw MQTTProtocolError("\(packet): unknown property identifier 0x\(String(identifier, radix: 16))")
            }
        }
        return properties
    }
}
