import EdgeAgent
import EdgeSyncCommandLine
import Foundation
import Synchronization

/// `edge-agent import`: line protocol or CSV into the spool; exit 0 only when all of it is durable.
enum ImportCommand: Subcommand {
    static let names = [["import"]]
    static let summary = "enqueue readings from an InfluxDB line protocol or CSV file (or - for stdin)"
    static let usage = "--data-dir DIR --device ID [--config FILE] [--format lp|csv] FILE|-"
    static let arguments = ArgumentParser(
        options: SpoolOptions.all + [
            .value("--config", "FILE", help: "the agent's JSON configuration: spool settings and processing.rules"),
            .value("--format", "lp|csv", help: "input format (default: csv for *.csv files, else lp)"),
        ],
        positionals: ["FILE"])

    static func run(_ arguments: ParsedArguments) async throws -> ExitCode {
        // With the agent's configuration the readings go through its processing rules, as they
        // would through any input of `run`; the flags still override the file's spool settings.
        var configuration: Spool.Configuration
        var rules: [ProcessingRule] = []
        if let path = arguments.value("--config") {
            let agent = try AgentConfiguration(importing: try ConfigurationFile(path: path), arguments: arguments)
            configuration = agent.spool
            configuration.onDamagedFile = { message in StandardError.print("edge-agent: \(message)") }
            rules = agent.processing
        } else {
            configuration = try SpoolOptions.configuration(arguments)
        }
        let input = try arguments.positional(0, name: "FILE")
        let format =
            try arguments.value("--format", as: "lp or csv", ImportFormat.init(rawValue:))
            ?? (input.lowercased().hasSuffix(".csv") ? .csv : .lineProtocol)
        // SIGINT/SIGTERM stop the import at a line boundary with what was read made durable. Plain
        // signal handlers rather than `TerminationSignals`: dispatch registers signal sources
        // asynchronously, and a signal in that window would be lost; `sigaction` is in force when it
        // returns.
        let interruption = ImportInterruption()
        interruptWakeDescriptor.store(interruption.wakeWriter, ordering: .releasing)
        for number in [SIGINT, SIGTERM] {
            signal(number) { number in
                receivedSignal.store(number, ordering: .relaxed)
                var byte: UInt8 = 1
                _ = write(interruptWakeDescriptor.load(ordering: .acquiring), &byte, 1)
            }
        }

        let spool: Spool
        do {
            spool = try await Spool.open(configuration)
        } catch {
            StandardError.print("edge-agent import: \(error)")
            return error.exitCode
        }

        let descriptor: Int32
        if input == "-" {
            descriptor = STDIN_FILENO
        } else {
            descriptor = open(input, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else {
                StandardError.print("edge-agent import: cannot open \(input): \(String(cString: strerror(errno)))")
                return .failure
            }
        }
        defer { if descriptor != STDIN_FILENO { close(descriptor) } }

        let progress = ProgressReporter(unit: "readings")
        let processing =
            rules.isEmpty
            ? nil
            : ProcessingSink(
                rules: rules, capacity: configuration.maxSeries ?? AgentService.defaultRuleSeries, inner: spool)
        var importer = Importer(sink: processing ?? spool, format: format)
        importer.onDurable = { progress.advance(by: $0) }
        importer.interruption = interruption
        let name = input == "-" ? "stdin" : input
        let result: ImportResult
        do {
            result = try await importer.run(fileDescriptor: descriptor)
        } catch {
            // What was imported before the failure is durable; so are the windows it left open.
            _ = try? await storeOpenWindows(processing)
            progress.finish()
            StandardError.print("edge-agent import: \(name): \(error)")
            switch error.reason {
            case .badLine: return .dataError
            case .spool(let spoolError): return spoolError.exitCode
            case .read: return .ioError
            case .interrupted:
                // The shell convention for "stopped by signal N"; everything reported is durable.
                exit(128 + receivedSignal.load(ordering: .relaxed))
            }
        }
        let windows: Int64
        do {
            windows = try await storeOpenWindows(processing)
        } catch {
            progress.finish()
            StandardError.print(
                "edge-agent import: \(name): \(result.summary) imported durably, but the open downsample windows"
                    + " were not stored: \(error)")
            return error.exitCode
        }
        progress.finish()
        print(
            "imported \(name): \(result.summary) into \(configuration.databasePath) (device \(spool.device), stream \(spool.stream))"
        )
        if let processing {
            print(summary(processing, parsed: result.parsedReadings, stored: result.readings + windows))
        }
        return .success
    }
}

extension ImportCommand {
    /// The import is over: the downsample windows it left open are stored now (as `run` does at
    /// shutdown), not lost with the process. Returns the readings stored.
    static func storeOpenWindows(_ processing: ProcessingSink?) async throws(SpoolError) -> Int64 {
        guard let processing else { return 0 }
        return Int64(try await processing.flushWindows(idle: nil))
    }

    /// `processing: 1000 readings read, 120 stored; rule range dropped 3; rule steady reduced 877`.
    static func summary(_ processing: ProcessingSink, parsed: Int64, stored: Int64) -> String {
        var parts = ["processing: \(parsed) readings read, \(stored) stored"]
        for (rule, counts) in processing.counts where !counts.isZero {
            let outcomes = [
                ("kept", counts.kept), ("dropped", counts.dropped), ("flagged", counts.flagged),
                ("reduced", counts.reduced), ("emitted", counts.emitted),
            ].filter { $0.1 > 0 }.map { "\($0.0) \($0.1)" }
            parts.append("rule \(rule.name) " + outcomes.joined(separator: ", "))
        }
        return parts.joined(separator: "; ")
    }
}

/// Written before the handlers are installed, read inside them (atomics are async-signal-safe).
private let interruptWakeDescriptor = Atomic<Int32>(-1)
private let receivedSignal = Atomic<Int32>(0)
