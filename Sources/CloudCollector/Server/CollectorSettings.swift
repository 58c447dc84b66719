import EdgeSyncSQLite
import Foundation

/// `cloud-collector serve` settings from a JSON config file and flags (flags win), each checked by
/// name so a bad setting is reported as `setting "name": reason` (exit status 64 in the tool).
package struct CollectorSettings: Sendable {
    package struct Problem: Error, CustomStringConvertible, Sendable {
        package let setting: String
        package let reason: String
        package init(_ setting: String, _ reason: String) {
            self.setting = setting
            self.reason = reason
        }
        package var description: String { "setting \"\(setting)\": \(reason)" }
    }

    package var configuration: CollectorService.Configuration

    /// Every key a config file may hold, with what it expects.
    package static let keys: [String: String] = [
        "listen": "HOST:PORT",
        "dataDir": "a directory path",
        "synchronous": "\"normal\" or \"full\"",
        "maxQueuedReadings": "a positive integer",
        "maxReadingsPerTransaction": "a positive integer",
        "maxFrameBytes": "a positive integer",
        "maxPayloadBytes": "a positive integer",
        "maxBatchReadings": "a positive integer",
        "maxConcurrentBatches": "a positive integer",
        "eventLoops": "a positive integer",
        "readerConnections": "a positive integer",
        "shutdownGraceSeconds": "a non-negative integer",
    ]

    /// Builds settings from the config file's JSON object (if any) and then the flag values.
    package static func make(configFile: [String: Any]?, flags: [String: String]) throws(Problem) -> CollectorSettings {
        var merged: [String: Any] = configFile ?? [:]
        for (key, value) in flags { merged[key] = value }
        for key in merged.keys.sorted() where keys[key] == nil {
            throw Problem(key, "unknown setting; known settings are \(keys.keys.sorted().joined(separator: ", "))")
        }
        guard let dataDir = merged["dataDir"] else { throw Problem("dataDir", "required (--data-dir DIR)") }
        guard let dataDirectory = dataDir as? String, !dataDirectory.isEmpty else {
            throw Problem("dataDir", "expected \(keys["dataDir"] ?? "")")
        }
        var configuration = CollectorService.Configuration(dataDirectory: dataDirectory)
        if let listen = merged["listen"] {
            guard let text = listen as? String, let (host, port) = parseListen(text) else {
                throw Problem("listen", "expected HOST:PORT (IPv6 as [::1]:PORT), got \(listen)")
            }
            configuration.host = host
            configuration.port = port
        }
        if let value = merged["synchronous"] {
            switch (value as? String)?.lowercased() {
            case "normal": configuration.storage.synchronous = .normal
            case "full": configuration.storage.synchronous = .full
            default: throw Problem("synchronous", "expected \"normal\" or \"full\", got \(value)")
            }
        }
        func integer(_ key: String, minimum: Int = 1) throws(Problem) -> Int? {
            guard let value = merged[key] else { return nil }
            let number: Int?
            if let text = value as? String {
                number = Int(text)
            } else if let numeric = value as? NSNumber, !["true", "false"].contains("\(value)") {
                // JSON booleans also arrive as NSNumber; they are not integers here.
                number = Int(exactly: numeric.doubleValue)
            } else {
                number = nil
            }
            guard let number, number >= minimum else {
                throw Problem(key, "expected \(keys[key] ?? "an integer"), got \(value)")
            }
            return number
        }
        if let v = try integer("maxQueuedReadings") { configuration.writer.maximumQueuedReadings = v }
        if let v = try integer("maxReadingsPerTransaction") { configuration.writer.maximumReadingsPerTransaction = v }
        if let v = try integer("maxFrameBytes", minimum: 64) { configuration.ingest.limits.maximumFrameBytes = v }
        if let v = try integer("maxPayloadBytes", minimum: 64) { configuration.ingest.limits.maximumPayloadBytes = v }
        if let v = try integer("maxBatchReadings") { configuration.ingest.limits.maximumReadings = v }
        if let v = try integer("maxConcurrentBatches") { configuration.ingest.maximumConcurrentRequests = v }
        if let v = try integer("eventLoops") { configuration.eventLoops = v }
        if let v = try integer("readerConnections") { configuration.readerConnections = v }
        if let v = try integer("shutdownGraceSeconds", minimum: 0) { configuration.shutdownGrace = .seconds(v) }
        return CollectorSettings(configuration: configuration)
    }

    /// Reads a config file: a JSON object, or a problem naming the file.
    package static func loadConfigFile(_ path: String) throws(Problem) -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Problem("config", "cannot read \(path)")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw Problem("config", "\(path) is not valid JSON: \(error.localizedDescription)")
        }
        guard let dictionary = object as? [String: Any] else {
            throw Problem("config", "\(path) must hold a JSON object")
        }
        return dictionary
    }

    static func parseListen(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }
}
