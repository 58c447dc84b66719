import EdgeSyncSQLite

/// The embedded backend's classification of SQLite's result codes.
extension SQLiteError: StorageErrorClassifying {
    package var storageErrorKind: StorageError.Kind? {
        if isDiskFull { return .diskFull }
        if isBusy { return .busy }
        return nil
    }
}
