/// A storage failure that clients are answered differently for, whatever the backend: each backend
/// says which of its own errors are which (`SQLiteError+Storage.swift`, `PostgresError+Storage.swift`),
/// so the HTTP layer never looks at SQLite or PostgreSQL codes.
package struct StorageError: Error, CustomStringConvertible {
    package enum Kind: Sendable {
        /// The disk is full (SQLite `SQLITE_FULL`, PostgreSQL 53100); the transaction rolled back.
        case diskFull
        /// The database restarts or the network to it broke; sessions reconnect by themselves.
        case unavailable
        /// Another connection holds a lock; retrying soon succeeds.
        case busy
    }

    package let kind: Kind
    /// The backend's own error, for the log.
    package let underlying: any Error

    package init(_ kind: Kind, _ underlying: any Error) {
        self.kind = kind
        self.underlying = underlying
    }

    package var description: String { "\(underlying)" }

    /// `error` as a storage failure, when its backend classifies it as one.
    package init?(classifying error: any Error) {
        if let error = error as? StorageError {
            self = error
        } else if let kind = (error as? any StorageErrorClassifying)?.storageErrorKind {
            self.init(kind, error)
        } else {
            return nil
        }
    }
}

/// A backend's error type that knows which of its errors are storage failures (`StorageError.Kind`).
package protocol StorageErrorClassifying: Error {
    /// The kind, or nil when the error is none of them (an unknown failure: a bare 500).
    var storageErrorKind: StorageError.Kind? { get }
}
