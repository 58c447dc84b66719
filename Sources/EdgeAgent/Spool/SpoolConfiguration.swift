import EdgeSyncSQLite
import Foundation

/// When a spool counts a write as durable; maps onto SQLite's `synchronous` setting in WAL mode.
package enum FsyncPolicy: String, Sendable, CaseIterable, Codable {
    /// Every acknowledged write is fsynced before `append` returns: it survives a power cut.
    case full
    /// Acknowledged writes survive a crash of the agent; a power cut can lose the last ones.
    case normal
    /// Unsafe: nothing is fsynced, so a power cut can lose acknowledged writes or damage the file.
    case off

    var synchronous: SQLiteDatabase.Configuration.Synchronous {
        switch self {
        case .full: .full
        case .normal: .normal
        case .off: .off
        }
    }
}

/// What a spool does when a write would take it past its size cap.
package enum FullPolicy: String, Sendable, CaseIterable, Codable {
    /// The write fails with a retryable ``SpoolError`` (`isRetryable`); nothing stored is touched.
    case reject
    /// The oldest unacknowledged chunks are removed to make room and recorded as dropped ranges.
    case dropOldest = "drop-oldest"
}

extension Spool {
    /// How a spool is opened. Defaults are the safe ones: fsync `full`, no size cap, reject when full.
    package struct Configuration: Sendable {
        /// The folder holding `spool.sqlite` (created when missing).
        package var dataDirectory: String
        /// The configured device id; it is stored at creation and must match on every later open.
        package var device: String
        package var fsync: FsyncPolicy = .full
        /// Cap on everything the spool takes on disk (database, `-wal` and `-shm` files); `nil` is no cap.
        /// At least ``minimumMaxBytes``.
        package var maxBytes: Int64?
        package var whenFull: FullPolicy = .reject
        /// Largest number of readings one stored chunk (and one group-commit transaction) holds.
        package var maxChunkReadings: Int = 65_536
        /// Most distinct series written within the current and the previous UTC day
        /// (`SeriesCatalog`); readings of further new series are refused. `nil`: no limit.
        package var maxSeries: Int? = 100_000
        /// The wall clock that days of the series limit are counted on (tests set it).
        package var seriesClock: @Sendable () -> Date = { Date() }
        /// Called with a loud message when a damaged spool file is moved aside at open, or a stored
        /// chunk that no longer decodes is quarantined. The library never writes to stderr itself.
        package var onDamagedFile: @Sendable (String) -> Void = { _ in }

        /// The smallest cap that leaves room for SQLite's own pages and a write-ahead log.
        package static let minimumMaxBytes: Int64 = 256 * 1024

        package init(dataDirectory: String, device: String) {
            self.dataDirectory = dataDirectory
            self.device = device
        }

        /// `dataDirectory/spool.sqlite`.
        package var databasePath: String { Spool.databasePath(in: dataDirectory) }
    }

    /// The spool database inside a data directory.
    package static func databasePath(in dataDirectory: String) -> String {
        (dataDirectory.hasSuffix("/") ? dataDirectory : dataDirectory + "/") + "spool.sqlite"
    }
}
