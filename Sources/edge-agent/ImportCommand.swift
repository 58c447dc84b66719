import EdgeAgent
import EdgeSyncCommandLine
import Foundation
import Synchronization

/// `edge-agent import`: line protocol or CSV into the spool; exit 0 only when all of it is durable.
enum ImportCommand: Subcommand {
    static let names = [["import"]]
    static let summary = "enqueue readings from an InfluxDB line protocol or CSV file (or - for stdin)"
    static let usage = "--data-dir DIR --device ID [--format lp|csv] FILE|-"
    static let arguments = ArgumentParser(
        options: SpoolOptions.all + [
            .value("--format", "lp|csv", help: "input format (default: csv for *.csv files, else lp)")
        ],
        positionals: ["FILE"])

    static func run(_ arguments: ParsedArguments) async throws -> ExitCode {
        let configuration = try SpoolOptions.configuration(arguments)
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
        var importer = Importer(spool: spool, format: format)
        importer.onDurable = { progress.advance(by: $0) }
        importer.interruption = interruption
        let name = input == "-" ? "stdin" : input
        do {
            let result = try await importer.run(fileDescriptor: descriptor)
            progress.finish()
            print(
                "imported \(name): \(result.summary) into \(configuration.databasePath) (device \(spool.device), stream \(spool.stream))"
            )
            return .success
        } catch {
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
    }
}

/// Written before the handlers are installed, read inside them (atomics are async-signal-safe).
private let interruptWakeDescriptor = Atomic<Int32>(-1)
private let receivedSignal = Atomic<Int32>(0)
