import EdgeAgent
import EdgeSyncCommandLine
import EdgeSyncLogging
import Foundation

/// The agent's root logger: standard error. Its lines have always spelled the warning level `warn`.
let agentLogger = StandardError.logger(label: "edge-agent", warningName: "warn")

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
        let service = AgentService(configuration: configuration, logger: agentLogger)
        do {
            _ = try await TerminationSignals.runUntilSignal(signals, logger: agentLogger) {
                try await service.run()
            }
            return .success
        } catch let error as AgentServiceError {
            StandardError.print("edge-agent run: \(error)")
            switch error.reason {
            case .spool(let error): return error.exitCode
            case .inputs: return .ioError
            case .upload(let error): return (error as? SpoolError)?.exitCode ?? .failure
            case .halted: return .noPermission
            }
        }
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
        let log = UploadLog.writer(agentLogger.child("upload"))
        await uploader.onEvent { event in
            if case .acknowledged(let statistics) = event {
                progress.update(done: statistics.readingsAcknowledged)
            } else if !interactive {
                log(event)
            }
        }
        let start = ContinuousClock.now
        let statistics = try await TerminationSignals.runUntilSignal(signals, logger: agentLogger) {
            try await uploader.run(.untilEmpty)
        }
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
            "sent as stored: \(statistics.readingsSentAsStored) readings"
                + (statistics.sendsSingleFrames
                    ? " (the collector does not take frame runs: single version 2 frames)" : " (frame runs)"),
        ].joined(separator: "\n")
    }
}
