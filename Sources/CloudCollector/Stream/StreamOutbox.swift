import EdgeSyncCodec
import EdgeSyncPostgres
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
    /// Hands the oldest waiting messages (at most `limit`, in the order they were stored) to
    /// `publish` and removes those whose ids it returns. With several collectors on one database
    /// (PostgreSQL), a message is handed to one relay at a time. Returns the entries handed over.
    func drain(limit: Int, _ publish: ([OutboxEntry]) throws -> [Int64]) throws -> [OutboxEntry]
    /// Messages and payload bytes waiting (a scan; for the gauge).
    func size() throws -> (messages: Int64, bytes: Int64)
}

extension StreamOutboxReader {
    /// The waiting messages without taking them (tests, status).
    package func pending(limit: Int) throws -> [OutboxEntry] { try drain(limit: limit) { _ in [] } }
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

        package func drain(limit: Int, _ publish: ([OutboxEntry]) throws -> [Int64]) throws -> [OutboxEntry] {
            // Only one collector writes a SQLite database, and its relay is the only remover:
            // no lock is needed between reading and removing.
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
                            payload: select.blob(at: 5), readings: Int(select.int64(at: 4)))))
            }
            select.reset()
            guard !entries.isEmpty else { return [] }
            let done = try publish(entries)
            guard !done.isEmpty else { return entries }
            try database.transaction(.immediate) { db in
                let delete = try db.statement("DELETE FROM stream_outbox WHERE outbox_id = ?1")
                for id in done {
                    try delete.bind(id, at: 1)
                    try delete.run()
                }
            }
            return entries
        }

        package func size() throws -> (messages: Int64, bytes: Int64) {
            let select = try database.statement("SELECT count(*), coalesce(sum(length(payload)), 0) FROM stream_outbox")
            defer { select.reset() }
            guard try select.step() else { return (0, 0) }
            return (select.int64(at: 0), select.int64(at: 1))
        }
    }
}

/// The outbox in PostgreSQL (`stream_outbox`, created when a stream is configured). Payloads are
/// line protocol, so they are kept as `text`.
package enum PostgresStreamOutbox {
    /// Creates the table when missing, under the schema lock. Not a numbered migration: a collector
    /// of an earlier release on the same database ignores the table instead of refusing a schema
    /// version it does not know (mixed fleets upgrade one collector at a time).
    static let createTable = """
        CREATE TABLE IF NOT EXISTS stream_outbox (
            outbox_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            created_at bigint NOT NULL,
            subject text NOT NULL,
            message_id text NOT NULL,
            readings bigint NOT NULL,
            payload text NOT NULL
        )
        """

    static func ensureTable(_ connection: PostgresConnection) throws {
        try connection.transaction { connection in
            try connection.query("SELECT pg_advisory_xact_lock($1)", [String(PostgresSchema.migrationLock)])
            try connection.execute(createTable)
        }
    }

    /// Adds the messages for the newly stored `ranges` of `batch`, inside the caller's transaction.
    static func add(
        _ batch: Batch, ranges: [SequenceRange], settings: StreamOutboxSettings, receivedAt: Int64,
        in connection: PostgresConnection
    ) throws -> (messages: Int64, bytes: Int64) {
        var added: (messages: Int64, bytes: Int64) = (0, 0)
        for range in ranges {
            for message in settings.messages.messages(for: batch, range: range) {
                try connection.query(
                    "INSERT INTO stream_outbox (created_at, subject, message_id, readings, payload) VALUES ($1, $2, $3, $4, $5)",
                    [
                        String(receivedAt), message.subject, message.messageID, String(message.readings),
                        String(decoding: message.payload, as: UTF8.self),
                    ])
                added.messages += 1
                added.bytes += Int64(message.payload.count)
            }
        }
        return added
    }

    /// A relay's own session. Rows are taken with `FOR UPDATE SKIP LOCKED` in the transaction that
    /// removes them, so the relays of several collectors never hand the same message over at once.
    package final class Reader: StreamOutboxReader {
        private let session: PostgresSession

        package init(session configuration: PostgresSession.Configuration) throws {
            session = PostgresSession(configuration: configuration)
            try session.withConnection { try PostgresStreamOutbox.ensureTable($0) }
        }

        package func drain(limit: Int, _ publish: ([OutboxEntry]) throws -> [Int64]) throws -> [OutboxEntry] {
            try session.withConnection { connection in
                try connection.transaction { connection in
                    let rows = try connection.query(
                        """
                        SELECT outbox_id, created_at, subject, message_id, readings, payload FROM stream_outbox
                        ORDER BY outbox_id LIMIT $1 FOR UPDATE SKIP LOCKED
                        """, [String(limit)])
                    var entries: [OutboxEntry] = []
                    for row in 0..<rows.count {
                        entries.append(
                            OutboxEntry(
                                id: try rows.requiredInt64(row, 0), createdAt: try rows.requiredInt64(row, 1),
                                message: StreamMessage(
                                    subject: rows.string(row, 2) ?? "", messageID: rows.string(row, 3) ?? "",
                                    payload: Array((rows.string(row, 5) ?? "").utf8),
                                    readings: Int(try rows.requiredInt64(row, 4)))))
                    }
                    guard !entries.isEmpty else { return [] }
                    let done = try publish(entries)
                    if !done.isEmpty {
                        try connection.query(
                            "DELETE FROM stream_outbox WHERE outbox_id = ANY($1::bigint[])",
                            ["{" + done.map(String.init).joined(separator: ",") + "}"])
                    }
                    return entries
                }
            }
        }

        package func size() throws -> (messages: Int64, bytes: Int64) {
            try session.withConnection { connection in
                let rows = try connection.query("SELECT count(*), coalesce(sum(octet_length(payload)), 0) FROM stream_outbox")
                return (try rows.requiredInt64(0, 0), try rows.requiredInt64(0, 1))
            }
        }
    }
}
