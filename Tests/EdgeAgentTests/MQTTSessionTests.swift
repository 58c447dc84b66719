import Testing

@testable import EdgeAgent

/// The session state machine alone: events in, actions out, time given by the test.
@Suite struct MQTTSessionTests {
    let start = ContinuousClock.now

    func configuration(_ version: MQTTVersion = .v5, keepAlive: UInt16 = 30) -> MQTTSession.Configuration {
        MQTTSession.Configuration(
            connect: .init(version: version, clientID: "gw", keepAliveSeconds: keepAlive, sessionExpirySeconds: 600),
            filters: ["sensors/#", "plant/+/power"])
    }

    func message(_ id: UInt16, _ payload: String = "1", duplicate: Bool = false) -> MQTTPublish {
        MQTTPublish(
            topic: Array("sensors/a".utf8), payload: Array(payload.utf8), qos: 1, packetID: id, isDuplicate: duplicate)
    }

    /// A session through CONNACK and SUBACK.
    func ready(_ sessionPresent: Bool = false, session: inout MQTTSession) {
        _ = session.connectionOpened(now: start)
        _ = session.received(.connack(sessionPresent: sessionPresent, reasonCode: 0, serverKeepAlive: nil), now: start)
        _ = session.received(.suback(packetID: 1, reasonCodes: [1, 1]), now: start)
    }

    @Test func connectsThenSubscribesThenIsReady() {
        var session = MQTTSession(configuration: configuration())
        let config = configuration()
        #expect(session.connectionOpened(now: start) == [.send(MQTTPacketEncoder.connect(config.connect))])
        #expect(session.phase == .awaitingConnack)
        let afterConnack = session.received(
            .connack(sessionPresent: false, reasonCode: 0, serverKeepAlive: nil), now: start)
        #expect(
            afterConnack == [
                .send(MQTTPacketEncoder.subscribe(packetID: 1, filters: config.filters, qos: 1, version: .v5))
            ])
        #expect(session.received(.suback(packetID: 1, reasonCodes: [1, 1]), now: start) == [])
        #expect(session.phase == .ready)
    }

    @Test func acknowledgesOnlyAfterTheReadingsAreStored() {
        var session = MQTTSession(configuration: configuration())
        ready(session: &session)
        let first = message(5)
        let second = message(6, "2")
        #expect(session.received(.publish(first), now: start) == [.deliver(first)])
        #expect(session.received(.publish(second), now: start) == [.deliver(second)])
        // One write for both PUBACKs, in the order stored.
        #expect(
            session.stored([first, second], now: start)
                == [.send(MQTTPacketEncoder.puback(packetID: 5) + MQTTPacketEncoder.puback(packetID: 6))])
        // QoS 0 is delivered and never acknowledged.
        let qos0 = MQTTPublish(topic: Array("sensors/b".utf8), payload: Array("3".utf8))
        #expect(session.received(.publish(qos0), now: start) == [.deliver(qos0)])
        #expect(session.stored([qos0], now: start) == [])
    }

    @Test func queuedMessagesBeforeTheSubackAreDelivered() {
        var session = MQTTSession(configuration: configuration())
        _ = session.connectionOpened(now: start)
        _ = session.received(.connack(sessionPresent: true, reasonCode: 0, serverKeepAlive: nil), now: start)
        #expect(session.received(.publish(message(9)), now: start) == [.deliver(message(9))])
    }

    @Test func aRedeliveryOfAStoredMessageIsAcknowledgedWithoutStoringItAgain() {
        var session = MQTTSession(configuration: configuration())
        ready(session: &session)
        let original = message(7, "21.5")
        #expect(session.received(.publish(original), now: start) == [.deliver(original)])
        // The connection dies while the spool commits: the PUBACK never leaves.
        session.connectionClosed()
        #expect(session.stored([original], now: start) == [])
        ready(true, session: &session)
        let redelivered = message(7, "21.5", duplicate: true)
        #expect(session.received(.publish(redelivered), now: start) == [.send(MQTTPacketEncoder.puback(packetID: 7))])
        #expect(session.counters.redeliveriesSkipped == 1)
    }

    @Test func aRedeliveryWhosePUBACKWasSentIsSkippedToo() {
        var session = MQTTSession(configuration: configuration())
        ready(session: &session)
        let original = message(8)
        _ = session.received(.publish(original), now: start)
        #expect(session.stored([original], now: start) == [.send(MQTTPacketEncoder.puback(packetID: 8))])
        // The PUBACK was lost with the connection: the broker resends.
        session.connectionClosed()
        ready(true, session: &session)
        #expect(
            session.received(.publish(message(8, duplicate: true)), now: start)
                == [.send(MQTTPacketEncoder.puback(packetID: 8))])
    }

    @Test func aNewMessageUnderAnAcknowledgedIdentifierIsStored() {
        var session = MQTTSession(configuration: configuration())
        ready(session: &session)
        let original = message(3, "1")
        _ = session.received(.publish(original), now: start)
        _ = session.stored([original], now: start)
        // The broker reuses 3: a new message (DUP clear), then a different one redelivered with DUP.
        let reused = message(3, "1")
        #expect(session.received(.publish(reused), now: start) == [.deliver(reused)])
        session.connectionClosed()
        ready(true, session: &session)
        let otherPayload = message(3, "2", duplicate: true)
        #expect(session.received(.publish(otherPayload), now: start) == [.deliver(otherPayload)])
        #expect(session.counters.redeliveriesSkipped == 0)
    }

    @Test func aLostBrokerSessionIsReportedAndForgetsAcknowledgements() {
        var session = MQTTSession(configuration: configuration())
        ready(session: &session)
        let original = message(4)
        _ = session.received(.publish(original), now: start)
        _ = session.stored([original], now: start)
        session.connectionClosed()
        _ = session.connectionOpened(now: start)
        let actions = session.received(.connack(sessionPresent: false, reasonCode: 0, serverKeepAlive: nil), now: start)
        #expect(actions.contains { if case .warn(let text) = $0 { text.contains("no session") } else { false } })
        #expect(session.counters.sessionsLost == 1)
        _ = session.received(.suback(packetID: 2, reasonCodes: [1, 1]), now: start)
        // Without the broker's session, a DUP message is new to this client.
        let duplicate = message(4, duplicate: true)
        #expect(session.received(.publish(duplicate), now: start) == [.deliver(duplicate)])
    }

    @Test(arguments: [(MQTTVersion.v311, UInt8(4), "bad user name or password"), (.v5, 0x87, "not authorized")])
    func aRefusedConnectionCloses(_ version: MQTTVersion, _ code: UInt8, _ says: String) {
        var session = MQTTSession(configuration: configuration(version))
        _ = session.connectionOpened(now: start)
        let actions = session.received(
            .connack(sessionPresent: false, reasonCode: code, serverKeepAlive: nil), now: start)
        #expect(actions == [.close(reason: "the broker refused the connection: \(says)")])
    }

    @Test func aRefusedSubscriptionClosesAndADowngradeWarns() {
        var refused = MQTTSession(configuration: configuration())
        _ = refused.connectionOpened(now: start)
        _ = refused.received(.connack(sessionPresent: false, reasonCode: 0, serverKeepAlive: nil), now: start)
        let closing = refused.received(.suback(packetID: 1, reasonCodes: [1, 0x80]), now: start)
        #expect(closing == [.close(reason: "the broker refused the subscription to \"plant/+/power\" (reason 0x80)")])

        var downgraded = MQTTSession(configuration: configuration())
        _ = downgraded.connectionOpened(now: start)
        _ = downgraded.received(.connack(sessionPresent: false, reasonCode: 0, serverKeepAlive: nil), now: start)
        let warning = downgraded.received(.suback(packetID: 1, reasonCodes: [0, 1]), now: start)
        #expect(warning.count == 1)
        #expect(downgraded.phase == .ready)
        #expect(downgraded.received(.suback(packetID: 9, reasonCodes: [1]), now: start).count == 1)
    }

    @Test func protocolViolationsClose() {
        var session = MQTTSession(configuration: configuration())
        ready(session: &session)
        _ = session.received(.publish(message(2)), now: start)
        // The same identifier again before it was acknowledged.
        #expect(session.received(.publish(message(2, "x")), now: start).first.map(isClose) == true)
        var qos2 = MQTTSession(configuration: configuration())
        ready(session: &qos2)
        var exactlyOnce = message(3)
        exactlyOnce.qos = 2
        #expect(qos2.received(.publish(exactlyOnce), now: start).first.map(isClose) == true)
        var early = MQTTSession(configuration: configuration())
        _ = early.connectionOpened(now: start)
        #expect(early.received(.publish(message(1)), now: start).first.map(isClose) == true)
        #expect(early.received(.disconnect(reasonCode: 0x8E), now: start).first.map(isClose) == true)
    }

    private func isClose(_ action: MQTTSession.Action) -> Bool {
        if case .close = action { return true }
        return false
    }

    @Test func keepAlivePingsWhenIdleAndGivesUpOnASilentBroker() {
        var session = MQTTSession(configuration: configuration(keepAlive: 10))
        ready(session: &session)
        #expect(session.tick(now: start + .seconds(9)) == [])
        #expect(session.tick(now: start + .seconds(10)) == [.send(MQTTPacketEncoder.pingreq)])
        // One ping outstanding; the answer clears it.
        #expect(session.tick(now: start + .seconds(12)) == [])
        #expect(session.received(.pingresp, now: start + .seconds(12)) == [])
        #expect(session.tick(now: start + .seconds(20)) == [.send(MQTTPacketEncoder.pingreq)])
        #expect(session.tick(now: start + .seconds(34)) == [])
        #expect(session.tick(now: start + .seconds(35)).first.map(isClose) == true)
    }

    @Test func theServerKeepAliveWinsAndAHandshakeTimesOut() {
        var session = MQTTSession(configuration: configuration(keepAlive: 60))
        _ = session.connectionOpened(now: start)
        _ = session.received(.connack(sessionPresent: false, reasonCode: 0, serverKeepAlive: 5), now: start)
        _ = session.received(.suback(packetID: 1, reasonCodes: [1, 1]), now: start)
        #expect(session.tick(now: start + .seconds(5)) == [.send(MQTTPacketEncoder.pingreq)])

        var silent = MQTTSession(configuration: configuration())
        _ = silent.connectionOpened(now: start)
        #expect(silent.tick(now: start + .seconds(9)) == [])
        #expect(silent.tick(now: start + .seconds(10)) == [.close(reason: "no CONNACK within 10.0 seconds")])
    }

    // MARK: Durable redelivery memory (across an agent kill)

    @Test func theDeliveryRecordHoldsTheFingerprintsOfTheMessagesAboutToBeAcknowledged() {
        var session = MQTTSession(configuration: configuration())
        ready(session: &session)
        let messages = [message(7, "21.5"), message(300, "3"), message(301, "4")]
        for message in messages { _ = session.received(.publish(message), now: start) }
        let record = session.deliveryRecord(for: messages, client: "gw")
        #expect(record.client == "gw")
        #expect(!record.replacesAll)
        #expect(record.pages.map(\.index) == [0, 1])
        #expect(record.pages.allSatisfy { $0.bytes.count == MQTTDeliveryLog.pageBytes })
        let (fingerprints, invalid) = MQTTDeliveryLog.fingerprints(from: record.pages)
        #expect(invalid == 0)
        #expect(fingerprints[7] == MQTTSession.fingerprint(messages[0]))
        #expect(fingerprints[300] == MQTTSession.fingerprint(messages[1]))
        #expect(fingerprints[8] == 0)
        // Pure: the memory itself changes only once stored.
        #expect(session.deliveryRecord(for: [], client: "gw").pages.isEmpty)
    }

    @Test func aRestoredMemorySkipsTheRedeliveryOfAMessageStoredBeforeTheKill() {
        // First run: message 7 stored, its record made durable, then the agent is killed before the PUBACK.
        var first = MQTTSession(configuration: configuration())
        ready(session: &first)
        let original = message(7, "21.5")
        _ = first.received(.publish(original), now: start)
        let record = first.deliveryRecord(for: [original], client: "gw")
        // Second run: a new process, the memory loaded from the spool.
        var second = MQTTSession(configuration: configuration())
        second.restore(MQTTDeliveryLog.fingerprints(from: record.pages).fingerprints)
        ready(true, session: &second)
        let redelivered = message(7, "21.5", duplicate: true)
        #expect(second.received(.publish(redelivered), now: start) == [.send(MQTTPacketEncoder.puback(packetID: 7))])
        #expect(second.counters.redeliveriesSkipped == 1)
        // Another message under a remembered identifier with DUP set is stored (the broker reused it).
        let other = message(7, "22", duplicate: true)
        var third = MQTTSession(configuration: configuration())
        third.restore(MQTTDeliveryLog.fingerprints(from: record.pages).fingerprints)
        ready(true, session: &third)
        #expect(third.received(.publish(other), now: start) == [.deliver(other)])
        // Without DUP it is a new message even with the same topic and payload.
        var fourth = MQTTSession(configuration: configuration())
        fourth.restore(MQTTDeliveryLog.fingerprints(from: record.pages).fingerprints)
        ready(true, session: &fourth)
        #expect(fourth.received(.publish(original), now: start) == [.deliver(original)])
    }

    @Test func aNewBrokerSessionReplacesTheDurableRecord() {
        var session = MQTTSession(configuration: configuration())
        let stale = MQTTDeliveryLog.page(0, [UInt32](repeating: 9, count: MQTTDeliveryLog.identifiersPerPage))
        session.restore(MQTTDeliveryLog.fingerprints(from: [stale]).fingerprints)
        // The broker lost the session: nothing from it can be redelivered, the old pages must go.
        ready(false, session: &session)
        let fresh = message(7, "1")
        _ = session.received(.publish(fresh), now: start)
        let record = session.deliveryRecord(for: [fresh], client: "gw")
        #expect(record.replacesAll)
        let (fingerprints, _) = MQTTDeliveryLog.fingerprints(from: record.pages)
        #expect(fingerprints[6] == 0, "a stale fingerprint was kept")
        session.deliveriesRecorded()
        _ = session.stored([fresh], now: start)
        #expect(!session.deliveryRecord(for: [message(8, "2")], client: "gw").replacesAll)
    }

    @Test(arguments: [
        ("short page", DeliveryRecord.Page(index: 0, bytes: [1, 2, 3])),
        ("page past the last", DeliveryRecord.Page(index: 256, bytes: [UInt8](repeating: 1, count: 1024))),
        ("negative page", DeliveryRecord.Page(index: -1, bytes: [UInt8](repeating: 1, count: 1024))),
        ("oversized page", DeliveryRecord.Page(index: 3, bytes: [UInt8](repeating: 1, count: 1025))),
    ])
    func invalidStoredPagesAreLeftOutAndCounted(_ name: String, _ page: DeliveryRecord.Page) {
        let good = MQTTDeliveryLog.page(1, [UInt32](repeating: 5, count: MQTTDeliveryLog.identifiersPerPage))
        let (fingerprints, invalid) = MQTTDeliveryLog.fingerprints(from: [page, good])
        #expect(invalid == 1, "\(name)")
        #expect(fingerprints[256] == 5 && fingerprints[511] == 5 && fingerprints[0] == 0, "\(name)")
    }
}
