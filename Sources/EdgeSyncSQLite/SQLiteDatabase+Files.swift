import Foundation

/// The files one WAL-mode database occupies on disk.
package struct SQLiteFileSizes: Sendable, Hashable {
    /// The main database file.
    package var database: Int64
    /// The `-wal` file (absent counts as 0).
    package var wal: Int64
    /// The `-shm` shared-memory index (absent counts as 0).
    package var sharedMemory: Int64

    /// Everything the database takes on disk, which is what a size cap has to count.
    package var total: Int64 { database + wal + sharedMemory }
}

extension SQLiteDatabase {
    /// The names of the files SQLite keeps beside a WAL-mode database at `path`.
    package static func companionPaths(of path: String) -> [String] {
        [path + "-wal", path + "-shm", path + "-journal"]
    }

    /// Sizes of the database at `path` and its `-wal` and `-shm` files, read with `stat`.
    package static func fileSizes(ofDatabaseAt path: String) -> SQLiteFileSizes {
        func size(_ file: String) -> Int64 {
            var info = stat()
            return stat(file, &info) == 0 ? Int64(info.st_size) : 0
        }
        return SQLiteFileSizes(database: size(path), wal: size(path + "-wal"), sharedMemory: size(path + "-shm"))
    }
}
