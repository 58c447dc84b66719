import EdgeSyncLogging
import Foundation
import HTTPCore

/// The running agent, the twin of the collector's `CollectorService`: the spool in its data
/// directory, the local inputs that write into it and the uploader that empties it, built from one
/// `AgentConfiguration`.
///
/// `run()` serves until its task is cancelled, and cancellation is shutdown: the inputs stop
/// accepting (requests in flight finish, TCP connections store what the kernel already holds), the
/// uploader starts no new batch and lets the attempts under way finish (an attempt cut short is
/// simply sent again after a restart: the collector deduplicates), and the spool checkpoints its
/// write-ahead log and closes when the last reference goes.
package final class AgentService: Sendable {
    package typealias TransportFactory = @Sendable (CurlTransport.Configuration) -> any UploadTransport
    /// Series the processing rules keep state for without a spool series limit (decision 0021's default).
    package static let defaultRuleSeries = 100_000

    package let configuration: AgentConfiguration
    private let logger: Logger
    private let makeTransport: TransportFactory
    /// Times the checks for quiet downsample windows (`WindowFlusher`).
    private let windowClock: any Clock<Duration>
    /// The processing rules' clock (ns since the epoch): timestamp validation, quiet windows.
    private let processingClock: @Sendable () -> Int64

    /// Nothing is opened or bound until `run()`.
    package init(
        configuration: AgentConfiguration,
        logger: Logger,
        makeTransport: @escaping TransportFactory = { CurlTransport(configuration: $0) },
        windowClock: any Clock<Duration> = ContinuousClock(),
        processingClock: @escaping @Sendable () -> Int64 = InputEndpoints.wallClock
    ) {
        self.configuration = configuration
        self.logger = logger
        self.makeTransport = makeTransport
        self.windowClock = windowClock
        self.processingClock = processingClock
    }

    /// Opens the spool, binds the inputs, uploads until cancelled, then shuts down (see the type).
    ///
    /// When uploading stops on its own (the collector refused the token, the certificate is not
    /// trusted) while inputs are configured, the inputs keep taking readings into the spool until
    /// cancellation; they upload after a restart.
    ///
    /// - Returns: what the uploader did, after a shutdown by cancellation.
    /// - Throws: `AgentServiceError`: the spool did not open, an input could not bind, uploading
    ///   failed, or the collector refused the device (thrown after the shutdown).
    @discardableResult
    package func run() async throws -> UploadStatistics {
        let spool: Spool
        do {
            spool = try await Spool.open(configuration.spool)
        } catch {
            throw AgentServiceError(.spool(error))
        }
        let uploader = Uploader(
            configuration: configuration.upload, source: spool, transport: makeTransport(configuration.transport))
        var metrics = AgentMetrics(
            spoolStatus: { try? await spool.status() }, uploadStatistics: { await uploader.statistics })
        let logger = self.logger
        // The rules sit in front of the spool for every input; without rules the inputs write to it directly.
        var processing: ProcessingSink?
        if !configuration.processing.isEmpty {
            // `/metrics` goes on from the totals the spool kept across restarts.
            let stored = (try? await spool.processingCounts()) ?? []
            let totals = Dictionary(stored.map { ($0.rule, $0.counts) }, uniquingKeysWith: { first, _ in first })
            processing = ProcessingSink(
                rules: configuration.processing, capacity: configuration.spool.maxSeries ?? Self.defaultRuleSeries,
                inner: spool, initialCounts: totals, now: processingClock)
        }
        metrics.processing = processing
        let inputs = InputServices(
            configuration: configuration.inputs, sink: processing ?? spool, metrics: metrics,
            logger: logger.child("inputs"))
        await uploader.onEvent(UploadLog.writer(logger.child("upload")))
        let collector = configuration.transport.baseURL
        let keepServing = !inputs.isEmpty

        let outcome: Result<UploadStatistics, any Error> = try await withThrowingTaskGroup(of: Void.self) { group in
            let (listening, announce) = AsyncStream<Void>.makeStream()
            group.addTask {
                defer { announce.finish() }
                do {
                    try await inputs.run { bound in
                        for (input, address) in bound {
                            logger.info("listening", ["input": "\(input)", "address": "\(address)"])
                        }
                        announce.yield()
                    }
                } catch {
                    throw AgentServiceError(.inputs(error))
                }
            }
            var iterator = listening.makeAsyncIterator()
            guard await iterator.next() != nil else {
                // The inputs could not bind: their error comes out of the group.
                try await group.waitForAll()
                return .success(await uploader.statistics)
            }
            // The last window of a series that went quiet is stored while the agent runs, not
            // only at shutdown.
            if let processing, let shortest = processing.shortestWindow {
                let flusher = WindowFlusher(
                    sink: processing, interval: WindowFlusher.interval(shortestWindow: shortest), clock: windowClock,
                    logger: logger.child("processing"))
                group.addTask { await flusher.run() }
            }
            logger.info(
                "started", ["device": "\(spool.device)", "stream": "\(spool.stream)", "collector": "\(collector)"])
            let result: Result<UploadStatistics, any Error>
            do {
                result = .success(try await uploader.run(.continuous))
            } catch {
                result = .failure(error)
            }
            let reason: String? =
                switch result {
                case .success(let statistics): statistics.haltReason
                case .failure(let error): error is CancellationError ? nil : "\(error)"
                }
            if let reason, keepServing, !Task.isCancelled {
                // The inputs serve on until the service is cancelled.
                logger.warning(
                    "upload_stopped", ["reason": .quoted(reason), "action": .quoted("still accepting readings until SIGTERM")])
            } else {
                group.cancelAll()
            }
            try await group.waitForAll()
            return result
        }
        // Open downsample windows are stored now, not lost with the process (uploaded after a restart).
        if let processing {
            do {
                try await processing.flushWindows(idle: nil)
            } catch {
                logger.warning("processing_windows_not_stored", ["error": .quoted(error.message)])
            }
        }
        // Everything that wrote to the spool has stopped: fold the write-ahead log into the file.
        try? await spool.checkpoint()
        let statistics: UploadStatistics
        switch outcome {
        case .success(let value): statistics = value
        case .failure(let error): throw AgentServiceError(.upload(error))
        }
        logger.log(.info, "stopped", fieldList: UploadLog.fields(statistics) + Self.inputFields(inputs))
        if let reason = statistics.haltReason {
            throw AgentServiceError(.halted(device: spool.device, reason: reason))
        }
        return statistics
    }

    private static func inputFields(_ inputs: InputServices) -> [(key: String, value: Logger.Value)] {
        let statistics = inputs.endpoints.statistics
        var fields: [(key: String, value: Logger.Value)] = [
            ("http_readings", "\(statistics.readingsStored.load(ordering: .relaxed))"),
            ("http_rejected_lines", "\(statistics.rejectedLines.load(ordering: .relaxed))"),
        ]
        if let simulator = inputs.simulator { fields.append(("simulated_readings", "\(simulator.counters.readingsStored)")) }
        if let mqtt = inputs.mqtt?.counters {
            fields += [("mqtt_readings", "\(mqtt.readingsStored)"), ("mqtt_rejected_messages", "\(mqtt.rejectedMessages)")]
        }
        return fields
    }
}

/// Why `AgentService.run()` ended other than by a clean shutdown; the executable maps it to an exit code.
package struct AgentServiceError: Error, CustomStringConvertible {
    package enum Reason: Sendable {
        /// The spool did not open (damaged, wrong device, disk).
        case spool(SpoolError)
        /// An input could not bind its address; nothing was left listening.
        case inputs(any Error)
        /// The uploader failed (reading the spool).
        case upload(any Error)
        /// The collector refused the device or its certificate is not trusted; every reading stays
        /// in the spool.
        case halted(device: String, reason: String)
    }

    package let reason: Reason

    package init(_ reason: Reason) { self.reason = reason }

    package var description: String {
        switch reason {
        case .spool(let error): "\(error)"
        case .inputs(let error): "cannot start the inputs: \(error)"
        case .upload(let error): "uploading failed: \(error)"
        case .halted(let device, let reason):
            "uploading stopped for device \(device) (\(reason)); every reading stays in the spool."
                + " Fix the token or CA file and restart."
        }
    }
}
