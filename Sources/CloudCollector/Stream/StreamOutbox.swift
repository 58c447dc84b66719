import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import Foundation
import Synchronization

/// How big the outbox is, shared by the store that adds to it (inside its ingest transaction) and
/// the relay that empties it (on its own connection), and the relay's wake-up call.
package final class StreamOutboxGauge: Sendable {
    private let state = Mutex((messages: Int64(0), bytes: Int64(0)))
    private let wake = DispatchSemaphore(value: 0)

    package init() {}

    package var messages: Int64 { state.withLock { $0.messages } }
    package var bytes: Int64 { state.withLock { $0.bytes } }

    /// The store committed `messages` more of `bytes`; wakes the relay.
    package func added(messages: Int64, bytes: Int64) {
        state.withLock {
            $0.messages += messages
            $0.bytes += bytes
        }
        wake.signal()
    }

    package func removed(messages: Int64, bytes: Int64) {
        state.withLock {
            $0.messages = max(0, $0.messages - messages)
            $0.bytes = max(0, $0.bytes - bytes)
        }
    }

    /// What a scan of the table found (at start).
    package func reset(messages: Int64, bytes: Int64) {
        state.withLock { $0 = (messages, bytes) }
    }

    /// Waits until something was added or `timeout` passed.
    package func waitForAdditions(timeout: Duration) {
        let (seconds, attoseconds) = timeout.components
        _ = wake.wait(timeout: .now() + .nanoseconds(Int(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)))
    }

    /// Wakes a waiting relay (to stop it).
    package func interrupt() { wake.signal() }
}

/// The store's half of the stream: what it writes into `stream_outbox` in the ingest transaction.
package struct StreamOutboxSettings: Sendable {
    package var messages: StreamMessages
    /// Past this many payload bytes waiting, ingest answers 503 `stream_backlog` (the edge keeps
    /// its readings) until the relay catches up.
    package var maximumBytes: Int64
    package var gauge: StreamOutboxGauge

    package init(messages: StreamMessages = StreamMessages(), maximumBytes: Int64 = 1 << 30, gauge: StreamOutboxGauge) {
        self.messages = messages
        self.maximumBytes = maximumBytes
        self.gauge = gauge
    }

    /// 503 before any work, when the outbox is over its bound.
    package func checkRoom() throws {
        let waiting = gauge.bytes
        guard waiting < maximumBytes else {
            throw CollectorError(
                .serviceUnavailable, "stream_backlog",
                "the downstream stream is \(waiting) bytes behind (limit \(maximumBytes)); nothing was stored; retry later",
                retryAfterSeconds: 30)
        }
    }
}

/// One message waiting in the outbox.
package struct OutboxEntry: Sendable, Equatable {
    package var id: Int64
    package var createdAt: Int64
    package var message: StreamMessage
}

/// Where the relay reads waiting messages and removes published ones; SQLite and PostgreSQL
/// each implement it over their own connection.
package protocol StreamOutboxReader: AnyObject {
    /// The oldest waiting messages, at most `limit`, in the order they were stored.
    func pending(limit: Int) throws -> [OutboxEntry]
    /// Removes published messages.
    func remove(_ ids: [Int64]) throws
    /// Messages and payload bytes waiting (a scan; for the gauge at start).
    func size() throws -> (messages: Int64, bytes: Int64)
}

/// The outbox in the collector's SQLite database (`stream_outbox`, `CollectorSchema`).
package enum SQLiteStreamOutbox {
    /// Adds the messages for the newly stored `ranges` of `batch`, inside the caller's transaction.
    /// Returns (messages, bytes) added, for the gauge once the transaction has committed.
    static func add(
        _ batch: Batch, ranges: [SequenceRange], settings: StreamOutboxSettings, receivedAt: Int64, in db: SQLiteDatabase
    ) throws -> (messages: Int64, bytes: Int64) {
        var added: (messages: Int64, bytes: Int64) = (0, 0)
        let insert = try db.statement(
            "INSERT INTO stream_outbox (created_at, subject, message_id, readings, payload) VALUES (?1, ?2, ?3, ?4, ?5)")
        for range in ranges {
            for message in settings.messages.messages(for: batch, range: range) {
                try insert.bind(receivedAt, at: 1)
                try insert.bind(message.subject, at: 2)
                try insert.bind(message.messageID, at: 3)
                try insert.bind(Int64(message.readings), at: 4)
                try insert.bind(bytes: message.payload, at: 5)
                try insert.run()
                added.messages += 1
                added.bytes += Int64(message.payload.count)
            }
        }
        return added
    }

    /// The relay's connection to the database file.
    package final class Reader: StreamOutboxReader {
        private let database: SQLiteDatabase

        package init(path: String) throws {
            var options = SQLiteDatabase.Configuration()
            options.synchronous = .full
            options.createsFile = false
            database = try SQLiteDatabase(path: path, configuration: options)
        }

        package func pending(limit: Int) throws -> [OutboxEntry] {
            let select = try database.statement(
                "SELECT outbox_id, created_at, subject, message_id, readings, payload FROM stream_outbox ORDER BY outbox_id LIMIT ?1")
            try select.bind(Int64(limit), at: 1)
            var entries: [OutboxEntry] = []
            while try select.step() {
                entries.append(
                    OutboxEntry(
                        id: select.int64(at: 0), createdAt: select.int64(at: 1),
                        message: StreamMessage(
                            subject: select.text(at: 2) ?? "", messageID: select.text(at: 3) ?? "",
                            payload: select.blob(at: 5),
                            readings: Int(select.int64(at: 4)))))
            }
            select.reset()
            return entries
        }

        package func remove(_ ids: [Int64]) throws {
            guard !ids.isEmpty else { return }
            try database.transaction(.immediate) { db in
                let delete = try db.statement("DELETE FROM stream_outbox WHERE outbox_id = ?1")
                for id in ids {
                    try delete.bind(id, at: 1)
                    try delete.run()
                }
            }
        }

        package func size() throws -> (messages: Int64, bytes: Int64) {
            let select = try database.statement("SELECT count(*), coalesce(sum(length(payload)), 0) FROM stream_outbox")
            defer { select.reset() }
            guard try select.step() else { return (0, 0) }
            return (select.int64(at: 0), select.int64(at: 1))
        }
    }
}
