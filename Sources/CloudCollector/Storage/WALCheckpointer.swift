import EdgeSyncSQLite
import Synchronization

/// Copies the writer's WAL into the database file from its own connection and thread, so that
/// checkpoint work runs beside the writer (on the second core) instead of inside its commits.
///
/// The writer calls ``walGrew(to:)`` after each commit (from its WAL hook); once the log holds
/// ``Configuration/checkpointPages`` frames a passive checkpoint is scheduled, never more than one
/// at a time. A passive checkpoint never blocks the writer or readers.
package final class WALCheckpointer: Sendable {
    package struct Configuration: Sendable {
        /// WAL frames (pages) that trigger a background checkpoint.
        package var checkpointPages = 2_000
        package init() {}
    }

    private struct State {
        var isRunning = false
        var needsAnother = false
        var isFinished = false
    }

    private let connection: SQLiteConnectionQueue
    private let configuration: Configuration
    private let state = Mutex(State())
    private let onError: @Sendable (SQLiteError) -> Void

    package init(
        databasePath: String, configuration: Configuration = Configuration(),
        onError: @escaping @Sendable (SQLiteError) -> Void
    ) throws {
        var options = SQLiteDatabase.Configuration()
        options.usesWAL = true
        connection = try SQLiteConnectionQueue(
            path: databasePath, configuration: options, label: "cloud-collector.checkpointer")
        self.configuration = configuration
        self.onError = onError
    }

    /// Called by the writer with the WAL's frame count after a commit.
    package func walGrew(to frames: Int) {
        guard frames >= configuration.checkpointPages else { return }
        let starts = state.withLock { state in
            if state.isFinished { return false }
            if state.isRunning {
                state.needsAnother = true
                return false
            }
            state.isRunning = true
            return true
        }
        if starts { connection.submit { database in self.run(database) } }
    }

    /// Schedules no more checkpoints and waits for the one running, if any, to end. A clean stop
    /// calls it before its own truncating checkpoint, which SQLite refuses (SQLITE_BUSY, without
    /// waiting) while another connection checkpoints.
    package func finish() {
        state.withLock { state in
            state.isFinished = true
            state.needsAnother = false
        }
        connection.runBlocking { _ in }
    }

    /// Runs on the checkpointer's queue.
    private func run(_ database: SQLiteDatabase) {
        while true {
            do {
                try database.checkpoint(.passive)
            } catch {
                onError(error)
            }
            let again = state.withLock { state in
                if state.needsAnother {
                    state.needsAnother = false
                    return true
                }
                state.isRunning = false
                return false
            }
            if !again { return }
        }
    }
}
