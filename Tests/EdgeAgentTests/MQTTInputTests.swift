import EdgeSyncTestSupport
import Foundation
import HTTPCore
import Synchronization
import Testing

@testable import EdgeAgent

/// A scripted broker on loopback: for each connection it reads the client's CONNECT and SUBSCRIBE,
/// answers CONNACK and SUBACK, sends the next script's bytes, then records what the client sends.
final class ScriptedBroker: Sendable {
    private struct State {
        var scripts: [[UInt8]]
        var received: [[UInt8]] = []
        var connections = 0
    }

    let port: Int
    private let listener: Int32
    private let state: Mutex<State>
    private let sessionPresent: Bool

    init(scripts: [[UInt8]], sessionPresent: Bool = false) throws {
        self.sessionPresent = sessionPresent
        let (fd, address) = try Socket.listen(host: "127.0.0.1", port: 0, backlog: 8)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        listener = fd
        port = address.port
        state = Mutex(State(scripts: scripts))
        Thread { [self] in serve() }.start()
    }

    var connections: Int { state.withLock { $0.connections } }
    /// Bytes received per connection after the handshake.
    var received: [[UInt8]] { state.withLock { $0.received } }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    private func serve() {
        while true {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let script = state.withLock { state -> [UInt8]? in
                state.connections += 1
                state.received.append([])
                return state.scripts.isEmpty ? nil : state.scripts.removeFirst()
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            // CONNECT, then CONNACK (3.1.1); SUBSCRIBE, then SUBACK granting QoS 1.
            _ = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            send(fd, [0x20, 0x02, sessionPresent ? 0x01 : 0x00, 0x00])
            let subscribe = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            // The SUBACK names the SUBSCRIBE's packet identifier (bytes 2 and 3 of a short packet).
            send(fd, [0x90, 0x03, subscribe >= 4 ? buffer[2] : 0, subscribe >= 4 ? buffer[3] : 1, 0x01])
            if let script { send(fd, script) }
            // Record what comes back until the client closes or stays quiet.
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { break }
                state.withLock { $0.received[$0.received.count - 1] += buffer[0..<count] }
            }
            Glibc.close(fd)
            if script == nil { return }
        }
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

/// The MQTT input's I/O against a scripted broker: acknowledgement only after the spool took the
/// readings, and hostile packets that end the connection, never the agent.
@Suite(.serialized) struct MQTTInputTests {
    func publish(_ id: UInt16, _ payload: String) -> [UInt8] {
        MQTTPacketEncoder.publish(
            MQTTPublish(topic: Array("s/a".utf8), payload: Array(payload.utf8), qos: 1, packetID: id), version: .v311)
    }

    func input(_ broker: ScriptedBroker, sink: any ReadingSink, logs: LogLines) -> MQTTInput {
        var configuration = MQTTInput.Configuration(
            host: "127.0.0.1", port: broker.port,
            session: MQTTSession.Configuration(
                connect: .init(version: .v311, clientID: "t", keepAliveSeconds: 30), filters: ["s/#"]))
        configuration.backoff.initialBackoff = .milliseconds(1)
        configuration.backoff.maximumBackoff = .milliseconds(5)
        configuration.limits.maximumPacketBytes = 1024
        return MQTTInput(configuration: configuration, sink: sink, now: { 7 }, logger: logs.logger)
    }

    /// Polls with a deadline: the input's thread and the broker's run on their own.
    func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw ChildProcess.Failure("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test func pubacksFollowTheStoreAndARefusingSpoolGetsNone() async throws {
        // First connection: the spool refuses, so no PUBACK may come back; second: stored, acknowledged.
        let broker = try ScriptedBroker(scripts: [publish(1, "1") + publish(2, "2"), publish(1, "1") + publish(2, "2")])
        defer { broker.close() }
        let sink = RecordingSink(refusing: .full)
        let logs = LogLines()
        let mqtt = input(broker, sink: sink, logs: logs)
        mqtt.start()
        try await waitUntil("a refused append") { mqtt.counters.spoolRefusals >= 1 }
        sink.refuse(nil)
        try await waitUntil("two stored readings") { sink.readings.count == 2 }
        try await waitUntil("the acknowledgements") { broker.received.count >= 2 && broker.received[1].count >= 8 }
        try await onOwnThread { mqtt.stop() }
        #expect(broker.received[0].filter { $0 == 0x40 }.isEmpty, "a PUBACK went out before the readings were stored")
        #expect(
            broker.received[1].starts(
                with: MQTTPacketEncoder.puback(packetID: 1) + MQTTPacketEncoder.puback(packetID: 2)))
        #expect(
            sink.readings == [
                IncomingReading(seriesKey: "mqtt,topic=s/a value", timestamp: 7, value: 1),
                IncomingReading(seriesKey: "mqtt,topic=s/a value", timestamp: 7, value: 2),
            ])
        #expect(logs.all.contains { $0.contains("event=mqtt_disconnected") && $0.contains("spool refused") })
    }

    @Test(arguments: [
        ("malformed", [UInt8]([0x36, 0x03, 0x00, 0x01, 0x61]), "QoS 3"),
        ("oversized", [0x30, 0xFF, 0x7F], "exceeds the limit of 1024"),
        ("five-byte length", [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], "more than four bytes"),
        ("client packet", [0x82, 0x02, 0x00, 0x01], "not a packet this client accepts"),
    ])
    func hostilePacketsCloseTheConnectionAndTheInputReconnects(_ name: String, _ bytes: [UInt8], _ says: String)
        async throws
    {
        // A good message before the hostile bytes is stored and acknowledged; then a reconnect.
        let broker = try ScriptedBroker(scripts: [publish(5, "21.5") + bytes, publish(6, "3")])
        defer { broker.close() }
        let sink = RecordingSink()
        let logs = LogLines()
        let mqtt = input(broker, sink: sink, logs: logs)
        mqtt.start()
        try await waitUntil("the second message") { sink.readings.count >= 2 }
        try await onOwnThread { mqtt.stop() }
        #expect(sink.readings.map(\.value) == [21.5, 3], "\(name)")
        #expect(broker.connections >= 2)
        #expect(logs.all.contains { $0.contains("protocol error") && $0.contains(says) }, "\(name): \(logs.all)")
    }

    @Test func aTruncatedPacketAtTheEndOfTheConnectionStoresNothingOfIt() async throws {
        // The broker closes in the middle of a PUBLISH: the whole messages before it are stored.
        let whole = publish(1, "1")
        let broker = try ScriptedBroker(scripts: [whole + Array(publish(2, "2").prefix(5)), publish(2, "2")])
        defer { broker.close() }
        let sink = RecordingSink()
        let logs = LogLines()
        let mqtt = input(broker, sink: sink, logs: logs)
        mqtt.start()
        try await waitUntil("both messages") { sink.readings.count >= 2 }
        try await onOwnThread { mqtt.stop() }
        #expect(sink.readings.map(\.value) == [1, 2])
    }

    @Test func aMessageStoredBeforeARestartIsNotStoredAgainWhenTheBrokerRedeliversIt() async throws {
        try await withTemporaryDirectory { directory in
            let spool = try await Spool.open(spoolConfiguration(directory))
            let logs = LogLines()
            // First run: message 5 is stored (with its delivery record) and the broker drops the
            // connection, as after a kill between the commit and the PUBACK.
            let first = try ScriptedBroker(scripts: [publish(5, "21.5")], sessionPresent: true)
            let one = input(first, sink: spool, logs: logs)
            one.start()
            try await waitUntil("the first message") { one.counters.readingsStored == 1 }
            try await onOwnThread { one.stop() }
            first.close()
            // Second run, a new input as in a new process: the broker redelivers 5 with DUP, then 6.
            var duplicate = publish(5, "21.5")
            duplicate[0] |= 0x08
            let second = try ScriptedBroker(scripts: [duplicate + publish(6, "3")], sessionPresent: true)
            defer { second.close() }
            let two = input(second, sink: spool, logs: logs)
            two.start()
            try await waitUntil("the second message") { two.counters.readingsStored == 1 }
            try await waitUntil("both acknowledgements") { (second.received.first?.count ?? 0) >= 8 }
            try await onOwnThread { two.stop() }
            #expect(two.counters.redeliveriesSkipped == 1)
            #expect(
                second.received[0].starts(
                    with: MQTTPacketEncoder.puback(packetID: 5) + MQTTPacketEncoder.puback(packetID: 6)))
            #expect(try await storedReadings(spool).map(\.value) == [21.5, 3])
        }
    }
}
