/// The client side of one MQTT session as a pure state machine: events in (a connection opened, a
/// packet arrived, readings became durable, time passed), actions out (bytes to send, messages to
/// store, a reason to close). No I/O, no clock of its own: `MQTTInput` drives it, tests drive it
/// directly.
///
/// Delivery (QoS 1): a message is acknowledged (PUBACK) only in `stored(_:now:)`, which the input
/// calls after the spool commit of the message's readings. Until then the broker keeps the
/// message in the session and sends it again after a reconnect, so nothing it delivered is lost.
///
/// Redelivery: the broker resends a message whose PUBACK it did not get, with DUP set and the same
/// packet identifier. The session remembers, per packet identifier, a fingerprint (topic and
/// payload) of the last message it acknowledged, until the broker uses that identifier for a new
/// message (which proves the acknowledgement arrived). A DUP message with a remembered identifier and
/// fingerprint is acknowledged again without being stored. The input makes this memory durable:
/// `deliveryRecord(for:client:)` gives the pages of it that a batch of messages changes, written in
/// the spool transaction of their readings, and `restore(_:)` loads them after a restart, so a
/// message stored just before the agent was killed and redelivered after it is not stored again.
package struct MQTTSession: Sendable {
    package struct Configuration: Sendable, Equatable {
        package var connect: MQTTPacketEncoder.Connect
        package var filters: [String]
        package var qos: UInt8 = 1
        /// How long to wait for CONNACK and SUBACK.
        package var handshakeTimeout = Duration.seconds(10)

        package init(connect: MQTTPacketEncoder.Connect, filters: [String], qos: UInt8 = 1) {
            self.connect = connect
            self.filters = filters
            self.qos = qos
        }
    }

    package enum Action: Sendable, Equatable {
        case send([UInt8])
        /// Map and store these messages' readings, then call `stored(_:now:)` with them.
        case deliver(MQTTPublish)
        /// Something worth a log line (a downgraded subscription, a session the broker lost).
        case warn(String)
        /// Close the connection and reconnect after a backoff.
        case close(reason: String)
    }

    package enum Phase: Sendable, Equatable {
        case disconnected
        case awaitingConnack
        case awaitingSuback
        case ready
    }

    package struct Counters: Sendable, Equatable {
        package var messages = 0
        /// Redelivered messages acknowledged again without being stored.
        package var redeliveriesSkipped = 0
        package var connections = 0
        package var sessionsLost = 0
    }

    package let configuration: Configuration
    package private(set) var phase = Phase.disconnected
    package private(set) var counters = Counters()
    private var keepAlive: Duration
    private var openedAt: ContinuousClock.Instant?
    private var lastSent: ContinuousClock.Instant?
    private var pingSentAt: ContinuousClock.Instant?
    private var subscribeID: UInt16 = 0
    /// Delivered in this connection, not yet acknowledged.
    private var unacknowledged: Set<UInt16> = []
    /// Packet identifier → fingerprint of the last message acknowledged under it (0: none).
    private var acknowledged = [UInt32](repeating: 0, count: 65536)
    private var hasAcknowledged = false
    /// The broker started a new session: the durable record must drop its older pages.
    private var durableResetPending = false

    package init(configuration: Configuration) {
        self.configuration = configuration
        keepAlive = .seconds(Int64(configuration.connect.keepAliveSeconds))
    }

    /// A TCP connection to the broker is up: say CONNECT.
    package mutating func connectionOpened(now: ContinuousClock.Instant) -> [Action] {
        phase = .awaitingConnack
        openedAt = now
        pingSentAt = nil
        unacknowledged.removeAll()
        keepAlive = .seconds(Int64(configuration.connect.keepAliveSeconds))
        counters.connections += 1
        return [send(MQTTPacketEncoder.connect(configuration.connect), now: now)]
    }

    /// The connection ended (either side). Acknowledgement memory is kept for the redeliveries.
    package mutating func connectionClosed() {
        phase = .disconnected
        unacknowledged.removeAll()
        openedAt = nil
        pingSentAt = nil
    }

    package mutating func received(_ packet: MQTTPacket, now: ContinuousClock.Instant) -> [Action] {
        switch (phase, packet) {
        case (.disconnected, _):
            return []
        case (.awaitingConnack, .connack(let sessionPresent, let code, let serverKeepAlive)):
            guard code == 0 else {
                return [
                    .close(
                        reason:
                            "the broker refused the connection: \(Self.connectFailure(code, configuration.connect.version))"
                    )
                ]
            }
            var actions: [Action] = []
            if let serverKeepAlive { keepAlive = .seconds(Int64(serverKeepAlive)) }
            if !sessionPresent {
                // Nothing can be redelivered from a session the broker does not have.
                if counters.connections > 1 || hasAcknowledged {
                    counters.sessionsLost += 1
                    actions.append(
                        .warn(
                            "the broker has no session for this client: messages published while it was disconnected are lost unless the broker kept them"
                        ))
                }
                if hasAcknowledged || counters.connections > 1 { durableResetPending = true }
                forgetAcknowledged()
            }
            subscribeID = subscribeID == 65535 ? 1 : subscribeID + 1
            phase = .awaitingSuback
            actions.append(
                send(
                    MQTTPacketEncoder.subscribe(
                        packetID: subscribeID, filters: configuration.filters, qos: configuration.qos,
                        version: configuration.connect.version), now: now))
            return actions
        case (.awaitingSuback, .suback(let id, let codes)):
            guard id == subscribeID else {
                return [.close(reason: "SUBACK for packet \(id), expected \(subscribeID)")]
            }
            guard codes.count == configuration.filters.count else {
                return [
                    .close(reason: "SUBACK with \(codes.count) reason codes for \(configuration.filters.count) filters")
                ]
            }
            var actions: [Action] = []
            for (filter, code) in zip(configuration.filters, codes) {
                if code >= 0x80 {
                    return [
                        .close(
                            reason:
                                "the broker refused the subscription to \"\(filter)\" (reason 0x\(String(code, radix: 16)))"
                        )
                    ]
                }
                if code < configuration.qos {
                    actions.append(
                        .warn(
                            "the broker granted QoS \(code) for \"\(filter)\", not \(configuration.qos): its messages are at most once"
                        ))
                }
            }
            phase = .ready
            return actions
        case (.awaitingSuback, .publish(let message)), (.ready, .publish(let message)):
            // Queued messages may come right after CONNACK, before the SUBACK.
            return publish(message, now: now)
        case (_, .pingresp):
            pingSentAt = nil
            return []
        case (_, .disconnect(let code)):
            return [.close(reason: "the broker disconnected (reason 0x\(String(code, radix: 16)))")]
        default:
            return [.close(reason: "unexpected \(Self.describe(packet)) while \(phase)")]
        }
    }

    private mutating func publish(_ message: MQTTPublish, now: ContinuousClock.Instant) -> [Action] {
        counters.messages += 1
        switch message.qos {
        case 0:
            return [.deliver(message)]
        case 1:
            guard let id = message.packetID else {
                return [.close(reason: "PUBLISH QoS 1 without a packet identifier")]
            }
            guard !unacknowledged.contains(id) else {
                return [.close(reason: "PUBLISH reuses packet identifier \(id) before it was acknowledged")]
            }
            if message.isDuplicate, acknowledged[Int(id)] == Self.fingerprint(message) {
                counters.redeliveriesSkipped += 1
                return [send(MQTTPacketEncoder.puback(packetID: id), now: now)]
            }
            unacknowledged.insert(id)
            return [.deliver(message)]
        default:
            return [
                .close(
                    reason:
                        "PUBLISH with QoS \(message.qos), but the subscriptions asked for at most \(configuration.qos)")
            ]
        }
    }

    /// The readings of `messages` are durable: acknowledge the QoS 1 ones, in one write.
    package mutating func stored(_ messages: [MQTTPublish], now: ContinuousClock.Instant) -> [Action] {
        guard phase != .disconnected else {
            // The connection died while storing: the broker redelivers these, and they are skipped.
            for message in messages where message.qos == 1 {
                if let id = message.packetID { remember(id, message) }
            }
            return []
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(messages.count * 4)
        for message in messages where message.qos == 1 {
            guard let id = message.packetID, unacknowledged.remove(id) != nil else { continue }
            remember(id, message)
            MQTTPacketEncoder.appendPuback(packetID: id, to: &bytes)
        }
        return bytes.isEmpty ? [] : [send(bytes, now: now)]
    }

    /// Time passed: keep the connection alive, and give up on a silent broker.
    package mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        switch phase {
        case .disconnected:
            return []
        case .awaitingConnack, .awaitingSuback:
            if let openedAt, now - openedAt >= configuration.handshakeTimeout {
                return [
                    .close(
                        reason:
                            "no \(phase == .awaitingConnack ? "CONNACK" : "SUBACK") within \(configuration.handshakeTimeout)"
                    )
                ]
            }
            return []
        case .ready:
            guard keepAlive > .zero else { return [] }
            if let pingSentAt {
                // MQTT allows the broker one and a half keep-alive periods; the client waits as long.
                if now - pingSentAt >= keepAlive * 1.5 {
                    return [.close(reason: "no PINGRESP within \(keepAlive * 1.5)")]
                }
                return []
            }
            if let lastSent, now - lastSent >= keepAlive {
                pingSentAt = now
                return [send(MQTTPacketEncoder.pingreq, now: now)]
            }
            return []
        }
    }

    /// When `tick` next has something to do, at the latest.
    package var tickInterval: Duration {
        keepAlive > .zero ? min(.seconds(1), keepAlive / 2) : .seconds(1)
    }

    private mutating func send(_ bytes: [UInt8], now: ContinuousClock.Instant) -> Action {
        lastSent = now
        return .send(bytes)
    }

    private mutating func remember(_ id: UInt16, _ message: MQTTPublish) {
        acknowledged[Int(id)] = Self.fingerprint(message)
        hasAcknowledged = true
    }

    private mutating func forgetAcknowledged() {
        guard hasAcknowledged else { return }
        acknowledged = [UInt32](repeating: 0, count: 65536)
        hasAcknowledged = false
    }

    // MARK: Durable redelivery memory

    /// The pages of the redelivery memory as they will be once `messages` are acknowledged: what
    /// the input writes in the spool transaction of their readings. Pure; `stored(_:now:)` then
    /// changes the memory the same way.
    package func deliveryRecord(for messages: [MQTTPublish], client: String) -> DeliveryRecord {
        var touched: [Int: [UInt32]] = [:]
        for message in messages where message.qos == 1 {
            guard let id = message.packetID else { continue }
            let page = Int(id) / MQTTDeliveryLog.identifiersPerPage
            let start = page * MQTTDeliveryLog.identifiersPerPage
            touched[page, default: Array(acknowledged[start..<start + MQTTDeliveryLog.identifiersPerPage])][
                Int(id) - start] = Self.fingerprint(message)
        }
        let pages = touched.keys.sorted().map { MQTTDeliveryLog.page($0, touched[$0] ?? []) }
        return DeliveryRecord(client: client, pages: pages, replacesAll: durableResetPending)
    }

    /// The record from `deliveryRecord(for:client:)` is durable.
    package mutating func deliveriesRecorded() {
        durableResetPending = false
    }

    /// Loads the redelivery memory a previous run of the agent made durable (before connecting).
    package mutating func restore(_ fingerprints: [UInt32]) {
        guard fingerprints.count == acknowledged.count else { return }
        acknowledged = fingerprints
        hasAcknowledged = fingerprints.contains { $0 != 0 }
    }

    /// FNV-1a over topic, a separator and payload, folded to 32 bits, never 0 (0 marks "none").
    static func fingerprint(_ message: MQTTPublish) -> UInt32 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in message.topic {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        hash = (hash ^ 0xFF) &* 0x100_0000_01b3
        for byte in message.payload {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let folded = UInt32(truncatingIfNeeded: hash ^ (hash >> 32))
        return folded == 0 ? 1 : folded
    }

    private static func describe(_ packet: MQTTPacket) -> String {
        switch packet {
        case .connack: "CONNACK"
        case .publish: "PUBLISH"
        case .puback: "PUBACK"
        case .suback: "SUBACK"
        case .pingresp: "PINGRESP"
        case .disconnect: "DISCONNECT"
        }
    }

    private static func connectFailure(_ code: UInt8, _ version: MQTTVersion) -> String {
        switch (version, code) {
        case (.v311, 1), (.v5, 0x84): "unsupported protocol version"
        case (.v311, 2), (.v5, 0x85): "client identifier not valid"
        case (.v311, 3), (.v5, 0x88): "server unavailable"
        case (.v311, 4), (.v5, 0x86): "bad user name or password"
        case (.v311, 5), (.v5, 0x87): "not authorized"
        default: "reason code 0x\(String(code, radix: 16))"
        }
    }
}
