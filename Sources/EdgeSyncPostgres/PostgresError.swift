/// A failure talking to PostgreSQL: the server's error (with its SQLSTATE) or a lost or refused
/// connection. Messages come from libpq and the server; they never contain the connection
/// string's password.
package struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// The five-character SQLSTATE of a server error (`23505` unique violation, `40P01` deadlock...);
    /// `nil` when the connection failed or the client broke off.
    package var sqlState: String?
    package var message: String
    /// The connection is unusable (refused, lost, server shutting down): nothing about the
    /// statement's outcome is known except that an uncommitted transaction is gone. Try again later.
    package var isConnectionFailure: Bool

    package init(_ message: String, sqlState: String? = nil, isConnectionFailure: Bool = false) {
        self.message = message
        self.sqlState = sqlState
        self.isConnectionFailure = isConnectionFailure
    }

    /// The transaction lost a race (deadlock, serialization failure) and may simply be run again.
    package var isTransient: Bool {
        sqlState == "40P01" || sqlState == "40001"
    }

    /// The server's disk is full (53100 `disk_full`): nothing of the statement was stored.
    package var isDiskFull: Bool { sqlState == "53100" }

    /// The database cannot be used right now but may be soon: a lost or refused connection, the
    /// server refusing work while it starts up, shuts down or runs out of resources (class 08
    /// connection exception, 53 insufficient resources, 57P0x operator intervention / cannot connect
    /// now), a standby that takes no writes (25006), or a lock another session held too long (55P03).
    package var isUnavailable: Bool {
        if isConnectionFailure { return true }
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || sqlState.hasPrefix("53") || sqlState.hasPrefix("57P")
            || sqlState == "25006" || sqlState == "55P03"
    }

    package var description: String {
        if let sqlState { return "PostgreSQL error \(sqlState): \(message)" }
        return "PostgreSQL: \(message)"
    }
}
