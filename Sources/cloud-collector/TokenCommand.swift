import CloudCollector
import EdgeSyncCommandLine
import EdgeSyncPostgres
import EdgeSyncSQLite
import Foundation

/// `token add|list|revoke (--data-dir DIR | --database URL) [DEVICE]`.
enum TokenCommand {
    static func run(_ arguments: [String]) throws -> ExitCode {
        guard let action = arguments.first else { throw UsageError("token needs add, list or revoke") }
        let parser = ArgumentParser(
            options: [
                .value("--data-dir", "DIR", help: "the collector's data directory (embedded storage)"),
                .value("--database", "URL", help: "the collectors' PostgreSQL database (postgres://…)"),
            ],
            positionals: action == "list" ? [] : ["DEVICE"])
        let parsed = try parser.parse(arguments.dropFirst())
        let tokens = try TokenDatabase.open(parsed)
        switch action {
        case "add":
            let device = try parsed.positional(0, name: "DEVICE")
            guard !device.isEmpty, device.utf8.count <= 256 else {
                throw UsageError("a device id is 1 to 256 bytes", setting: "DEVICE")
            }
            print(try tokens.add(device: device, now: Int64(Date().timeIntervalSince1970)).text)
        case "list":
            let formatter = ISO8601DateFormatter()
            for entry in try tokens.list() {
                print(
                    "\(entry.device)\t\(formatter.string(from: Date(timeIntervalSince1970: TimeInterval(entry.createdAt))))"
                )
            }
        case "revoke":
            let device = try parsed.positional(0, name: "DEVICE")
            guard try tokens.revoke(device: device) else {
                standardError("cloud-collector: device \"\(device)\" has no token\n")
                return .failure
            }
        default:
            throw UsageError("unknown token action \"\(action)\"")
        }
        return .success
    }
}

/// The token table of the embedded database or of PostgreSQL, created when missing.
private enum TokenDatabase {
    case sqlite(SQLiteDatabase)
    case postgres(PostgresConnection)

    static func open(_ parsed: ParsedArguments) throws -> TokenDatabase {
        if let url = try parsed.value("--database").map({ text throws(UsageError) in
            try CollectorService.Configuration.databaseURL(text, setting: "--database")
        }) {
            let connection = try PostgresConnection(url: url, applicationName: "cloud-collector token")
            try PostgresSchema.migrate(connection)
            return .postgres(connection)
        }
        guard let directory = parsed.value("--data-dir") else {
            throw UsageError("is required (or --database postgres://…)", setting: "--data-dir")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let database = try SQLiteDatabase(
            path: (directory as NSString).appendingPathComponent(CollectorSchema.databaseFileName))
        try SQLiteReadingStore.createSchema(database)
        return .sqlite(database)
    }

    func add(device: String, now: Int64) throws -> DeviceToken {
        switch self {
        case .sqlite(let database): try TokenStore.add(device: device, in: database, now: now)
        case .postgres(let connection): try PostgresTokenStore.add(device: device, in: connection, now: now)
        }
    }

    func list() throws -> [TokenStore.Entry] {
        switch self {
        case .sqlite(let database): try TokenStore.list(in: database)
        case .postgres(let connection): try PostgresTokenStore.list(in: connection)
        }
    }

    func revoke(device: String) throws -> Bool {
        switch self {
        case .sqlite(let database): try TokenStore.revoke(device: device, in: database)
        case .postgres(let connection): try PostgresTokenStore.revoke(device: device, in: connection)
        }
    }
}
