import Dispatch
import EdgeSyncCodec
import EdgeSyncLogging
import EdgeSyncMetrics
import EdgeSyncProtocol
import Foundation
import Glibc
import HTTPCore
import Synchronization

/// Readings from an MQTT broker: subscribes to the configured topic filters, maps each message to
/// readings (`MQTTTopicMapping`) and acknowledges a QoS 1 message only after its readings are
/// durable in the spool, so a message the broker delivered is never lost when the agent dies.
///
/// One thread owns the connection and does blocking socket I/O and spool appends in turn (never the
/// cooperative pool): read what the broker sent, decode (`MQTTPacketDecoder`), let the session
/// (`MQTTSession`) decide, append the readings of every message read in one spool commit, then send
/// their PUBACKs in one write. While the spool commits, the broker keeps sending up to its in-flight
/// window, so batches grow with load. When the connection fails or the spool refuses a write, the
/// connection is closed without acknowledging, and reconnects after a capped exponential backoff
/// with full jitter (the uploader's `UploadRetryPolicy` ceiling); the broker redelivers what was not
/// acknowledged.
package final class MQTTInput: Sendable {
    package struct Configuration: Sendable {
        package var host: String
        package var port: Int
        package var session: MQTTSession.Configuration
        package var mapping = MQTTTopicMapping()
        package var limits = MQTTPacketDecoder.Limits()
        package var connectTimeout = Duration.seconds(10)
        /// Backoff between connection attempts (initial ceiling, maximum).
        package var backoff = UploadRetryPolicy.Configuration()
        /// Readings gathered before an append, at most (a pause in the stream appends at once).
        package var blockReadings = 50_000

        package init(host: String, port: Int, session: MQTTSession.Configuration) {
            self.host = host
            self.port = port
            self.session = session
            backoff.initialBackoff = .milliseconds(250)
            backoff.maximumBackoff = .seconds(30)
        }
    }

    package struct Counters: Sendable, Equatable {
        package var messages = 0
        package var readingsStored = 0
        /// Messages whose payload did not map to readings (acknowledged, logged, not stored).
        package var rejectedMessages = 0
        /// JSON members that were not numbers.
        package var skippedFields = 0
        package var redeliveriesSkipped = 0
        package var connections = 0
        package var isConnected = false
        package var spoolRefusals = 0
        /// Readings of new series past `spool.max_series`, not stored (their messages acknowledged).
        package var seriesLimitedReadings = 0
    }

    package let configuration: Configuration
    private let sink: any ReadingSink
    private let now: @Sendable () -> Int64
    private let logger: Logger
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)
    /// Signalled by `stop()`, so a backoff wait ends at once.
    private let wake = DispatchSemaphore(value: 0)

    private struct State {
        var started = false
        var stopping = false
        var counters = Counters()
    }

    /// The sink when it can store delivery records with the readings (the spool): then a message
    /// stored before the agent was killed and redelivered after it is not stored again.
    private var recorder: (any DeliveryRecordingSink)? { sink as? any DeliveryRecordingSink }

    package init(
        configuration: Configuration, sink: any ReadingSink,
        now: @escaping @Sendable () -> Int64 = InputEndpoints.wallClock,
        logger: Logger = .discard
    ) {
        self.configuration = configuration
        self.sink = sink
        self.now = now
        self.logger = logger
    }

    package var counters: Counters { state.withLock { $0.counters } }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    /// Starts the connection thread; connecting and reconnecting happen there.
    package func start() {
        guard
            state.withLock({ state -> Bool in
                defer { state.started = true }
                return !state.started
            })
        else { return }
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Connects and subscribes on a thread of its own until the task is cancelled, then stops as
    /// `stop()` does (joined on a thread of its own: the MQTT thread may be waiting on the spool).
    package func run() async {
        start()
        await waitForCancellation()
        await awaitBlocking { self.stop() }
    }

    /// Stores and acknowledges what was already read, disconnects cleanly (the broker keeps the
    /// session) and waits for the thread, which notices within a second.
    package func stop() {
        let started = state.withLock { state -> Bool in
            state.stopping = true
            return state.started
        }
        guard started else { return }
        wake.signal()
        finished.wait()
    }

    private func run() {
        var session = MQTTSession(configuration: configuration.session)
        restoreDeliveries(into: &session)
        var parser = LineProtocolParser()
        var random = SystemRandomNumberGenerator()
        let policy = UploadRetryPolicy(configuration: configuration.backoff)
        var failures = 0
        let address = "\(configuration.host):\(configuration.port)"
        while !isStopping {
            let reason: String
            var reachedReady = false
            switch Result(catching: { () throws(ClientSocket.Failure) in
                try ClientSocket.connect(
                    host: configuration.host, port: configuration.port, timeout: configuration.connectTimeout,
                    shouldStop: { self.isStopping })
            }) {
            case .failure(let error):
                reason = "\(error)"
            case .success(let socket):
                state.withLock { $0.counters.connections += 1 }
                logger.info("mqtt_connected", ["input": "mqtt", "broker": "\(address)"])
                reason = serve(socket, session: &session, parser: &parser, reachedReady: &reachedReady)
                socket.close()
                session.connectionClosed()
                state.withLock {
                    $0.counters.isConnected = false
                    $0.counters.redeliveriesSkipped = session.counters.redeliveriesSkipped
                }
            }
            if isStopping { break }
            failures = reachedReady ? 1 : failures + 1
            let ceiling = policy.backoffCeiling(afterFailures: failures)
            let wait = Duration.nanoseconds(Int64.random(in: 0...Self.nanoseconds(ceiling), using: &random))
            logger.warning(
                "mqtt_disconnected",
                ["input": "mqtt", "broker": "\(address)", "reason": .quoted(reason), "retry_in": "\(wait)"])
            _ = wake.wait(timeout: .now() + .nanoseconds(Int(Self.nanoseconds(wait))))
        }
    }

    /// Loads the redelivery memory the last run made durable; without it (a failing spool) the input
    /// still runs, at least once across a kill.
    private func restoreDeliveries(into session: inout MQTTSession) {
        guard let recorder else { return }
        let client = configuration.session.connect.clientID
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<[DeliveryRecord.Page], SpoolError>?>(nil)
        Task {
            let result: Result<[DeliveryRecord.Page], SpoolError>
            do {
                result = .success(try await recorder.deliveryPages(client: client))
            } catch {
                result = .failure(SpoolError.wrap(error, while: "reading MQTT delivery records"))
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        switch outcome.withLock({ $0 }) {
        case .success(let pages):
            let (fingerprints, invalid) = MQTTDeliveryLog.fingerprints(from: pages)
            if invalid > 0 {
                logger.warning("mqtt_delivery_records", ["input": "mqtt", "invalid_pages": "\(invalid)"])
            }
            session.restore(fingerprints)
        case .failure(let error):
            logger.warning(
                "mqtt_delivery_records",
                [
                    "input": "mqtt", "error": .quoted(error.description),
                    "note": .quoted("redeliveries after a kill may be stored twice"),
                ])
        case nil:
            break
        }
    }

    /// Serves one connection until it fails or the input stops; returns why it ended.
    private func serve(
        _ socket: ClientSocket, session: inout MQTTSession, parser: inout LineProtocolParser, reachedReady: inout Bool
    ) -> String {
        let fd = socket.fd
        var decoder = MQTTPacketDecoder(version: configuration.session.connect.version, limits: configuration.limits)
        var buffer = [UInt8](repeating: 0, count: 256 << 10)
        var block = ReadingBlock()
        var pending: [MQTTPublish] = []

        /// Carries out the session's actions; a reason when the connection must close.
        func perform(_ actions: [MQTTSession.Action]) -> String? {
            for action in actions {
                switch action {
                case .send(let bytes):
                    do {
                        try socket.send(bytes, before: .now + configuration.connectTimeout)
                    } catch {
                        return error.description
                    }
                case .deliver(let message):
                    pending.append(message)
                    do {
                        let skipped = try configuration.mapping.map(message, now: now(), parser: &parser, into: &block)
                        if skipped > 0 { state.withLock { $0.counters.skippedFields += skipped } }
                    } catch {
                        state.withLock { $0.counters.rejectedMessages += 1 }
                        logger.warning(
                            "bad_message",
                            [
                                "input": "mqtt", "topic": .quoted(String(decoding: message.topic, as: UTF8.self)),
                                "error": .quoted(error.description),
                            ])
                    }
                case .warn(let message):
                    logger.warning("mqtt_session", ["input": "mqtt", "message": .quoted(message)])
                case .close(let reason):
                    return reason
                }
            }
            if session.phase == .ready, !reachedReady {
                reachedReady = true
                state.withLock { $0.counters.isConnected = true }
                logger.info(
                    "mqtt_subscribed",
                    ["input": "mqtt", "topics": .quoted(configuration.session.filters.joined(separator: " "))])
            }
            return nil
        }

        /// Appends the readings read so far in one commit, then acknowledges their messages.
        func flush() -> String? {
            guard !pending.isEmpty else { return nil }
            if !block.isEmpty {
                let outcome: Result<Spool.Admitted, SpoolError> =
                    if let recorder {
                        recorder.appendBlocking(
                            block,
                            deliveries: session.deliveryRecord(
                                for: pending, client: configuration.session.connect.clientID))
                    } else {
                        sink.appendBlocking(block).map { Spool.Admitted(range: $0) }
                    }
                switch outcome {
                case .success(let admitted):
                    // Readings of series past spool.max_series are refused for good: the messages
                    // are acknowledged all the same, or the broker would send them forever.
                    if recorder != nil, admitted.range != nil { session.deliveriesRecorded() }
                    let count = block.count - admitted.refusedReadings
                    let refused = admitted.refusedReadings
                    state.withLock {
                        $0.counters.readingsStored += count
                        $0.counters.seriesLimitedReadings += refused
                    }
                    if refused > 0 {
                        logger.warning(
                            "series_limit",
                            [
                                "input": "mqtt", "refused_readings": "\(refused)",
                                "refused_series": "\(admitted.refusedSeries)", "setting": "spool.max_series",
                            ])
                    }
                case .failure(let error):
                    state.withLock { $0.counters.spoolRefusals += 1 }
                    let count = block.count
                    block.removeAll()
                    pending.removeAll()
                    return
                        "the spool refused \(count) readings (\(error.message)); the broker keeps the messages until they are stored"
                }
            }
            block.removeAll()
            let messages = pending
            pending.removeAll(keepingCapacity: true)
            state.withLock { $0.counters.messages += messages.count }
            return perform(session.stored(messages, now: .now))
        }

        if let failure = perform(session.connectionOpened(now: .now)) { return failure }
        while true {
            if isStopping {
                if let failure = flush() { return failure }
                try? socket.send(MQTTPacketEncoder.disconnect, before: .now + .seconds(1))
                return "stopping"
            }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            // A quarter second: often enough for keep-alive (ticks of at most a second) and to notice a stop.
            let ready = poll(&poller, 1, 250)
            if let failure = perform(session.tick(now: .now)) { return failure }
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { continue }
            // Read what the kernel holds, decoding as it comes; append once nothing more is waiting.
            var readThisRound = 0
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if count < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { break }
                    _ = flush()
                    return "read failed: \(String(cString: strerror(errno)))"
                }
                if count == 0 {
                    // Store what arrived whole; the broker redelivers what it cannot see acknowledged.
                    _ = flush()
                    return "the broker closed the connection"
                }
                buffer.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                readThisRound += count
                do {
                    while let packet = try decoder.next() {
                        if let failure = perform(session.received(packet, now: .now)) {
                            _ = flush()
                            return failure
                        }
                    }
                } catch {
                    _ = flush()
                    return "protocol error: \(error)"
                }
                if block.count >= configuration.blockReadings || readThisRound >= 8 << 20 { break }
            }
            if let failure = flush() { return failure }
        }
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

}

/// A sink that stores delivery records in the transaction of the readings (`Spool`).
package protocol DeliveryRecordingSink: ReadingSink {
    func append(seriesKeys: [String], readings: [Reading], deliveries: DeliveryRecord)
        async throws(SpoolError) -> Spool.Admitted
    func deliveryPages(client: String) async throws(SpoolError) -> [DeliveryRecord.Page]
}

extension Spool: DeliveryRecordingSink {}

extension DeliveryRecordingSink {
    func appendBlocking(_ block: ReadingBlock, deliveries: DeliveryRecord) -> Result<Spool.Admitted, SpoolError> {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<Spool.Admitted, SpoolError>?>(nil)
        Task {
            let result: Result<Spool.Admitted, SpoolError>
            do {
                result = .success(
                    try await append(seriesKeys: block.seriesKeys, readings: block.readings, deliveries: deliveries))
            } catch {
                result = .failure(SpoolError.wrap(error, while: "appending"))
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return outcome.withLock { $0 } ?? .failure(SpoolError.wrap(CancellationError(), while: "appending"))
    }
}

extension MQTTInput {
    /// The MQTT input's own families on the agent's `/metrics` (listed in `Docs/edge-agent.md`).
    static func writeMetrics(_ counters: Counters, into out: inout Exposition) {
        out.counter(
            "edge_agent_mqtt_messages_total", "MQTT messages received and acknowledged (stored or rejected).",
            Double(counters.messages))
        out.counter(
            "edge_agent_mqtt_rejected_messages_total",
            "MQTT messages whose payload did not map to readings (acknowledged, not stored).",
            Double(counters.rejectedMessages))
        out.counter(
            "edge_agent_mqtt_skipped_fields_total", "JSON members of MQTT payloads that were not numbers.",
            Double(counters.skippedFields))
        out.counter(
            "edge_agent_mqtt_redeliveries_skipped_total",
            "Redelivered MQTT messages already stored, acknowledged again without storing.",
            Double(counters.redeliveriesSkipped))
        out.counter(
            "edge_agent_mqtt_connections_total", "TCP connections made to the MQTT broker.",
            Double(counters.connections))
        out.counter(
            "edge_agent_mqtt_spool_refusals_total",
            "Spool appends refused for MQTT messages (the broker keeps them; reconnect later).",
            Double(counters.spoolRefusals))
        out.counter(
            "edge_agent_mqtt_series_limited_readings_total",
            "Readings of MQTT messages refused for series new past spool.max_series (messages acknowledged).",
            Double(counters.seriesLimitedReadings))
        out.gauge("edge_agent_mqtt_connected", "1 while subscribed on the MQTT broker.", counters.isConnected ? 1 : 0)
    }
}
