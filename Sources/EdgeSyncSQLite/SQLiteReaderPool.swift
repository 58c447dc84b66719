import Synchronization

/// A few read-only connections to one database, each owned by its own serial queue and used in
/// turn, so reads run in parallel with each other and with the database's writer (WAL).
package final class SQLiteReaderPool: Sendable {
    private let readers: [SQLiteConnectionQueue]
    private let next = Atomic<Int>(0)

    /// Opens `count` (at least one) read-only connections to the database at `path`, which must exist.
    package init(path: String, count: Int, label: String) throws {
        var configuration = SQLiteDatabase.Configuration()
        configuration.isReadOnly = true
        readers = try (0..<max(1, count)).map { index in
            try SQLiteConnectionQueue(path: path, configuration: configuration, label: "\(label).\(index)")
        }
    }

    /// Runs `body` on the next connection in turn, off the cooperative thread pool.
    package func run<T: Sendable>(_ body: @escaping @Sendable (SQLiteDatabase) throws -> T) async throws -> T {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return try await readers[abs(index % readers.count)].run(body)
    }
}
