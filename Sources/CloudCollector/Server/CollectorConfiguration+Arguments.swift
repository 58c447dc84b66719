import EdgeSyncCodec
import EdgeSyncCommandLine
import EdgeSyncSQLite
import Foundation

/// `cloud-collector serve`'s settings: an optional JSON config file, then flags (flags win); every
/// bad setting is a `UsageError` naming it (exit 64). Parsed here, in the library, as the agent's
/// are (`AgentConfiguration`), so the executable only parses, runs and maps errors to exit codes.
extension CollectorService.Configuration {
    /// The flags of `serve` (and of `config check`, which takes them too).
    package static let options: [ArgumentParser.Option] = [
        .value("--listen", "HOST:PORT", help: "address to listen on (default 127.0.0.1:8080; IPv6 as [::1]:PORT)"),
        .value("--data-dir", "DIR", help: "directory holding collector.sqlite (embedded storage, the default)"),
        .value(
            "--database", "URL",
            help: "store in PostgreSQL instead: postgres://USER@HOST:PORT/DB (password in ~/.pgpass or $PGPASSWORD)"),
        .value("--config", "FILE", help: "JSON configuration file (keys in Docs/protocol.md)"),
        .value(
            "--operator-token-file", "FILE",
            help: "file holding the operator token that opens the query API (or $\(operatorTokenVariable))"),
    ]

    /// Environment variable holding the operator token itself (for containers and secret stores).
    package static let operatorTokenVariable = "CLOUD_COLLECTOR_OPERATOR_TOKEN"
    /// Shortest operator token accepted: guessing must be hopeless.
    package static let minimumOperatorTokenLength = 16

    /// The effective configuration `serve` would run with. `readsOperatorToken: false` (for `config
    /// check`) leaves the token unread and `operatorToken` nil, and the stream's secret files unread.
    package init(
        arguments parsed: ParsedArguments, environment: [String: String] = ProcessInfo.processInfo.environment,
        readsOperatorToken: Bool = true
    ) throws {
        let file = try parsed.value("--config").map { path throws(UsageError) in try ConfigurationFile(path: path) }
        // Read the file's value even when the flag wins, so the key counts as known.
        let fileDirectory = try file?.string("data_dir")
        let fileDatabase = try file?.string("database").map { try Self.databaseURL($0, setting: "database") }
        let database = try parsed.value("--database").map { try Self.databaseURL($0, setting: "--database") } ?? fileDatabase
        let directory = parsed.value("--data-dir") ?? fileDirectory
        guard database != nil || directory?.isEmpty == false else {
            throw UsageError("is required (or --database postgres://…)", setting: "--data-dir")
        }
        var configuration = Self(dataDirectory: directory ?? "")
        configuration.postgresURL = database
        let operatorTokenFile = try file?.string("operator_token_file")
        if let listen = try file?.string("listen", as: "HOST:PORT", Self.parseListen) {
            (configuration.host, configuration.port) = listen
        }
        if let listen = try parsed.value("--listen", as: "HOST:PORT", Self.parseListen) {
            (configuration.host, configuration.port) = listen
        }
        if let file {
            let positive: ClosedRange<Int64> = 1...Int64(Int32.max)
            if let mode = try file.string(
                "synchronous", as: "\"normal\" or \"full\"",
                { text -> SQLiteDatabase.Configuration.Synchronous? in
                    // ASCII-only text first: Unicode upper-casing maps "\u{FB00}" to "FF".
                    guard text.utf8.allSatisfy({ $0 < 0x80 }),
                        let mode = SQLiteDatabase.Configuration.Synchronous(rawValue: text.uppercased()), mode != .off
                    else { return nil }
                    return mode
                })
            {
                configuration.storage.synchronous = mode
            }
            if let layout = try file.string(
                "storage.layout", as: "\"rows\" or \"blocks\"", { ReadingLayout(rawValue: $0) })
            {
                configuration.storage.layout = layout
            }
            if let v = try file.integer("storage.block_readings", in: 1...Int64(ColumnBlock.maximumReadings)) {
                configuration.storage.blockReadings = Int(v)
            }
            if let v = try file.integer("queue.max_readings", in: positive) {
                configuration.writer.maximumQueuedReadings = Int(v)
            }
            if let v = try file.integer("queue.max_readings_per_transaction", in: positive) {
                configuration.writer.maximumReadingsPerTransaction = Int(v)
            }
            if let v = try file.integer("limits.max_frame_bytes", in: 64...Int64(Int32.max)) {
                configuration.ingest.limits.maximumFrameBytes = Int(v)
            }
            if let v = try file.integer("limits.max_payload_bytes", in: 64...Int64(Int32.max)) {
                configuration.ingest.limits.maximumPayloadBytes = Int(v)
            }
            if let v = try file.integer("limits.max_batch_readings", in: positive) {
                configuration.ingest.limits.maximumReadings = Int(v)
            }
            if let v = try file.integer("limits.max_concurrent_batches", in: positive) {
                configuration.ingest.maximumConcurrentRequests = Int(v)
            }
            if let v = try file.integer("http.event_loops", in: 1...64) { configuration.eventLoops = Int(v) }
            if let v = try file.integer("http.max_connections", in: positive) {
                configuration.maximumConnections = Int(v)
            }
            if let v = try file.integer("http.shutdown_grace_seconds", in: 0...3600) {
                configuration.shutdownGrace = .seconds(v)
            }
            if let v = try file.integer("storage.reader_connections", in: 1...64) {
                configuration.readerConnections = Int(v)
            }
            if let v = try file.integer("storage.cache_kib", in: 1024...Int64(Int32.max)) {
                configuration.storage.cacheKiB = Int(v)
            }
            if let v = try file.integer("storage.query_connections", in: 1...64) {
                configuration.queryConnections = Int(v)
            }
            configuration.stream = try StreamDestination(file: file, readsSecrets: readsOperatorToken)
            try file.rejectUnknownKeys()
        }
        if configuration.postgresURL != nil, configuration.storage.layout == .blocks {
            throw UsageError("\"blocks\" is for embedded SQLite storage only so far; PostgreSQL keeps rows", setting: "storage.layout")
        }
        if readsOperatorToken {
            configuration.operatorToken = try Self.operatorToken(
                flag: parsed.value("--operator-token-file"), fileKey: operatorTokenFile,
                environment: environment[Self.operatorTokenVariable])
        }
        self = configuration
    }

    /// A PostgreSQL URL (`postgres://` or `postgresql://`); anything else is refused by name, without
    /// echoing the value (a URL or libpq keyword string may hold a password).
    package static func databaseURL(_ text: String, setting: String) throws(UsageError) -> String {
        let lowered = text.lowercased()
        guard lowered.hasPrefix("postgres://") || lowered.hasPrefix("postgresql://"),
            text.count <= 4096, !text.contains(where: { $0.isNewline || $0 == "\u{0}" })
        else {
            throw UsageError(
                "must be a postgres:// or postgresql:// URL (the value is not shown: it may hold a password)",
                setting: setting)
        }
        return text
    }

    /// The operator token from, in order: the flag's file, the environment variable, the config
    /// file's `operator_token_file`; `nil` when none is set. Errors never show the token.
    package static func operatorToken(flag: String?, fileKey: String?, environment: String?) throws -> String? {
        let token: String
        let setting: String
        if let path = flag ?? (environment == nil ? fileKey : nil) {
            setting = flag != nil ? "--operator-token-file" : "operator_token_file"
            guard let data = FileManager.default.contents(atPath: path) else {
                throw UsageError("cannot read \(path)", setting: setting)
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw UsageError("\(path) is not UTF-8 text", setting: setting)
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let environment {
            setting = operatorTokenVariable
            token = environment.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            return nil
        }
        guard token.count >= minimumOperatorTokenLength else {
            throw UsageError(
                "the operator token must be at least \(minimumOperatorTokenLength) characters"
                    + " (for example the output of `openssl rand -hex 32`)", setting: setting)
        }
        guard !token.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw UsageError("the operator token must not contain spaces or line breaks", setting: setting)
        }
        return token
    }

    /// `HOST:PORT`, with IPv6 hosts in brackets (`ListenAddress`).
    package static func parseListen(_ text: String) -> (String, Int)? {
        ListenAddress.parse(text).map { ($0.host, $0.port) }
    }
}
