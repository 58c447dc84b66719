import CloudCollector
import EdgeSyncCommandLine
import EdgeSyncLogging

/// The collector's root logger: standard error.
let collectorLogger = StandardError.logger(label: "cloud-collector")

/// `serve`: parses the flags into a `CollectorService.Configuration` (the library reads the file and
/// checks every setting), runs the service until SIGTERM or SIGINT cancels it, and exits 0.
enum ServeCommand {
    static let parser = ArgumentParser(options: CollectorService.Configuration.options)

    static func run(_ arguments: [String]) async throws -> ExitCode {
        let configuration = try CollectorService.Configuration(arguments: parser.parse(arguments))
        let service = try CollectorService(configuration: configuration, logger: collectorLogger)
        // Catch SIGTERM from the start: a stop during start-up is still a clean stop.
        let signals = TerminationSignals.stream()
        try await TerminationSignals.runUntilSignal(signals, logger: collectorLogger) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                let address = try await service.localAddress
                collectorLogger.info(
                    "listening",
                    [
                        "address": "\(address)", "database": "\(configuration.databaseDescription)",
                        "query_api": configuration.operatorToken == nil ? "disabled" : "enabled",
                        "stream": "\(configuration.stream?.description ?? "off")",
                    ])
                try await group.waitForAll()
            }
        }
        collectorLogger.info("stopped")
        return .success
    }
}
