import CloudCollector
import EdgeSyncCommandLine
import Foundation

/// `cloud-collector config check FILE [--data-dir DIR] [--listen HOST:PORT]`: loads the file exactly
/// as `serve --config FILE` does, rejects what `serve` would reject with exit 64, and prints the
/// effective settings.
///
/// `data_dir` may be missing from the file (it is often given as `--data-dir`): the summary then
/// says "not set" and the check passes. The operator token is never read or printed; the summary
/// names where `serve` would take it from.
enum ConfigCheckCommand {
    static let parser = ArgumentParser(
        options: CollectorService.Configuration.options.filter { $0.name != "--config" }, positionals: ["FILE"])

    static func run(_ arguments: [String]) throws -> ExitCode {
        let parsed = try parser.parse(arguments)
        guard let path = parsed.positionals.first else { throw UsageError("is required", setting: "FILE") }
        let file = try ConfigurationFile(path: path)
        var filled = parsed
        filled.values["--config"] = [path]
        let hasDatabase = try parsed.value("--database") != nil || file.string("database") != nil
        let hasDataDirectory = try parsed.value("--data-dir") != nil || file.string("data_dir") != nil
        if !hasDataDirectory { filled.values["--data-dir"] = ["not-set"] }
        let configuration = try CollectorService.Configuration(arguments: filled, readsOperatorToken: false)
        let tokenFile = try file.string("operator_token_file")
        let tokenSource =
            if let flag = parsed.value("--operator-token-file") {
                "--operator-token-file \(flag)"
            } else if ProcessInfo.processInfo.environment[CollectorService.Configuration.operatorTokenVariable] != nil {
                "the \(CollectorService.Configuration.operatorTokenVariable) environment variable"
            } else if let tokenFile {
                "operator_token_file \(tokenFile)"
            } else {
                "none: the query API stays closed (403)"
            }
        let limits = configuration.ingest.limits
        print(
            [
                "\(path): ok",
                "listen: \(configuration.host):\(configuration.port)",
                hasDatabase
                    ? "database: \(configuration.databaseDescription)"
                    : "data_dir: \(hasDataDirectory ? configuration.dataDirectory : "not set (give it as --data-dir)")",
                "synchronous: \(configuration.storage.synchronous.rawValue.lowercased())",
                "operator token: \(tokenSource)",
                "limits: max_frame_bytes \(limits.maximumFrameBytes), max_payload_bytes \(limits.maximumPayloadBytes),"
                    + " max_batch_readings \(limits.maximumReadings),"
                    + " max_concurrent_batches \(configuration.ingest.maximumConcurrentRequests)",
                "queue: max_readings \(configuration.writer.maximumQueuedReadings),"
                    + " max_readings_per_transaction \(configuration.writer.maximumReadingsPerTransaction)",
                "http: event_loops \(configuration.eventLoops), max_connections \(configuration.maximumConnections)",
                "stream: " + (configuration.stream.map { "\($0.description), max_outbox_bytes \($0.maximumOutboxBytes)" } ?? "off"),
            ].joined(separator: "\n"))
        return .success
    }
}
