import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

/// The pieces the collector added for checkpointing beside the writer.
struct WALHookTests {
    @Test func walHookReportsFramesAfterEachCommitAndDisablesAutocheckpoint() throws {
        try withTemporaryDirectory { directory in
            var configuration = SQLiteDatabase.Configuration()
            configuration.walAutocheckpointPages = 1
            let database = try SQLiteDatabase(path: directory + "/hook.sqlite", configuration: configuration)
            try database.execute("CREATE TABLE t (x BLOB)")
            var reported: [Int] = []
            database.onWALCommit { reported.append($0) }
            for _ in 0..<3 {
                try database.transaction { db in
                    let insert = try db.statement("INSERT INTO t VALUES (?)")
                    try insert.bind(bytes: [UInt8](repeating: 7, count: 20_000), at: 1)
                    try insert.run()
                }
            }
            #expect(reported.count == 3)
            // With the hook installed, autocheckpoint (every page) no longer resets the log.
            #expect(reported == reported.sorted() && (reported.last ?? 0) > (reported.first ?? 0))
            let (logFrames, checkpointed) = try database.checkpoint(.passive)
            #expect(logFrames == reported.last && checkpointed == logFrames)
        }
    }

    @Test func pageSizeAppliesToANewDatabase() throws {
        try withTemporaryDirectory { directory in
            var configuration = SQLiteDatabase.Configuration()
            configuration.pageSize = 16_384
            let database = try SQLiteDatabase(path: directory + "/pages.sqlite", configuration: configuration)
            try database.execute("CREATE TABLE t (x)")
            #expect(try database.pragmaInteger("page_size") == 16_384)
        }
    }

    @Test func submitRunsOnTheQueueInOrder() async throws {
        try await withTemporaryDirectory { directory in
            let queue = try SQLiteConnectionQueue(path: directory + "/submit.sqlite")
            try await queue.run { db in try db.execute("CREATE TABLE t (x INTEGER)") }
            for value in 0..<10 {
                queue.submit { db in try? db.execute("INSERT INTO t VALUES (\(value))") }
            }
            let values = try await queue.run { db -> [Int64] in
                let select = try db.prepare("SELECT x FROM t ORDER BY rowid")
                var values: [Int64] = []
                while try select.step() { values.append(select.int64(at: 0)) }
                return values
            }
            #expect(values == Array(0..<10))
        }
    }

    /// Issue 17: the spool's hook records frames and still checkpoints as SQLite's default would,
    /// so the log restarts instead of growing.
    @Test func aHookThatCheckpointsKeepsTheLogRestarting() throws {
        try withTemporaryDirectory { directory in
            for checkpoints in [false, true] {
                let database = try SQLiteDatabase(path: directory + "/hook-\(checkpoints).sqlite")
                try database.execute("CREATE TABLE t (x BLOB)")
                var reported: [Int] = []
                database.onWALCommit(checkpointingAt: checkpoints ? 10 : nil) { reported.append($0) }
                for _ in 0..<60 {
                    try database.execute("INSERT INTO t VALUES (randomblob(3000))")
                }
                let most = try #require(reported.max())
                if checkpoints {
                    #expect(most < 14, "\(reported)")
                } else {
                    #expect(most >= 60, "\(reported)")
                }
            }
        }
    }

    @Test func withSynchronousLowersForTheBodyOnlyAndNeverRaises() throws {
        try withTemporaryDirectory { directory in
            let database = try SQLiteDatabase(path: directory + "/sync.sqlite")
            #expect(database.synchronous == .full)
            let inside = try database.withSynchronous(.normal) { try database.pragmaInteger("synchronous") }
            #expect(inside == 1)
            #expect(try database.pragmaInteger("synchronous") == 2)
            #expect(database.synchronous == .full)
            struct Failure: Error {}
            #expect(throws: Failure.self) { try database.withSynchronous(.normal) { throw Failure() } }
            #expect(try database.pragmaInteger("synchronous") == 2)

            var configuration = SQLiteDatabase.Configuration()
            configuration.synchronous = .normal
            let relaxed = try SQLiteDatabase(path: directory + "/normal.sqlite", configuration: configuration)
            let kept = try relaxed.withSynchronous(.full) { try relaxed.pragmaInteger("synchronous") }
            #expect(kept == 1, "withSynchronous never raises the level")
        }
    }

    @Test func quickCheckWithADeadlineStopsInsteadOfRunningOn() throws {
        try withTemporaryDirectory { directory in
            let database = try SQLiteDatabase(path: directory + "/check.sqlite")
            try database.execute(
                """
                CREATE TABLE t (x BLOB); CREATE INDEX t_x ON t (x);
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
                INSERT INTO t SELECT randomblob(200) FROM n;
                """)
            #expect(try database.quickCheckProblems(deadline: .now - .seconds(1)) == nil)
            #expect(try database.quickCheckProblems(deadline: .now + .seconds(60)) == [])
            #expect(try database.quickCheckProblems(table: "t", deadline: .now + .seconds(60)) == [])
            #expect(throws: SQLiteError.self) {
                try database.quickCheckProblems(table: "missing", deadline: .now + .seconds(60))
            }
        }
    }
}
