import EdgeSyncCommandLine

/// The flags of every command that opens the spool by itself (`import`, the crash tests'
/// `spool-torture`): parsed here, in the library, as `AgentConfiguration` is for `run` and `drain`.
extension Spool.Configuration {
    package static let dataDirectoryOption = ArgumentParser.Option.value(
        "--data-dir", "DIR", help: "folder holding spool.sqlite")
    package static let options: [ArgumentParser.Option] = [
        dataDirectoryOption,
        .value("--device", "ID", help: "this gateway's device id"),
        .value("--fsync", "full|normal|off", help: "when a write counts as durable (default full)"),
        .value("--max-bytes", "N", help: "cap on the spool's size on disk, WAL included"),
        .value("--when-full", "reject|drop-oldest", help: "what a full spool does (default reject)"),
    ]

    /// `--data-dir` and `--device` (required), `--fsync`, `--max-bytes`, `--when-full`; a bad value is
    /// a `UsageError` naming its flag (exit 64).
    package init(arguments: ParsedArguments) throws(UsageError) {
        self.init(dataDirectory: try arguments.required("--data-dir"), device: try arguments.required("--device"))
        if let fsync = try arguments.value("--fsync", as: "full, normal or off", FsyncPolicy.init(rawValue:)) {
            self.fsync = fsync
        }
        if let whenFull = try arguments.value("--when-full", as: "reject or drop-oldest", FullPolicy.init(rawValue:)) {
            self.whenFull = whenFull
        }
        maxBytes = try arguments.value(
            "--max-bytes", as: "a byte count of at least \(Self.minimumMaxBytes)",
            { Int64($0).flatMap { $0 >= Self.minimumMaxBytes ? $0 : nil } })
        guard !device.isEmpty, device.utf8.count <= 256 else {
            throw UsageError("must be 1...256 bytes", setting: "--device")
        }
    }
}
