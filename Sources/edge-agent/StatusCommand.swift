import EdgeAgent
import EdgeSyncCommandLine
import Foundation

/// `edge-agent status`: identity and queue counters of a spool, as text or JSON.
enum StatusCommand: Subcommand {
    static let names = [["status"]]
    static let summary = "show the spool's device, stream, queue depth, bytes and policies"
    static let usage = "--data-dir DIR [--json]"
    static let arguments = ArgumentParser(options: [
        SpoolOptions.dataDirectory, .flag("--json", help: "print one JSON object (keys in Docs/edge-agent.md)"),
    ])

    static func run(_ arguments: ParsedArguments) async throws -> ExitCode {
        let directory = try arguments.required("--data-dir")
        let status: SpoolStatus
        do {
            status = try Spool.inspect(dataDirectory: directory)
        } catch {
            StandardError.print("edge-agent status: \(error)")
            return error.kind == .damaged ? .dataError : .failure
        }
        if arguments.isSet("--json") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return .success
        }
        let rows: [(String, String)] = [
            ("device", status.device), ("stream", String(status.stream)), ("next_seq", String(status.nextSequence)),
            ("queued_readings", String(status.queuedReadings)), ("queued_bytes", String(status.queuedBytes)),
            ("queued_chunks", String(status.queuedChunks)), ("spool_file_bytes", String(status.spoolFileBytes)),
            (
                "oldest_timestamp",
                status.oldestTimestamp.map {
                    let age = status.oldestAgeSeconds(now: Int64(Date().timeIntervalSince1970 * 1e9)) ?? 0
                    return "\($0) (\(Self.format($0)), \(String(format: "%.0f", age)) s ago)"
                } ?? "-"
            ),
            ("compression_ratio", status.compressionRatio.map { String(format: "%.3f", $0) } ?? "-"),
            ("dropped_readings", String(status.droppedReadings)),
            ("unreported_dropped_ranges", String(status.unreportedDroppedRanges)),
            ("quarantined_readings", String(status.quarantinedReadings)), ("fsync", status.fsync.rawValue),
            ("max_bytes", status.maxBytes.map(String.init) ?? "none"), ("when_full", status.whenFull.rawValue),
        ]
        for (key, value) in rows { print("\(key.padding(toLength: 26, withPad: " ", startingAt: 0))\(value)") }
        return .success
    }

    static func format(_ nanoseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date(timeIntervalSince1970: Double(nanoseconds) / 1e9))
    }
}

/// `edge-agent spool check`: a thorough, read-only check of a spool file.
enum SpoolCheckCommand: Subcommand {
    static let names = [["spool", "check"], ["check-spool"]]
    static let summary = "check a spool file (integrity_check, every chunk decoded) and report"
    static let usage = "--data-dir DIR | FILE"
    static let arguments = ArgumentParser(options: [SpoolOptions.dataDirectory], positionals: ["FILE"])

    static func run(_ arguments: ParsedArguments) async throws -> ExitCode {
        let path: String
        if let directory = arguments.value("--data-dir") {
            path = Spool.databasePath(in: directory)
        } else if let file = arguments.positionals.first {
            path = file
        } else {
            throw UsageError("give --data-dir DIR or a spool FILE", setting: "--data-dir")
        }
        let report = Spool.check(databasePath: path)
        print(report.text)
        return report.isHealthy ? .success : .dataError
    }
}
