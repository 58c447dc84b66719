import Dispatch
import EdgeSyncSQLite
import Foundation

/// The `cloud-collector` command line: `serve`, `token add|list|revoke`. Exit status 64 for bad
/// usage, naming the flag or setting; 1 for runtime failures.
package enum CollectorCommand {
    package static let usage = """
        usage: cloud-collector serve --data-dir DIR [--listen HOST:PORT] [--config FILE]
               cloud-collector token add --data-dir DIR DEVICE     (prints the new token)
               cloud-collector token list --data-dir DIR
               cloud-collector token revoke --data-dir DIR DEVICE

        """

    struct UsageError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Runs the command and returns the exit status.
    package static func run(_ arguments: [String]) async -> Int32 {
        do {
            guard let command = arguments.first else { throw UsageError("missing command") }
            let rest = Array(arguments.dropFirst())
            switch command {
            case "serve": return try await serve(rest)
            case "token": return try token(rest)
            case "--help", "-h", "help":
                print(usage, terminator: "")
                return 0
            default: throw UsageError("unknown command \"\(command)\"")
            }
        } catch let error as UsageError {
            standardError("cloud-collector: \(error)\n\(usage)")
            return 64
        } catch let error as CollectorSettings.Problem {
            standardError("cloud-collector: \(error)\n")
            return 64
        } catch {
            standardError("cloud-collector: \(error)\n")
            return 1
        }
    }

    /// Splits `--flag value` pairs (also `--flag=value`) from positional arguments; only `known`
    /// flags are accepted.
    static func parse(_ arguments: [String], known: [String: String]) throws -> (flags: [String: String], positional: [String]) {
        var flags: [String: String] = [:]
        var positional: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else {
                positional.append(argument)
                continue
            }
            var name = argument
            var value: String?
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                value = String(argument[argument.index(after: equals)...])
            }
            guard let key = known[name] else { throw UsageError("unknown flag \(name)") }
            if value == nil {
                guard index < arguments.count else { throw UsageError("flag \(name) needs a value") }
                value = arguments[index]
                index += 1
            }
            flags[key] = value
        }
        return (flags, positional)
    }

    static func serve(_ arguments: [String]) async throws -> Int32 {
        let (flags, positional) = try parse(
            arguments, known: ["--listen": "listen", "--data-dir": "dataDir", "--config": "config"])
        guard positional.isEmpty else { throw UsageError("unexpected argument \(positional[0])") }
        var settingFlags = flags
        let configPath = settingFlags.removeValue(forKey: "config")
        let file = try configPath.map { path throws(CollectorSettings.Problem) in try CollectorSettings.loadConfigFile(path) }
        let settings = try CollectorSettings.make(configFile: file, flags: settingFlags)

        let service = try CollectorService(configuration: settings.configuration)
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                standardError("level=info event=shutdown signal=\(number)\n")
                service.shutdown()
            }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        async let serving: Void = service.run()
        let address = try await service.localAddress
        standardError("level=info event=listening address=\(address) data_dir=\(settings.configuration.dataDirectory)\n")
        try await serving
        standardError("level=info event=stopped\n")
        return 0
    }

    static func token(_ arguments: [String]) throws -> Int32 {
        guard let action = arguments.first else { throw UsageError("token needs add, list or revoke") }
        let (flags, positional) = try parse(Array(arguments.dropFirst()), known: ["--data-dir": "dataDir"])
        guard let directory = flags["dataDir"], !directory.isEmpty else {
            throw UsageError("token \(action) needs --data-dir DIR")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent(CollectorSchema.databaseFileName)
        let database = try SQLiteDatabase(path: path)
        try SQLiteReadingStore.createSchema(database)
        switch action {
        case "add":
            guard positional.count == 1 else { throw UsageError("token add needs exactly one DEVICE") }
            let token = try TokenStore.add(
                device: positional[0], in: database, now: Int64(Date().timeIntervalSince1970))
            print(token.text)
        case "list":
            guard positional.isEmpty else { throw UsageError("token list takes no DEVICE") }
            for entry in try TokenStore.list(in: database) {
                let created = Date(timeIntervalSince1970: TimeInterval(entry.createdAt))
                print("\(entry.device)\t\(ISO8601DateFormatter().string(from: created))")
            }
        case "revoke":
            guard positional.count == 1 else { throw UsageError("token revoke needs exactly one DEVICE") }
            guard try TokenStore.revoke(device: positional[0], in: database) else {
                standardError("cloud-collector: device \"\(positional[0])\" has no token\n")
                return 1
            }
        default:
            throw UsageError("unknown token action \"\(action)\"")
        }
        return 0
    }

    static func standardError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
