import EdgeSyncSQLite
import Foundation

/// What `edge-agent spool check` found in a spool file.
package struct SpoolCheckReport: Sendable {
    package var path: String
    package var fileSizes: SQLiteFileSizes
    /// Everything wrong, one line each; empty when the file is sound.
    package var problems: [String] = []
    /// Identity and counters, when the file could be read as a spool.
    package var status: SpoolStatus?
    package var chunks = 0
    package var storedReadings: Int64 = 0

    package var isHealthy: Bool { problems.isEmpty }

    package var text: String {
        var lines = ["spool file: \(path)"]
        lines.append(
            "file bytes: \(fileSizes.total) (database \(fileSizes.database), wal \(fileSizes.wal), shm \(fileSizes.sharedMemory))"
        )
        if let status {
            lines.append("device: \(status.device)")
            lines.append("stream: \(status.stream)")
            lines.append("next_seq: \(status.nextSequence)")
        }
        lines.append("chunks: \(chunks), stored readings: \(storedReadings)")
        if problems.isEmpty {
            lines.append("result: ok (integrity_check passed, every chunk decodes and matches its row)")
        } else {
            lines.append("result: DAMAGED, \(problems.count) problem(s):")
            lines += problems.map { "  - " + $0 }
        }
        return lines.joined(separator: "\n")
    }
}

extension Spool {
    /// Reads the status of the spool in `dataDirectory` without changing it (another process may be
    /// writing it): no creation, no integrity check, no limits applied.
    /// - Throws: `.notFound` when there is no spool there, `.damaged` when it cannot be read as one.
    package static func inspect(dataDirectory: String) throws(SpoolError) -> SpoolStatus {
        let path = databasePath(in: dataDirectory)
        guard FileManager.default.fileExists(atPath: path) else {
            throw SpoolError(.notFound, "no spool in \(dataDirectory) (\(path) does not exist)")
        }
        do {
            var options = SQLiteDatabase.Configuration()
            options.createsFile = false
            let database = try SQLiteDatabase(path: path, configuration: options)
            let store = try SpoolStore(
                database: database, configuration: Configuration(dataDirectory: dataDirectory, device: ""),
                isInspecting: true)
            return try store.status()
        } catch {
            throw SpoolError.wrap(error, while: "reading spool \(path)")
        }
    }

    /// Checks the spool file at `path` thoroughly: `PRAGMA integrity_check`, the spool's tables, and
    /// every stored chunk decoded and compared with its row. Never changes or moves the file.
    package static func check(databasePath path: String) -> SpoolCheckReport {
        var report = SpoolCheckReport(path: path, fileSizes: SQLiteDatabase.fileSizes(ofDatabaseAt: path))
        guard FileManager.default.fileExists(atPath: path) else {
            report.problems.append("the file does not exist")
            return report
        }
        let database: SQLiteDatabase
        do {
            var options = SQLiteDatabase.Configuration()
            options.createsFile = false
            database = try SQLiteDatabase(path: path, configuration: options)
            report.problems += try database.integrityProblems(limit: 50).map { "integrity_check: \($0)" }
        } catch {
            report.problems.append("cannot open as SQLite: \(error)")
            return report
        }
        let store: SpoolStore
        do {
            store = try SpoolStore(
                database: database, configuration: Configuration(dataDirectory: "", device: ""), isInspecting: true)
            report.status = try store.status()
        } catch {
            report.problems.append("not readable as a spool: \(error)")
            return report
        }
        var previousLast: UInt64 = 0
        do {
            try store.forEachChunk { row, decoded in
                report.chunks += 1
                let span = "chunk \(row.first)-\(row.last)"
                if row.first <= previousLast && report.chunks > 1 {
                    report.problems.append("\(span) overlaps the chunk before it (ending at \(previousLast))")
                }
                previousLast = row.last
                if row.last >= store.nextSequence {
                    report.problems.append("\(span) lies at or past next_seq \(store.nextSequence)")
                }
                switch decoded {
                case .failure(let error):
                    report.problems.append("\(span) does not decode: \(error)")
                case .success(let batch):
                    report.storedReadings += Int64(batch.readings.count)
                    if batch.firstSequence != row.first || UInt64(batch.readings.count) != row.last - row.first + 1 {
                        report.problems.append(
                            "\(span) holds seq \(batch.firstSequence) + \(batch.readings.count) readings")
                    }
                    if batch.stream != store.stream || batch.device != store.device {
                        report.problems.append("\(span) belongs to device \(batch.device) stream \(batch.stream)")
                    }
                }
            }
        } catch {
            report.problems.append("reading the chunks failed: \(error)")
        }
        return report
    }
}
