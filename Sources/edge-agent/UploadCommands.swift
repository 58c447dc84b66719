import EdgeAgent
import EdgeSyncCommandLine
import Foundation

/// `edge-agent run`: serves the local inputs and uploads the spool continuously until SIGTERM or SIGINT.
enum RunCommand: Subcommand {
    static let names = [["run"]]
    static let summary = "serve local inputs and upload the spool continuously, until SIGTERM"
    static let usage =
        "--data-dir DIR --device ID --collector URL [--token-file FILE] [--listen [HOST:]PORT] [--tcp-listen [HOST:]PORT] [--udp-listen [HOST:]PORT] [--simulate SENSORS@HZ] [--config FILE]"
    static let arguments = ArgumentParser(options: AgentConfiguration.options)

    static func run(_ arguments: ParsedArguments) async throws -> ExitCode {
        // Catch SIGTERM from the start: a stop during start-up is still a clean stop.
        let signals = TerminationSignals.stream()
        var configuration = try AgentConfiguration(arguments: arguments)
        configuration.spool.onDamagedFile = { StandardError.print("edge-agent run: \($0)") }
        let spool: Spool
        do {
            spool = try await Spool.open(configuration.spool)
        } catch {
            StandardError.print("edge-agent run: \(error)")
            return error.exitCode
        }
        let uploader = Uploader(
            configuration: configuration.upload, source: spool,
            transport: CurlTransport(configuration: configuration.transport))
        let metrics = AgentMetrics(
            spoolStatus: { try? await spool.status() }, uploadStatistics: { await uploader.statistics })
        let inputs = InputServices(
            configuration: configuration.inputs, sink: spool, metrics: metrics, log: StandardError.print)
        do {
            for (input, address) in try await inputs.start() {
                UploadLog.info("event=listening input=\(input) address=\(address)")
            }
        } catch {
            StandardError.print("edge-agent run: cannot start the inputs: \(error)")
            await inputs.stop()
            return .ioError
        }
        await uploader.onEvent(UploadLog.write)
        UploadLog.info(
            "event=started device=\(spool.device) stream=\(spool.stream) collector=\(configuration.transport.baseURL)")
        let keepServing = !inputs.isEmpty
        let outcome = try await runUntilSignal(signals) { () async -> Result<UploadStatistics, any Error> in
            let result: Result<UploadStatistics, any Error>
            do {
                result = .success(try await uploader.run(.continuous))
            } catch {
                result = .failure(error)
            }
            // Uploading stopped on its own (a refused token or certificate, a failure) while the inputs
            // are healthy: keep taking readings into the spool until SIGTERM; they upload after a restart.
            let reason: String? =
                switch result {
                case .success(let statistics): statistics.haltReason
                case .failure(let error): error is CancellationError ? nil : "\(error)"
                }
            if let reason, keepServing, !Task.isCancelled {
                StandardError.print(
                    "edge-agent run: uploading stopped (\(reason)); still accepting readings until SIGTERM")
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            }
            return result
        }
        // Whatever the uploader did, the inputs stop cleanly: requests in flight finish, TCP drains.
        await inputs.stop()
        let statistics: UploadStatistics
        switch outcome {
        case .success(let value): statistics = value
        case .failure(let error):
            StandardError.print("edge-agent run: uploading failed: \(error)")
            return (error as? SpoolError)?.exitCode ?? .failure
        }
        UploadLog.info("event=stopped \(UploadLog.fields(statistics)) \(inputFields(inputs))")
        if let reason = statistics.haltReason {
            StandardError.print(
                "edge-agent run: uploading stopped for device \(spool.device) (\(reason)); every reading stays in the spool. Fix the token or CA file and restart."
            )
            return .noPermission
        }
        return .success
    }

    private static func inputFields(_ inputs: InputServices) -> String {
        let statistics = inputs.endpoints.statistics
        var fields =
            "http_readings=\(statistics.readingsStored.load(ordering: .relaxed))"
            + " http_rejected_lines=\(statistics.rejectedLines.load(ordering: .relaxed))"
        if let simulator = inputs.simulator { fields += " simulated_readings=\(simulator.counters.readingsStored)" }
        if let mqtt = inputs.mqtt?.counters {
            fields += " mqtt_readings=\(mqtt.readingsStored) mqtt_rejected_messages=\(mqtt.rejectedMessages)"
        }
        return fields
    }
}

/// `edge-agent drain`: uploads everything queued and exits 0 when the spool is empty.
enum DrainCommand: Subcommand {
    static let names = [["drain"]]
    static let summary = "upload everything queued, then exit 0 when the spool is empty"
    static let usage = "--data-dir DIR --collector URL [--token-file FILE | --token TOKEN] [--config FILE]"
    static let arguments = ArgumentParser(options: AgentConfiguration.options)

    static func run(_ arguments: ParsedArguments) async throws -> ExitCode {
        let signals = TerminationSignals.stream()
        // The spool knows its device: --device is optional here.
        var parsed = arguments
        if parsed.value("--device") == nil, let directory = parsed.value("--data-dir"),
            let status = try? Spool.inspect(dataDirectory: directory)
        {
            parsed.values["--device"] = [status.device]
        }
        var configuration = try AgentConfiguration(arguments: parsed)
        configuration.spool.onDamagedFile = { StandardError.print("edge-agent drain: \($0)") }
        guard FileManager.default.fileExists(atPath: configuration.spool.databasePath) else {
            StandardError.print("edge-agent drain: no spool in \(configuration.spool.dataDirectory) (nothing to drain)")
            return .failure
        }
        let spool: Spool
        let before: SpoolStatus
        do {
            spool = try await Spool.open(configuration.spool)
            before = try await spool.status()
        } catch {
            StandardError.print("edge-agent drain: \(error)")
            return error.exitCode
        }
        let uploader = Uploader(
            configuration: configuration.upload, source: spool,
            transport: CurlTransport(configuration: configuration.transport))
        let progress = ProgressReporter(unit: "readings", total: before.queuedReadings)
        let interactive = isatty(STDERR_FILENO) == 1
        await uploader.onEvent { event in
            if case .acknowledged(let statistics) = event {
                progress.update(done: statistics.readingsAcknowledged)
            } else if !interactive {
                UploadLog.write(event)
            }
        }
        let start = ContinuousClock.now
        let statistics = try await runUntilSignal(signals) { try await uploader.run(.untilEmpty) }
        progress.finish()
        let elapsed = ContinuousClock.now - start
        let after = try? await spool.status()
        print(Self.summary(statistics, elapsed: elapsed, remaining: after?.queuedReadings))
        if let reason = statistics.haltReason {
            StandardError.print(
                reason.hasPrefix(UploadRetryPolicy.untrustedCertificateReason)
                    ? "edge-agent drain: uploading stopped: \(reason); every reading stays queued"
                    : "edge-agent drain: the collector refused device \(spool.device): \(reason)")
            return .noPermission
        }
        guard let after, after.queuedReadings == 0 else {
            StandardError.print(
                "edge-agent drain: stopped with \(after?.queuedReadings ?? -1) readings still queued"
                    + (statistics.lastError.map { " (last error: \($0))" } ?? ""))
            return .temporaryFailure
        }
        if statistics.readingsQuarantined > 0 {
            StandardError.print(
                "edge-agent drain: \(statistics.readingsQuarantined) readings were quarantined (kept in the spool, see edge-agent status)"
            )
        }
        return .success
    }

    static func summary(_ statistics: UploadStatistics, elapsed: Duration, remaining: Int64?) -> String {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Double(statistics.readingsAcknowledged) / seconds : 0
        return [
            "drained \(statistics.readingsAcknowledged) readings in \(String(format: "%.1f", seconds)) s"
                + " (\(ProgressLine.compact(rate)) readings/s)",
            "bytes on the wire: \(statistics.bytesSent) (\(String(format: "%.3f", statistics.bytesPerReading)) per reading,"
                + " compression ratio \(String(format: "%.3f", statistics.compressionRatio)) of 16-byte readings)",
            "duplicates at the collector: \(statistics.readingsDuplicate); quarantined: \(statistics.readingsQuarantined);"
                + " retries: \(statistics.retries.values.reduce(0, +)); still queued: \(remaining.map(String.init) ?? "unknown")",
        ].joined(separator: "\n")
    }
}

/// Runs `body` until it finishes or SIGTERM/SIGINT arrives, which cancels it: the uploader then
/// stops between batches and `body` returns what it did.
func runUntilSignal<T: Sendable>(
    _ signals: AsyncStream<Int32>,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let work = Task { try await body() }
    let watcher = Task {
        for await number in signals {
            UploadLog.info("event=shutdown signal=\(number)")
            work.cancel()
            break
        }
    }
    defer { watcher.cancel() }
    return try await work.value
}

/// One `key=value` line per uploader event on standard error.
enum UploadLog {
    static func info(_ fields: String) {
        StandardError.print("level=info \(fields)")
    }

    @Sendable static func write(_ event: UploadEvent) {
        switch event {
        case .acknowledged:
            break  // too frequent for a log; `status` and /metrics carry the counts
        case .retrying(let range, let wait, let reason):
            StandardError.print(
                "level=warn event=retry range=\(range) wait_ms=\(wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000) reason=\(quoted(reason))"
            )
        case .quarantined(let range, let reason):
            StandardError.print("level=error event=quarantined range=\(range) reason=\(quoted(reason))")
        case .halted(let reason):
            StandardError.print("level=error event=halted reason=\(quoted(reason))")
        }
    }

    static func fields(_ statistics: UploadStatistics) -> String {
        "acknowledged=\(statistics.readingsAcknowledged) duplicates=\(statistics.readingsDuplicate)"
            + " bytes_sent=\(statistics.bytesSent) quarantined=\(statistics.readingsQuarantined)"
            + " retries=\(statistics.retries.values.reduce(0, +))"
    }

    static func quoted(_ text: String) -> String {
        "\""
            + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: " ") + "\""
    }
}
