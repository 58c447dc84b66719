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
        print(summary(status, now: Int64(Date().timeIntervalSince1970 * 1e9)))
        return .success
    }

    /// A readable summary; the figures named as in `--json` so they can be found in either.
    static func summary(_ status: SpoolStatus, now: Int64) -> String {
        var lines = ["Spool of device \(status.device), stream \(status.stream)"]
        if status.queuedReadings == 0 {
            lines.append("  queue     empty: everything stored so far has been acknowledged by the collector")
        } else {
            var queue = "  queue     \(status.queuedReadings) readings waiting (queued_readings), \(bytes(status.queuedBytes)) encoded"
            if let ratio = status.compressionRatio { queue += String(format: ", %.3f of raw size", ratio) }
            lines.append(queue)
            if let oldest = status.oldestTimestamp {
                let age = status.oldestAgeSeconds(now: now) ?? 0
                lines.append("            oldest reading \(format(oldest)), \(duration(age)) ago")
            }
        }
        lines.append("  sequence  next_seq \(status.nextSequence) (\(status.nextSequence - 1) readings stored since the spool was created)")
        let cap = status.maxBytes.map { "cap \(bytes($0)), when full: \(status.whenFull.rawValue)" } ?? "no size cap"
        lines.append("  disk      \(bytes(status.spoolFileBytes)) on disk, WAL included (spool_file_bytes); \(cap); fsync \(status.fsync.rawValue)")
        let limit = status.maxSeries.map { "of at most \($0) (spool.max_series)" } ?? "(no limit)"
        lines.append("  series    \(status.series) written today or yesterday \(limit) (series)")
        for rule in status.processing {
            let counts = rule.counts
            lines.append(
                "  rule      \(rule.rule) (\(rule.type)): kept \(counts.kept), dropped \(counts.dropped), flagged \(counts.flagged),"
                    + " reduced \(counts.reduced), emitted \(counts.emitted) (processing)")
        }
        var problems: [String] = []
        if status.droppedReadings > 0 {
            problems.append(
                "\(status.droppedReadings) readings dropped by drop-oldest (dropped_readings)"
                    + (status.unreportedDroppedRanges > 0
                        ? ", \(status.unreportedDroppedRanges) ranges not yet reported to the collector" : ""))
        }
        if status.quarantinedReadings > 0 {
            problems.append("\(status.quarantinedReadings) readings quarantined: the collector refused them as malformed")
        }
        if status.seriesRefusedReadings > 0 {
            problems.append(
                "\(status.seriesRefusedReadings) readings refused: their series were new past spool.max_series (series_refused_readings)")
        }
        lines.append("  attention " + (problems.isEmpty ? "none" : problems.joined(separator: "; ")))
        return lines.joined(separator: "\n")
    }

    static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func duration(_ seconds: Double) -> String {
        switch seconds {
        case ..<120: String(format: "%.0f s", seconds)
        case ..<7200: String(format: "%.0f min", seconds / 60)
        case ..<172_800: String(format: "%.1f h", seconds / 3600)
        default: String(format: "%.1f days", seconds / 86400)
        }
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
