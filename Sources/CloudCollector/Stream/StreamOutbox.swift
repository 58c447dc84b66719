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

/// The store's half of the stream: what it writes into the outbox in the ingest transaction.
///
/// Each newly stored range of a batch becomes one row holding that range as a codec frame (the
/// wire format, without deflate): a few bytes a reading and no text formatting on the ingest
/// path. The relay decodes the frame and splits it into per-measurement line-protocol messages
/// (`StreamMessages`), whose ids depend only on (device, stream, range, measurement) and so come
/// out the same whenever they are made (decision 0025).
package struct StreamOutboxSettings: Sendable {
    /// Past this many bytes waiting (frames, and line protocol of rows of the first layout),
    /// ingest answers 503 `stream_backlog` (the edge keeps its readings) until the relay catches up.
    package var maximumBytes: Int64
    package var gauge: StreamOutboxGauge

    package init(maximumBytes: Int64 = 1 << 30, gauge: StreamOutboxGauge) {
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

    /// The readings of `batch` in `range` as one frame. Deterministic, lossless, version 3 without
    /// deflate: encoding costs a few percent of ingest, deflate would cost more than it saves.
    static func frame(of batch: Batch, range: SequenceRange) throws -> [UInt8] {
        let start = Int(range.first - batch.firstSequence)
        let end = start + Int(range.count)
        var slice = batch
        slice.sentAt = 0
        if start != 0 || end != batch.readings.count {
            slice.firstSequence = range.first
            slice.readings = Array(batch.readings[start..<end])
        }
        return try BatchEncoder(options: EncodingOptions(version: .v3)).encode(slice)
    }

    /// What the relay accepts from its own outbox: the frame was written by a collector after it
    /// passed that collector's ingest limits, which an operator may have raised; still bounded.
    static let frameLimits: DecodingLimits = {
        var limits = DecodingLimits()
        limits.maximumFrameBytes = Int(Int32.max)
        limits.maximumPayloadBytes = Int(Int32.max)
        limits.maximumReadings = Int(Int32.max)
        limits.maximumSeries = Int(Int32.max)
        limits.maximumSeriesKeyBytes = 1 << 20
        limits.maximumDeviceBytes = 1 << 16
        limits.maximumTotalSeriesKeyBytes = Int(Int32.max)
        return limits
    }()

    /// The messages an outbox frame becomes; an error names what is wrong with it.
    static func messages(ofFrame frame: [UInt8], using messages: StreamMessages) throws -> [StreamMessage] {
        let batch = try BatchDecoder(limits: frameLimits).decode(frame)
        guard !batch.readings.isEmpty else { return [] }
        let range = SequenceRange(batch.firstSequence, batch.firstSequence + UInt64(batch.readings.count) - 1)
        return messages.messages(for: batch, range: range)
    }
}

/// One row waiting in the outbox and the messages it becomes.
package struct OutboxEntry: Sendable, Equatable {
    package var id: Int64
    package var createdAt: Int64
    /// One message for a row of the first layout (line protocol, `stream_outbox`); one per
    /// measurement (and part) for a frame row (`stream_outbox_frames`). Empty when `damage` is set.
    package var messages: [StreamMessage]
    /// Bytes the row holds (the gauge's unit).
    package var storedBytes: Int64
    /// Why the row cannot be published (a frame that does not decode); it stays in the outbox.
    package var damage: String?

    package var readings: Int { messages.reduce(0) { $0 + $1.readings } }
}

/// Where the relay reads waiting messages and removes published ones; SQLite and PostgreSQL
/// each implement it over their own connection.
///
/// Two tables: `stream_outbox` (line-protocol messages, written by the first release with a
/// stream, read until empty) is drained before `stream_outbox_frames` (one frame per stored range).
package protocol StreamOutboxReader: AnyObject {
    /// Hands the oldest waiting rows (at most `limit`, and no more than `readings` readings
    /// beyond the first row, in the order they were stored) to `publish` and removes those whose
    /// ids it returns. With several collectors on one database (PostgreSQL), a row is handed to one
    /// relay at a time. Returns the entries handed over.
    func drain(limit: Int, readings: Int, _ publish: ([OutboxEntry]) throws -> [Int64]) throws -> [OutboxEntry]
    /// Rows and bytes waiting (a scan; for the gauge).
    func size() throws -> (messages: Int64, bytes: Int64)
}

extension StreamOutboxReader {
    /// The waiting entries without taking them (tests, status).
    package func pending(limit: Int) throws -> [OutboxEntry] {
        try drain(limit: limit, readings: Int.max) { _ in [] }
    }

    /// The first rows whose readings stay within `readings` (at least one).
    static func prefix(_ entries: [OutboxEntry], readings: Int) -> [OutboxEntry] {
        var total = 0
        var count = 0
        for entry in entries {
            let next = total + max(entry.readings, 1)
            if count > 0, next > readings { break }
            total = next
            count += 1
        }
        return Array(entries.prefix(count))
    }
}

/// A row of `stream_outbox_frames` as read: its frame decoded into messages, or the damage.
private func frameEntry(id: Int64, createdAt: Int64, frame: [UInt8], messages: StreamMessages) -> OutboxEntry {
    do {
        return OutboxEntry(
            id: id, createdAt: createdAt, messages: try StreamOutboxSettings.messages(ofFrame: frame, using: messages),
            storedBytes: Int64(frame.count))
    } catch {
        return OutboxEntry(
            id: id, createdAt: createdAt, messages: [], storedBytes: Int64(frame.count),
            damage: "outbox frame \(id) does not decode: \(error)")
    }
}

/// The outbox in the collector's SQLite database (`stream_outbox`, `stream_outbox_frames`,
/// `CollectorSchema`).
package enum SQLiteStreamOutbox {
    /// Adds a frame for each newly stored range of `batch`, inside the caller's transaction.
    /// Returns (rows, bytes) added, for the gauge once the transaction has committed.
    static func add(
        _ batch: Batch, ranges: [SequenceRange], settings: StreamOutboxSettings, receivedAt: Int64, in db: SQLiteDatabase
    ) throws -> (messages: Int64, bytes: Int64) {
        var added: (messages: Int64, bytes: Int64) = (0, 0)
        let insert = try db.statement(
            "INSERT INTO stream_outbox_frames (created_at, readings, frame) VALUES (?1, ?2, ?3)")
        for range in ranges {
            let frame = try StreamOutboxSettings.frame(of: batch, range: range)
            try insert.bind(receivedAt, at: 1)
            try insert.bind(Int64(range.count), at: 2)
            try insert.bind(bytes: frame, at: 3)
            try insert.run()
            added.messages += 1
            added.bytes += Int64(frame.count)
        }
        return added
    }

    /// The relay's connection to the database file.
    package final class Reader: StreamOutboxReader {
        private let database: SQLiteDatabase
        private let messages: StreamMessages

        package init(path: String, messages: StreamMessages = StreamMessages()) throws {
            var options = SQLiteDatabase.Configuration()
            options.synchronous = .full
            options.createsFile = false
            database = try SQLiteDatabase(path: path, configuration: options)
            self.messages = messages
        }

        package func drain(limit: Int, readings: Int, _ publish: ([OutboxEntry]) throws -> [Int64]) throws
            -> [OutboxEntry]
        {
            // Only one collector writes a SQLite database, and its relay is the only remover:
            // no lock is needed between reading and removing.
            var table = "stream_outbox"
            var entries: [OutboxEntry] = []
            let legacy = try database.statement(
                "SELECT outbox_id, created_at, subject, message_id, readings, payload FROM stream_outbox ORDER BY outbox_id LIMIT ?1")
            try legacy.bind(Int64(limit), at: 1)
            while try legacy.step() {
                let payload = legacy.blob(at: 5)
                entries.append(
                    OutboxEntry(
                        id: legacy.int64(at: 0), createdAt: legacy.int64(at: 1),
                        messages: [
                            StreamMessage(
                                subject: legacy.text(at: 2) ?? "", messageID: legacy.text(at: 3) ?? "",
                                payload: payload, readings: Int(legacy.int64(at: 4)))
                        ], storedBytes: Int64(payload.count)))
            }
            legacy.reset()
            if entries.isEmpty {
                table = "stream_outbox_frames"
                let select = try database.statement(
                    "SELECT outbox_id, created_at, frame FROM stream_outbox_frames ORDER BY outbox_id LIMIT ?1")
                try select.bind(Int64(limit), at: 1)
                var total = 0
                while try select.step() {
                    let entry = frameEntry(
                        id: select.int64(at: 0), createdAt: select.int64(at: 1), frame: select.blob(at: 2),
                        messages: messages)
                    total += max(entry.readings, 1)
                    if !entries.isEmpty, total > readings { break }
                    entries.append(entry)
                }
                select.reset()
            } else {
                entries = Self.prefix(entries, readings: readings)
            }
            guard !entries.isEmpty else { return [] }
            let done = try publish(entries)
            guard !done.isEmpty else { return entries }
            try database.transaction(.immediate) { db in
                let delete = try db.statement("DELETE FROM \(table) WHERE outbox_id = ?1")
                for id in done {
                    try delete.bind(id, at: 1)
                    try delete.run()
                }
            }
            return entries
        }

        package func size() throws -> (messages: Int64, bytes: Int64) {
            let select = try database.statement(
                """
                SELECT (SELECT count(*) FROM stream_outbox) + (SELECT count(*) FROM stream_outbox_frames),
                    (SELECT coalesce(sum(length(payload)), 0) FROM stream_outbox)
                    + (SELECT coalesce(sum(length(frame)), 0) FROM stream_outbox_frames)
                """)
            defer { select.reset() }
            guard try select.step() else { return (0, 0) }
            return (select.int64(at: 0), select.int64(at: 1))
        }
    }
}

/// The outbox in PostgreSQL (`stream_outbox` and `stream_outbox_frames`, created when a stream is
/// configured). Rows of the first layout hold line protocol as `text`; frames are `bytea`.
package enum PostgresStreamOutbox {
    /// Creates the tables when missing, under the schema lock. Not a numbered migration: a collector
    /// of an earlier release on the same database ignores the tables instead of refusing a schema
    /// version it does not know (mixed fleets upgrade one collector at a time); it keeps writing
    /// `stream_outbox`, which this release's relays drain too.
    static let createTable = """
        CREATE TABLE IF NOT EXISTS stream_outbox (
            outbox_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            created_at bigint NOT NULL,
            subject text NOT NULL,
            message_id text NOT NULL,
            readings bigint NOT NULL,
            payload text NOT NULL
        );
        CREATE TABLE IF NOT EXISTS stream_outbox_frames (
            outbox_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            created_at bigint NOT NULL,
            readings bigint NOT NULL,
            frame bytea NOT NULL
        )
        """

    static func ensureTable(_ connection: PostgresConnection) throws {
        try connection.transaction { connection in
            try connection.query("SELECT pg_advisory_xact_lock($1)", [String(PostgresSchema.migrationLock)])
            try connection.execute(createTable)
        }
    }

    /// Adds a frame for each newly stored range of `batch`, inside the caller's transaction.
    static func add(
        _ batch: Batch, ranges: [SequenceRange], settings: StreamOutboxSettings, receivedAt: Int64,
        in connection: PostgresConnection
    ) throws -> (messages: Int64, bytes: Int64) {
        var added: (messages: Int64, bytes: Int64) = (0, 0)
        for range in ranges {
            let frame = try StreamOutboxSettings.frame(of: batch, range: range)
            try connection.query(
                "INSERT INTO stream_outbox_frames (created_at, readings, frame) VALUES ($1, $2, $3::bytea)",
                [String(receivedAt), String(range.count), Self.hex(frame)])
            added.messages += 1
            added.bytes += Int64(frame.count)
        }
        return added
    }

    /// bytea's hex input and output form, `\x0a1b…` (parameters travel as text).
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "x")]
        out.reserveCapacity(2 + bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func bytes(fromHex text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0 else {
            return nil
        }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity((utf8.count - 2) / 2)
        var index = 2
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    /// A relay's own session. Rows are taken with `FOR UPDATE SKIP LOCKED` in the transaction that
    /// removes them, so the relays of several collectors never hand the same row over at once.
    package final class Reader: StreamOutboxReader {
        private let session: PostgresSession
        private let messages: StreamMessages

        package init(session configuration: PostgresSession.Configuration, messages: StreamMessages = StreamMessages())
            throws
        {
            session = PostgresSession(configuration: configuration)
            self.messages = messages
            try session.withConnection { try PostgresStreamOutbox.ensureTable($0) }
        }

        package func drain(limit: Int, readings: Int, _ publish: ([OutboxEntry]) throws -> [Int64]) throws
            -> [OutboxEntry]
        {
            try session.withConnection { connection in
                try connection.transaction { connection in
                    var table = "stream_outbox"
                    let legacy = try connection.query(
                        """
                        SELECT outbox_id, created_at, subject, message_id, readings, payload FROM stream_outbox
                        ORDER BY outbox_id LIMIT $1 FOR UPDATE SKIP LOCKED
                        """, [String(limit)])
                    var entries: [OutboxEntry] = []
                    for row in 0..<legacy.count {
                        let payload = Array((legacy.string(row, 5) ?? "").utf8)
                        entries.append(
                            OutboxEntry(
                                id: try legacy.requiredInt64(row, 0), createdAt: try legacy.requiredInt64(row, 1),
                                messages: [
                                    StreamMessage(
                                        subject: legacy.string(row, 2) ?? "", messageID: legacy.string(row, 3) ?? "",
                                        payload: payload, readings: Int(try legacy.requiredInt64(row, 4)))
                                ], storedBytes: Int64(payload.count)))
                    }
                    if entries.isEmpty {
                        table = "stream_outbox_frames"
                        let rows = try connection.query(
                            """
                            SELECT outbox_id, created_at, frame FROM stream_outbox_frames
                            ORDER BY outbox_id LIMIT $1 FOR UPDATE SKIP LOCKED
                            """, [String(limit)])
                        var total = 0
                        for row in 0..<rows.count {
                            let id = try rows.requiredInt64(row, 0)
                            let text = rows.string(row, 2) ?? ""
                            let entry =
                                if let frame = PostgresStreamOutbox.bytes(fromHex: text) {
                                    frameEntry(
                                        id: id, createdAt: try rows.requiredInt64(row, 1), frame: frame,
                                        messages: messages)
                                } else {
                                    OutboxEntry(
                                        id: id, createdAt: try rows.requiredInt64(row, 1), messages: [],
                                        storedBytes: Int64(text.utf8.count / 2),
                                        damage: "outbox frame \(id) is not bytea hex text")
                                }
                            total += max(entry.readings, 1)
                            if !entries.isEmpty, total > readings { break }
                            entries.append(entry)
                        }
                    } else {
                        entries = Self.prefix(entries, readings: readings)
                    }
                    guard !entries.isEmpty else { return [] }
                    let done = try publish(entries)
                    if !done.isEmpty {
                        try connection.query(
                            "DELETE FROM \(table) WHERE outbox_id = ANY($1::bigint[])",
                            ["{" + done.map(String.init).joined(separator: ",") + "}"])
                    }
                    return entries
                }
            }
        }

        package func size() throws -> (messages: Int64, bytes: Int64) {
            try session.withConnection { connection in
                let rows = try connection.query(
                    """
                    SELECT (SELECT count(*) FROM stream_outbox) + (SELECT count(*) FROM stream_outbox_frames),
                        (SELECT coalesce(sum(octet_length(payload)), 0) FROM stream_outbox)
                        + (SELECT coalesce(sum(octet_length(frame)), 0) FROM stream_outbox_frames)
                    """)
                return (try rows.requiredInt64(0, 0), try rows.requiredInt64(0, 1))
            }
        }
    }
}
