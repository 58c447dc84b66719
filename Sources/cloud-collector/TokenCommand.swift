import CloudCollector
import EdgeSyncCommandLine
import EdgeSyncSQLite
import Foundation

/// `token add|list|revoke --data-dir DIR [DEVICE]`.
enum TokenCommand {
    static func run(_ arguments: [String]) throws -> ExitCode {
        guard let action = arguments.first else { throw UsageError("token needs add, list or revoke") }
        let parser = ArgumentParser(
            options: [.value("--data-dir", "DIR", help: "the collector's data directory")],
            positionals: action == "list" ? [] : ["DEVICE"])
        let parsed = try parser.parse(arguments.dropFirst())
        let directory = try parsed.required("--data-dir")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent(CollectorSchema.databaseFileName)
        let database = try SQLiteDatabase(path: path)
        try SQLiteReadingStore.createSchema(database)
        switch action {
        case "add":
            let device = try parsed.positional(0, name: "DEVICE")
            guard !device.isEmpty, device.utf8.count <= 256 else {
                throw UsageError("a device id is 1 to 256 bytes", setting: "DEVICE")
            }
            let token = try TokenStore.add(device: device, in: database, now: Int64(Date().timeIntervalSince1970))
            print(token.text)
        case "list":
            let formatter = ISO8601DateFormatter()
            for entry in try TokenStore.list(in: database) {
                print(
                    "\(entry.device)\t\(formatter.string(from: Date(timeIntervalSince1970: TimeInterval(entry.createdAt))))"
                )
            }
        case "revoke":
            let device = try parsed.positional(0, name: "DEVICE")
            guard try TokenStore.revoke(device: device, in: database) else {
                standardError("cloud-collector: device \"\(device)\" has no token\n")
                return .failure
            }
        default:
            throw UsageError("unknown token action \"\(action)\"")
        }
        return .success
    }
}
