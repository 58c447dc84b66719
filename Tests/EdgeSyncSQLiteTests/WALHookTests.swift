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
}
