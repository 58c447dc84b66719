import EdgeAgent
import EdgeSyncCommandLine
import Foundation

/// `edge-agent config check FILE [flags]`: loads the file exactly as `run` does (the same flags may
/// follow), rejects what `run` would reject with exit 64, and prints the effective settings.
///
/// `data_dir`, `device` and `collector.url` may be missing from the file, since they are often given
/// as flags (or the unit's command line): the summary then says "not set" and the check still
/// passes. The token is never read or printed: the summary names where `run` would take it from.
enum ConfigCheckCommand: Subcommand {
    static let names = [["config", "check"]]
    static let summary = "check a configuration file as run would load it and print the effective settings"
    static let usage = "FILE [the flags of run]"
    static let arguments = ArgumentParser(
        options: AgentConfiguration.options.filter { $0.name != "--config" }, positionals: ["FILE"])

    static func run(_ arguments: ParsedArguments) async throws -> ExitCode {
        guard let path = arguments.positionals.first else { throw UsageError("is required", setting: "FILE") }
        let file = try ConfigurationFile(path: path)
        var filled = arguments
        var unset: [String] = []
        for (flag, key) in [("--data-dir", "data_dir"), ("--device", "device"), ("--collector", "collector.url")] {
            let fromFile = try file.string(key)
            guard arguments.value(flag) == nil, fromFile == nil else { continue }
            // A stand-in so the rest of the file is still checked; reported as not set below.
            filled.values[flag] = [flag == "--collector" ? "http://not-set.invalid" : "not-set"]
            unset.append(key)
        }
        let tokenSource = try self.tokenSource(arguments, file: file)
        // The check never reads the token: run may see a credential this shell cannot.
        filled.values["--token"] = ["unread"]
        filled.values["--token-file"] = nil
        let configuration = try AgentConfiguration(file: file, arguments: filled, environment: [:])
        print(Self.describe(configuration, unset: Set(unset), tokenSource: tokenSource, path: path))
        return .success
    }

    /// Where `run` would take the token from, in its order of precedence.
    static func tokenSource(_ arguments: ParsedArguments, file: ConfigurationFile) throws(UsageError) -> String {
        if arguments.value("--token") != nil { return "--token (visible in ps: prefer a file)" }
        if let path = arguments.value("--token-file") { return "--token-file \(path)" }
        if let variable = ProcessInfo.processInfo.environment["EDGE_AGENT_TOKEN"], !variable.isEmpty {
            return "the EDGE_AGENT_TOKEN environment variable"
        }
        if let path = try file.string("collector.token_file") { return "collector.token_file \(path)" }
        return "not set (run needs --token-file, EDGE_AGENT_TOKEN or collector.token_file)"
    }

    static func describe(
        _ configuration: AgentConfiguration, unset: Set<String>, tokenSource: String, path: String
    ) -> String {
        func value(_ key: String, _ text: String) -> String {
            unset.contains(key) ? "not set (give it as a flag)" : text
        }
        func address(_ listen: (host: String, port: Int)?) -> String {
            listen.map { "\($0.host):\($0.port)" } ?? "off"
        }
        let spool = configuration.spool
        let upload = configuration.upload
        let transport = configuration.transport
        let simulator = configuration.inputs.simulator.map { "\($0.sensors) sensors at \($0.rateHz) Hz" } ?? "off"
        return [
            "\(path): ok",
            "device: \(value("device", spool.device))",
            "data_dir: \(value("data_dir", spool.dataDirectory))",
            "collector: \(value("collector.url", transport.baseURL))",
            "ca_file: \(transport.caFile ?? "the system's CAs")",
            "token: from \(tokenSource)",
            "spool: fsync \(spool.fsync.rawValue), max_bytes \(spool.maxBytes.map(String.init) ?? "unlimited"),"
                + " when_full \(spool.whenFull.rawValue)",
            "upload: batch_readings \(upload.maximumBatchReadings), replay_batch_readings \(upload.replayBatchReadings), batch_bytes \(upload.maximumBatchBytes),"
                + " max_in_flight \(upload.retry.maximumInFlight),"
                + " max_send_bytes_per_second \(configuration.maximumSendBytesPerSecond.map(String.init) ?? "unlimited")",
            "inputs: http \(address(configuration.inputs.http)), tcp \(address(configuration.inputs.tcp)),"
                + " udp \(address(configuration.inputs.udp)), simulator \(simulator)"
                + (configuration.inputs.mqtt.map {
                    ", mqtt \($0.host):\($0.port) topics \($0.session.filters.joined(separator: " "))"
                        + " qos \($0.session.qos) protocol \($0.session.connect.version.name)"
                } ?? ""),
        ].joined(separator: "\n")
    }
}
