import EdgeSyncPostgres

/// The PostgreSQL backend's classification of its SQLSTATEs and connection failures.
extension PostgresError: StorageErrorClassifying {
    package var storageErrorKind: StorageError.Kind? {
        if isDiskFull { return .diskFull }
        if isUnavailable { return .unavailable }
        return nil
    }
}
