import EdgeAgent
import EdgeSyncTestSupport
import Foundation

/// The MQTT input (part of `inputs`): mosquitto on loopback holds a backlog of small QoS 1 messages
/// (one real reading each, as a bare number) for two persistent sessions; the baseline is
/// `mosquitto_sub` draining its session to /dev/null, then the agent's input drains the same
/// messages into a spool with fsync `full`, acknowledging each only after its commit. Rates are
/// from the first connection to the last message (baseline) or the last durable reading (agent).
enum MQTTInputBenchmark {
    static func run(_ options: BenchmarkOptions, values: [Double]) async throws {
        let count = options.integer("--mqtt-messages") ?? 200_000
        guard MosquittoBroker.executable != nil, let subscriber = MosquittoBroker.client("mosquitto_sub") else {
            print("inputs: MQTT skipped: mosquitto and mosquitto-clients are not installed")
            return
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mqtt-bench-\(getpid())").path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory + "/broker", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try await MosquittoBroker.start(in: directory + "/broker", maximumInflight: 0)
        do {
            try await measure(
                count: count, values: values, broker: broker, subscriber: subscriber, directory: directory)
        } catch {
            await broker.stop()
            throw error
        }
        await broker.stop()
    }

    private static func measure(
        count: Int, values: [Double], broker: MosquittoBroker, subscriber: URL, directory: String
    )
        async throws
    {
        let port = String(broker.port)
        let baselineArguments = ["-p", port, "-q", "1", "-c", "-i", "bench-baseline", "-t", "bench/#"]
        // Both persistent sessions exist before anything is published, so each gets every message.
        _ = try await BenchmarkProcess.run(subscriber.path, baselineArguments + ["-E"])
        var spoolConfiguration = Spool.Configuration(dataDirectory: directory + "/spool", device: "bench")
        spoolConfiguration.fsync = .full
        let spool = try await Spool.open(spoolConfiguration)
        let connect = MQTTPacketEncoder.Connect(
            version: .v5, clientID: "bench-agent", keepAliveSeconds: 30, sessionExpirySeconds: 3600)
        var configuration = MQTTInput.Configuration(
            host: "127.0.0.1", port: broker.port,
            session: MQTTSession.Configuration(connect: connect, filters: ["bench/#"]))
        configuration.mapping = MQTTTopicMapping(rules: [
            try MQTTTopicMapping.Rule(template: "bench/{sensor}", measurement: "bench", format: .value)
        ])
        let registration = MQTTInput(configuration: configuration, sink: spool)
        registration.start()
        try await poll("the agent's subscription") { registration.counters.isConnected }
        try await BenchmarkProcess.onThread { registration.stop() }

        let published = try await BenchmarkProcess.onThread { () throws -> Int in
            let publisher = MQTTTestPublisher(window: 2000)
            guard publisher.connect(port: broker.port, clientID: "bench-publisher") else {
                throw BenchmarkError("cannot connect to mosquitto")
            }
            for index in 0..<count {
                let value = values.isEmpty ? Double(index) : values[index % values.count]
                guard publisher.publish(topic: "bench/s\(index % 64)", payload: Array(String(value).utf8), index: index)
                else { throw BenchmarkError("publishing failed") }
            }
            guard publisher.flush() else { throw BenchmarkError("publishing failed") }
            publisher.disconnect()
            return publisher.acknowledged.count
        }

        var table = TextTable(
            "consumer (QoS 1, persistent session)", "messages", "seconds", "messages/s", "readings/s durable",
            "× baseline", "check")
        let baselineStart = ContinuousClock.now
        try await drainToDevNull(subscriber, baselineArguments + ["-C", String(published)])
        let baselineSeconds = seconds(ContinuousClock.now - baselineStart)

        let input = MQTTInput(configuration: configuration, sink: spool)
        let agentStart = ContinuousClock.now
        input.start()
        try await poll("the agent to store \(published) readings", deadline: .seconds(600)) {
            input.counters.readingsStored >= published
        }
        let agentSeconds = seconds(ContinuousClock.now - agentStart)
        try await BenchmarkProcess.onThread { input.stop() }
        let queued = try await spool.status().queuedReadings
        let check = queued == Int64(published) ? "ok (\(queued) in the spool)" : "FAILED (\(queued) ≠ \(published))"
        table.append(
            "mosquitto_sub -q 1 -c > /dev/null (baseline)", String(published), String(format: "%.2f", baselineSeconds),
            rate(Double(published) / baselineSeconds), "-", "1.0", "-")
        table.append(
            "edge-agent MQTT input → spool, fsync full", String(published), String(format: "%.2f", agentSeconds),
            rate(Double(published) / agentSeconds), rate(Double(published) / agentSeconds),
            String(format: "%.2f", baselineSeconds / agentSeconds), check)
        print(table.render())
        print(
            "mosquitto on loopback (max_inflight_messages 0), MQTT 5 receive maximum 65535, one reading per message; rates include connecting"
        )
    }

    /// Runs `mosquitto_sub` with its output to /dev/null, until it exits after its `-C` count.
    private static func drainToDevNull(_ subscriber: URL, _ arguments: [String]) async throws {
        try await BenchmarkProcess.onThread {
            let process = Process()
            process.executableURL = subscriber
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw BenchmarkError("mosquitto_sub exited with \(process.terminationStatus)")
            }
        }
    }

    /// Polls `condition` every 10 ms: the broker is another process.
    private static func poll(_ what: String, deadline: Duration = .seconds(30), _ condition: () -> Bool) async throws {
        let end = ContinuousClock.now + deadline
        while !condition() {
            guard ContinuousClock.now < end else { throw BenchmarkError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private static func rate(_ perSecond: Double) -> String {
        perSecond >= 1e6 ? String(format: "%.2f M", perSecond / 1e6) : String(format: "%.0f k", perSecond / 1e3)
    }
}
