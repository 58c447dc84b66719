import EdgeSyncCodec
import EdgeSyncSQLite

/// Why a spool operation failed, with what a caller needs to decide between retrying and giving up.
package struct SpoolError: Error, CustomStringConvertible, Sendable {
    package enum Kind: Sendable, Hashable {
        /// The size cap is reached and the policy is `reject`: retry later (HTTP 503 with Retry-After).
        case full
        /// The file system is out of space (ENOSPC): retry when space returns.
        case diskFull
        /// The operating system reported a read, write or fsync failure.
        case ioError
        /// The spool file is damaged or is not a spool.
        case damaged
        /// The readings or arguments cannot be stored (an empty or oversized series key, …).
        case invalidInput
        /// The spool was created for another device id.
        case deviceMismatch
        /// `status` or `check` was asked about a data directory without a spool.
        case notFound
        /// New series past `spool.max_series`: the readings of those series were not stored.
        case seriesLimit
        /// Any other SQLite failure.
        case storage
    }

    package let kind: Kind
    package let message: String
    /// The SQLite error underneath, when there is one.
    package let underlying: SQLiteError?

    package init(_ kind: Kind, _ message: String, underlying: SQLiteError? = nil) {
        self.kind = kind
        self.message = message
        self.underlying = underlying
    }

    /// Nothing was written and the same call may succeed later.
    package var isRetryable: Bool { kind == .full || kind == .diskFull || kind == .ioError }

    package var description: String {
        guard let underlying else { return message }
        return "\(message) (\(underlying))"
    }

    /// Classifies an SQLite error raised while doing `action`.
    static func storage(_ error: SQLiteError, while action: String) -> SpoolError {
        if error.isDiskFull { return SpoolError(.diskFull, "\(action): the disk is full", underlying: error) }
        if error.isIOError { return SpoolError(.ioError, "\(action): I/O error", underlying: error) }
        if error.isCorrupt { return SpoolError(.damaged, "\(action): the spool file is damaged", underlying: error) }
        return SpoolError(.storage, "\(action) failed", underlying: error)
    }

    /// Wraps whatever a spool operation threw.
    static func wrap(_ error: any Error, while action: String) -> SpoolError {
        switch error {
        case let error as SpoolError: error
        case let error as SQLiteError: storage(error, while: action)
        case let error as CodecError: SpoolError(.damaged, "\(action): a stored chunk does not decode: \(error)")
        default: SpoolError(.storage, "\(action): \(error)")
        }
    }
}
