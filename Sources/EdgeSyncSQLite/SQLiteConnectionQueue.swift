import Dispatch

/// The single owner of one `SQLiteDatabase`: every use of the connection runs on a private serial
/// dispatch queue, so blocking SQLite calls (and their fsyncs) never occupy the cooperative thread
/// pool, and no two uses ever overlap.
package final class SQLiteConnectionQueue: @unchecked Sendable {
    // `database` is touched only inside blocks running on `queue`, which runs one block at a time.
    private let database: SQLiteDatabase
    private let queue: DispatchQueue

    package var path: String { database.path }

    package init(
        path: String,
        configuration: SQLiteDatabase.Configuration = .init(),
        label: String = "edge-sync.sqlite"
    ) throws(SQLiteError) {
        // Opening happens on the caller's thread: nothing else can reach the connection yet.
        self.database = try SQLiteDatabase(path: path, configuration: configuration)
        self.queue = DispatchQueue(label: label)
    }

    /// Runs `body` with the connection on the queue and returns its result to the awaiting task.
    package func run<T: Sendable>(_ body: @escaping @Sendable (SQLiteDatabase) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try body(self.database) })
            }
        }
    }

    /// Runs `body` with the connection on the queue without waiting for it (fire and forget).
    package func submit(_ body: @escaping @Sendable (SQLiteDatabase) -> Void) {
        queue.async { body(self.database) }
    }

    /// Runs `body` with the connection, blocking the calling thread; for command-line tools and
    /// set-up code that is not running on the cooperative pool.
    package func runBlocking<T>(_ body: (SQLiteDatabase) throws -> T) rethrows -> T {
        try queue.sync { try body(database) }
    }
}
