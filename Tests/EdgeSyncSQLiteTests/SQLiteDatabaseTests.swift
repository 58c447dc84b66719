import CSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

@testable import EdgeSyncSQLite

@Suite struct SQLiteDatabaseTests {
    @Test func opensInWALModeWithTheRequestedSynchronousLevel() throws {
        try withTemporaryDirectory { directory in
            for level in SQLiteDatabase.Configuration.Synchronous.allCases {
                var configuration = SQLiteDatabase.Configuration()
                configuration.synchronous = level
                let database = try SQLiteDatabase(path: "\(directory)/\(level).db", configuration: configuration)
                #expect(try database.pragmaText("journal_mode") == "wal")
                let expected: Int64 =
                    switch level {
                    case .off: 0;
                    case .normal: 1;
                    case .full: 2
                    }
                #expect(try database.pragmaInteger("synchronous") == expected)
            }
        }
    }

    @Test func transactionCommitsOnReturnAndRollsBackOnThrow() throws {
        struct Abort: Error {}
        try withTemporaryDirectory { directory in
            let database = try SQLiteDatabase(path: "\(directory)/t.db")
            try database.execute("CREATE TABLE t (x INTEGER)")
            try database.transaction { db in
                try db.statement("INSERT INTO t VALUES (1)").run()
            }
            #expect(throws: Abort.self) {
                try database.transaction { db in
                    try db.statement("INSERT INTO t VALUES (2)").run()
                    throw Abort()
                }
            }
            #expect(!database.isInTransaction)
            let count = try database.statement("SELECT count(*), sum(x) FROM t")
            #expect(try count.step())
            #expect(count.int64(at: 0) == 1)
            #expect(count.int64(at: 1) == 1)
        }
    }

    @Test func errorsKeepTheExtendedResultCode() throws {
        try withTemporaryDirectory { directory in
            let database = try SQLiteDatabase(path: "\(directory)/t.db")
            try database.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            try database.execute("INSERT INTO t VALUES (1)")
            let error = #expect(throws: SQLiteError.self) {
                try database.statement("INSERT INTO t VALUES (1)").run()
            }
            #expect(error?.extendedCode == SQLITE_CONSTRAINT | (6 << 8))  // SQLITE_CONSTRAINT_PRIMARYKEY
            #expect(error?.isConstraintViolation == true)
            #expect(error?.description.contains("INSERT INTO t VALUES (1)") == true)
        }
    }

    /// SQLite stores a whole-number REAL as an integer and a NaN as NULL, so a REAL column cannot
    /// hold a reading's value bit-exactly; storage code keeps exact bits beside such columns.
    @Test func aRealColumnLosesNegativeZeroAndNaN() throws {
        try withTemporaryDirectory { directory in
            let database = try SQLiteDatabase(path: "\(directory)/t.db")
            try database.execute("CREATE TABLE t (r REAL, u)")
            let insert = try database.statement("INSERT INTO t VALUES (?, ?)")
            for value in [-0.0, Double.nan] {
                try insert.bind(value, at: 1)
                try insert.bind(value, at: 2)
                try insert.run()
            }
            let select = try database.statement("SELECT r, u, typeof(r) FROM t")
            #expect(try select.step())
            #expect(select.double(at: 0).sign == .plus)
            #expect(select.double(at: 1).sign == .minus)
            #expect(try select.step())
            #expect(select.text(at: 2) == "null")
        }
    }

    @Test func bindsAndReadsEveryColumnType() throws {
        try withTemporaryDirectory { directory in
            let database = try SQLiteDatabase(path: "\(directory)/t.db")
            try database.execute("CREATE TABLE t (i INTEGER, d, s TEXT, b BLOB, n BLOB)")
            let insert = try database.statement("INSERT INTO t VALUES (?, ?, ?, ?, ?)")
            try insert.bind(Int64.min, at: 1)
            try insert.bind(-0.0, at: 2)
            try insert.bind("grüße\u{0}tail", at: 3)
            try insert.bind(bytes: [0, 255, 7], at: 4)
            try insert.bind(bytes: [], at: 5)
            try insert.run()
            let select = try database.statement("SELECT i, d, s, b, n, typeof(n) FROM t")
            #expect(try select.step())
            #expect(select.int64(at: 0) == Int64.min)
            #expect(select.double(at: 1).sign == .minus)
            #expect(select.text(at: 2) == "grüße\u{0}tail")
            #expect(select.blob(at: 3) == [0, 255, 7])
            #expect(select.blob(at: 4) == [])
            #expect(select.text(at: 5) == "blob")
            #expect(try !select.step())
        }
    }

    @Test func aFileThatIsNotADatabaseIsReportedAsCorrupt() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/garbage.db"
            let garbage = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            try Data(garbage).write(to: URL(fileURLWithPath: path))
            let error = #expect(throws: SQLiteError.self) {
                let database = try SQLiteDatabase(path: path)
                _ = try database.integrityProblems()
            }
            #expect(error?.isCorrupt == true)
        }
    }

    @Test func aPageCapSurfacesAsDiskFull() throws {
        try withTemporaryDirectory { directory in
            let database = try SQLiteDatabase(path: "\(directory)/t.db")
            try database.execute("CREATE TABLE t (b BLOB)")
            try database.execute("PRAGMA max_page_count = 8")
            let insert = try database.statement("INSERT INTO t VALUES (?)")
            let error = #expect(throws: SQLiteError.self) {
                for _ in 0..<100 {
                    try insert.bind(bytes: [UInt8](repeating: 1, count: 4096), at: 1)
                    try insert.run()
                }
            }
            #expect(error?.isDiskFull == true)
            #expect(try database.integrityProblems().isEmpty)
        }
    }

    @Test func aReaderSeesCommittedDataWhileTheWriterHoldsATransaction() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/t.db"
            let writer = try SQLiteDatabase(path: path)
            try writer.execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)")
            var readOnly = SQLiteDatabase.Configuration()
            readOnly.isReadOnly = true
            readOnly.busyTimeout = .zero
            let reader = try SQLiteDatabase(path: path, configuration: readOnly)
            try writer.execute("BEGIN IMMEDIATE; INSERT INTO t VALUES (2)")
            let count = try reader.statement("SELECT count(*) FROM t")
            #expect(try count.step())
            #expect(count.int64(at: 0) == 1)
            try writer.execute("COMMIT")
            let again = try reader.statement("SELECT count(*) FROM t")
            #expect(try again.step())
            #expect(again.int64(at: 0) == 2)
        }
    }

    @Test func truncatingCheckpointEmptiesTheWAL() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/t.db"
            let database = try SQLiteDatabase(path: path)
            try database.execute("CREATE TABLE t (b BLOB)")
            let insert = try database.statement("INSERT INTO t VALUES (?)")
            for _ in 0..<50 {
                try insert.bind(bytes: [UInt8](repeating: 9, count: 4000), at: 1)
                try insert.run()
            }
            let walSize = { (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? -1 }
            #expect(walSize() > 0)
            try database.checkpoint(.truncate)
            #expect(walSize() == 0)
        }
    }
}

@Suite struct SQLiteConnectionQueueTests {
    @Test func concurrentCallersAreSerializedOnTheOneConnection() async throws {
        try await withTemporaryDirectory { directory in
            let queue = try SQLiteConnectionQueue(path: "\(directory)/q.db")
            try await queue.run { try $0.execute("CREATE TABLE t (x INTEGER)") }
            // Each caller reads then writes inside a transaction; overlapping callers would fail on
            // the nested BEGIN or lose increments.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<64 {
                    group.addTask {
                        try await queue.run { db in
                            try db.transaction { db in
                                try db.statement("INSERT INTO t SELECT coalesce(max(x), 0) + 1 FROM t").run()
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let (count, maximum) = try await queue.run { db -> (Int64, Int64) in
                let s = try db.statement("SELECT count(*), max(x) FROM t")
                _ = try s.step()
                return (s.int64(at: 0), s.int64(at: 1))
            }
            #expect(count == 64)
            #expect(maximum == 64)
        }
    }
}
