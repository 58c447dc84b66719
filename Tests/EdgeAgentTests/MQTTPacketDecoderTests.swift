import Testing

@testable import EdgeAgent

/// A packet as a broker sends it, built by hand from the specification's layout.
private func frame(_ first: UInt8, _ body: [UInt8]) -> [UInt8] {
    MQTTPacketEncoder.packet(first, body)
}

private func string(_ text: String) -> [UInt8] {
    let bytes = Array(text.utf8)
    return [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
}

/// Every packet kind the client accepts, in both protocol versions, with what it must decode to.
private func validStream(_ version: MQTTVersion) -> (bytes: [UInt8], packets: [MQTTPacket]) {
    let v5 = version == .v5
    var bytes: [UInt8] = []
    var packets: [MQTTPacket] = []
    // CONNACK, session present; 5.0 with a server keep alive and a reason string.
    bytes += frame(0x20, [0x01, 0x00] + (v5 ? [0x07, 0x13, 0x00, 0x3C, 0x1F, 0x00, 0x01, 0x78] : []))
    packets.append(.connack(sessionPresent: true, reasonCode: 0, serverKeepAlive: v5 ? 60 : nil))
    // SUBACK granting QoS 1 and 0.
    bytes += frame(0x90, [0x00, 0x07] + (v5 ? [0x00] : []) + [0x01, 0x00])
    packets.append(.suback(packetID: 7, reasonCodes: [1, 0]))
    // PUBLISH QoS 0, retained.
    bytes += frame(0x31, string("sensors/a/t") + (v5 ? [0x00] : []) + Array("21.5".utf8))
    packets.append(
        .publish(MQTTPublish(topic: Array("sensors/a/t".utf8), payload: Array("21.5".utf8), isRetained: true)))
    // PUBLISH QoS 1, DUP, with 5.0 properties (message expiry, user property, content type).
    let properties: [UInt8] =
        v5 ? [0x02, 0x00, 0x00, 0x00, 0x0A] + [0x26] + string("k") + string("v") + [0x03] + string("text/plain") : []
    bytes += frame(
        0x3A, string("s/ü") + [0x12, 0x34] + (v5 ? [UInt8(properties.count)] + properties : []) + [0xFF, 0x00])
    packets.append(
        .publish(
            MQTTPublish(topic: Array("s/ü".utf8), payload: [0xFF, 0x00], qos: 1, packetID: 0x1234, isDuplicate: true)))
    // PUBLISH QoS 1 with an empty payload.
    bytes += frame(0x32, string("t") + [0x00, 0x01] + (v5 ? [0x00] : []))
    packets.append(.publish(MQTTPublish(topic: Array("t".utf8), payload: [], qos: 1, packetID: 1)))
    // PUBACK (for a client that publishes), PINGRESP.
    bytes += frame(0x40, [0x00, 0x09] + (v5 ? [0x10, 0x00] : []))
    packets.append(.puback(packetID: 9, reasonCode: v5 ? 0x10 : 0))
    bytes += frame(0xD0, [])
    packets.append(.pingresp)
    if v5 {
        bytes += frame(0xE0, [0x8B, 0x00])
        packets.append(.disconnect(reasonCode: 0x8B))
    }
    return (bytes, packets)
}

private func decodeAll(_ chunks: [ArraySlice<UInt8>], version: MQTTVersion, limits: MQTTPacketDecoder.Limits = .init())
    -> (packets: [MQTTPacket], error: MQTTProtocolError?)
{
    var decoder = MQTTPacketDecoder(version: version, limits: limits)
    var packets: [MQTTPacket] = []
    for chunk in chunks {
        decoder.append(chunk)
        do {
            while let packet = try decoder.next() { packets.append(packet) }
        } catch {
            return (packets, error)
        }
    }
    return (packets, nil)
}

@Suite struct MQTTPacketDecoderTests {
    @Test(arguments: MQTTVersion.allCases) func decodesEveryPacketKindAtEverySplit(_ version: MQTTVersion) {
        let (bytes, expected) = validStream(version)
        let whole = decodeAll([bytes[...]], version: version)
        #expect(whole.error == nil)
        #expect(whole.packets == expected)
        for split in 0...bytes.count {
            let parts = decodeAll([bytes[..<split], bytes[split...]], version: version)
            #expect(parts.packets == expected, "split at \(split)")
            #expect(parts.error == nil)
        }
        let single = decodeAll(bytes.indices.map { bytes[$0...$0] }, version: version)
        #expect(single.packets == expected)
    }

    @Test(arguments: MQTTVersion.allCases) func aTruncatedPacketWaitsForMoreAndNeverFails(_ version: MQTTVersion) {
        let (bytes, _) = validStream(version)
        for end in 0..<bytes.count {
            var decoder = MQTTPacketDecoder(version: version)
            decoder.append(bytes[..<end])
            #expect(throws: Never.self) {
                while try decoder.next() != nil {}
            }
        }
    }

    @Test func theEncodersPublishDecodesBack() throws {
        for version in MQTTVersion.allCases {
            let message = MQTTPublish(
                topic: Array("a/b".utf8), payload: Array("1".utf8), qos: 1, packetID: 513, isDuplicate: true)
            var decoder = MQTTPacketDecoder(version: version)
            decoder.append(MQTTPacketEncoder.publish(message, version: version))
            #expect(try decoder.next() == .publish(message))
            #expect(decoder.bufferedByteCount == 0)
        }
    }

    /// Malformed packets, each with the words its error must contain.
    private static let malformed: [(name: String, version: MQTTVersion, bytes: [UInt8], says: String)] = [
        ("remaining length of five bytes", .v311, [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], "more than four bytes"),
        ("reserved flags on CONNACK", .v311, [0x21, 0x02, 0x00, 0x00], "reserved flags"),
        ("reserved acknowledge flag bits", .v311, [0x20, 0x02, 0x02, 0x00], "acknowledge flag"),
        ("CONNACK with a byte too many", .v311, [0x20, 0x03, 0x00, 0x00, 0x00], "after the last field"),
        ("CONNACK truncated", .v311, [0x20, 0x01, 0x00], "truncated in the reason code"),
        ("QoS 3", .v311, frame(0x36, string("t") + [0, 1]), "QoS 3"),
        ("DUP on QoS 0", .v311, frame(0x38, string("t")), "DUP set on a QoS 0"),
        ("packet identifier 0", .v311, frame(0x32, string("t") + [0, 0]), "packet identifier 0"),
        ("wildcard in a topic name", .v311, frame(0x30, string("a/+")), "wildcard"),
        ("hash in a topic name", .v311, frame(0x30, string("a/#")), "wildcard"),
        ("empty topic", .v5, frame(0x30, string("") + [0x00]), "empty topic"),
        ("topic not UTF-8", .v311, frame(0x30, [0x00, 0x02, 0xC3, 0x28]), "not valid UTF-8"),
        ("NUL in a topic", .v311, frame(0x30, [0x00, 0x02, 0x61, 0x00]), "not valid UTF-8"),
        ("topic length past the packet", .v311, frame(0x30, [0x00, 0x09, 0x61]), "truncated in the topic name"),
        ("identifier cut short", .v311, frame(0x32, string("t") + [0x01]), "truncated in the packet identifier"),
        ("topic alias", .v5, frame(0x30, string("t") + [0x03, 0x23, 0x00, 0x01]), "topic alias"),
        ("unknown property", .v5, frame(0x30, string("t") + [0x02, 0x7F, 0x00]), "unknown property"),
        (
            "property length past the packet", .v5, frame(0x30, string("t") + [0x05, 0x01]),
            "truncated in the properties"
        ),
        ("property value cut short", .v5, frame(0x30, string("t") + [0x02, 0x02, 0x00]), "truncated"),
        ("bad UTF-8 in a string property", .v5, frame(0x30, string("t") + [0x04, 0x03, 0x00, 0x01, 0xFF]), "UTF-8"),
        ("SUBACK without reason codes", .v311, frame(0x90, [0x00, 0x01]), "no reason codes"),
        ("PINGRESP with a body", .v311, frame(0xD0, [0x00]), "after the last field"),
        ("DISCONNECT from a 3.1.1 broker", .v311, frame(0xE0, []), "never sends"),
        ("CONNECT from a broker", .v311, frame(0x10, [0x00]), "not a packet this client accepts"),
        ("SUBSCRIBE from a broker", .v311, frame(0x82, [0x00]), "not a packet this client accepts"),
        ("PUBREL (QoS 2)", .v311, frame(0x62, [0x00, 0x01]), "not a packet this client accepts"),
        ("type 0", .v311, frame(0x00, []), "not a packet this client accepts"),
    ]

    @Test(arguments: 0..<malformed.count) func refusesMalformedPacketsNamingTheProblem(_ index: Int) {
        let (name, version, bytes, says) = Self.malformed[index]
        let outcome = decodeAll([bytes[...]], version: version)
        #expect(outcome.packets.isEmpty, "\(name)")
        #expect(outcome.error?.message.contains(says) == true, "\(name): \(outcome.error?.message ?? "no error")")
    }

    @Test func anOversizedPacketFailsOnItsLengthAloneBeforeItsBodyArrives() {
        var decoder = MQTTPacketDecoder(version: .v311, limits: .init(maximumPacketBytes: 1000))
        // Remaining length 1001: only the fixed header is fed.
        decoder.append([0x30, 0xE9, 0x07])
        #expect(throws: MQTTProtocolError.self) { try decoder.next() }
        var large = MQTTPacketDecoder(version: .v311)
        // 268,435,455: the largest remaining length there is.
        large.append([0x30, 0xFF, 0xFF, 0xFF, 0x7F])
        #expect(throws: MQTTProtocolError("PUBLISH: remaining length 268435455 exceeds the limit of 1048576 bytes")) {
            try large.next()
        }
    }

    @Test func aTopicOverTheLimitIsRefused() {
        let topic = String(repeating: "a", count: 65)
        let outcome = decodeAll(
            [frame(0x30, string(topic) + [0x31])[...]], version: .v311, limits: .init(maximumTopicBytes: 64))
        #expect(outcome.error?.message.contains("65 bytes, more than the limit of 64") == true)
    }

    @Test func theFirstErrorSticksEvenWhenGoodBytesFollow() {
        var decoder = MQTTPacketDecoder(version: .v311)
        decoder.append(frame(0x21, [0x00, 0x00]))
        let first = #expect(throws: MQTTProtocolError.self) { try decoder.next() }
        decoder.append(frame(0xD0, []))
        let again = #expect(throws: MQTTProtocolError.self) { try decoder.next() }
        #expect(first == again)
    }

    @Test func variableIntegersRoundTripAtTheirBoundaries() {
        for value in [0, 127, 128, 16383, 16384, 2_097_151, 2_097_152, MQTTPacketDecoder.maximumVariableInteger] {
            var bytes: [UInt8] = []
            MQTTPacketEncoder.appendVariableInteger(value, to: &bytes)
            let expectedCount = value < 128 ? 1 : value < 16384 ? 2 : value < 2_097_152 ? 3 : 4
            #expect(bytes.count == expectedCount)
            var decoded = 0
            for (index, byte) in bytes.enumerated() { decoded |= Int(byte & 0x7F) << (7 * index) }
            #expect(decoded == value)
        }
    }

    @Test func connectCarriesTheSessionSettings() {
        let bytes = MQTTPacketEncoder.connect(
            .init(
                version: .v5, clientID: "gw", keepAliveSeconds: 30, cleanStart: false, sessionExpirySeconds: 3600,
                receiveMaximum: 100, username: "u", password: Array("p".utf8)))
        // Fixed header, "MQTT", level 5, flags (user name, password, no clean start), keep alive 30,
        // properties (session expiry 3600, receive maximum 100), client id, user name, password.
        let body: [UInt8] =
            string("MQTT") + [0x05, 0xC0, 0x00, 0x1E, 0x08, 0x11, 0x00, 0x00, 0x0E, 0x10, 0x21, 0x00, 0x64]
            + string("gw") + string("u") + string("p")
        #expect(bytes == [0x10, UInt8(body.count)] + body)
        let v3 = MQTTPacketEncoder.connect(
            .init(version: .v311, clientID: "gw", keepAliveSeconds: 10, cleanStart: true))
        #expect(v3 == [0x10, 14] + string("MQTT") + [0x04, 0x02, 0x00, 0x0A] + string("gw"))
    }
}
