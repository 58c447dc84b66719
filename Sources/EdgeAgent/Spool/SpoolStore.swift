import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import Foundation

/// A producer's write with its series keys already turned into indices; what group commit gathers.
struct PendingWrite: Sendable {
    var seriesKeys: [String]
    var readings: [Reading]
    /// Written in the same transaction as the readings (`SpoolStore+Deliveries.swift`).
    var deliveries: DeliveryRecord? = nil
    /// Series keys for the `series` table (`SeriesCatalog`), written with the readings.
    var catalogKeys: [String] = []
    var seriesDay: Int32 = 0
    /// What the processing rules did to this write, added to `processing_counts` in the same
    /// transaction (`SpoolStore+ProcessingCounts.swift`). A write may hold counts and no readings.
    var processingCounts: [ProcessingRuleCounts] = []
}

/// One stored chunk's bookkeeping columns (its payload is read only when needed).
struct ChunkRow {
    var first: UInt64
    var last: UInt64
    var quarantine: String?
}

/// The spool's tables and everything done with them.
///
/// Storage unit: one row per encoded chunk (a codec frame of contiguous sequence numbers), written
/// once per group commit; see `Docs/decisions/0006-spool-storage-unit.md`. Every chunk holds only
/// unacknowledged readings: acknowledging part of a chunk re-encodes the parts that stay.
///
/// Not `Sendable`: it lives on the spool's connection queue together with its connection.
final class SpoolStore {
    static let formatVersion: Int64 = 1

    let database: SQLiteDatabase
    let configuration: Spool.Configuration
    private(set) var device: String = ""
    private(set) var stream: UInt64 = 0
    private(set) var nextSequence: UInt64 = 1
    /// The last day `recordSeries` forgot old series for.
    var seriesSweptDay: Int32 = 0
    /// The small chunks written most recently, adjacent and in order: candidates to merge, because a
    /// slow trickle of small group commits would otherwise pay a frame header and a key table each.
    private var smallChunks: [SequenceRange] = []
    /// A chunk below this many readings is "small".
    static let smallChunkReadings = 2_000
    /// How many small chunks are merged at a time.
    static let compactionRun = 32
    /// Chunks are written in the current format (version 3): what is stored is what goes on the wire.
    /// Chunks of the previous release (version 2) stay readable and are sent as they are too.
    private let encoder = BatchEncoder()
    private let decoder = BatchDecoder()
    /// `max_page_count` for ordinary writes and the higher one used while deleting, so that dropping
    /// or acknowledging (which may need a few pages of its own) works on a full spool.
    private var pageLimits: (normal: Int64, relaxed: Int64)?
    /// Readings one group-commit transaction may hold, so that the WAL stays inside its share of the cap.
    private(set) var transactionReadings: Int
    /// WAL size at which the spool asks its second connection for a background checkpoint, so that
    /// checkpoints (and their fsyncs of the main file) stay off the commit path.
    private(set) var backgroundCheckpointBytes: Int64 = uncappedBackgroundCheckpointBytes
    /// With a byte cap: the WAL size past which the writer checkpoints before its next commit, even if
    /// that means waiting for a background checkpoint (which would make its own autocheckpoint fail
    /// busy, letting the WAL outgrow its share of the cap).
    private(set) var capWALBytes: Int64?
    /// Without a byte cap: the WAL size at which the writer checkpoints itself (and to which the WAL
    /// is truncated when it restarts).
    static let uncappedWALBytes: Int64 = 1 << 20
    /// Without a byte cap: the WAL size from which the second connection checkpoints in the background.
    static let uncappedBackgroundCheckpointBytes: Int64 = 256 << 10

    /// Opens the spool tables on `database`, creating them when the file is new.
    /// - Throws: `SpoolError` `.damaged` when the file fails `quick_check` or is not a spool,
    ///   `.deviceMismatch` when it belongs to another device.
    /// - Parameter isInspecting: open an existing spool only to read it: any device, no limits or
    ///   policies written, no integrity check (for `status`).
    init(database: SQLiteDatabase, configuration: Spool.Configuration, isInspecting: Bool = false) throws {
        self.database = database
        self.configuration = configuration
        self.transactionReadings = configuration.maxChunkReadings * 4
        if !isInspecting {
            let problems = try database.quickCheckProblems()
            guard problems.isEmpty else {
                throw SpoolError(.damaged, "quick_check: " + problems.prefix(3).joined(separator: "; "))
            }
        }
        let tables = try database.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        try tables.step()
        let tableCount = tables.int64(at: 0)
        tables.reset()
        if tableCount == 0 {
            guard !isInspecting else { throw SpoolError(.notFound, "\(database.path) holds no spool") }
            try create()
        } else {
            try load(anyDevice: isInspecting)
        }
        guard !isInspecting else { return }
        try createDeliveriesTableIfMissing()
        try createSeriesTableIfMissing()
        try createProcessingCountsTableIfMissing()
        try applyLimits()
        // Debian's SQLite is built with secure_delete on: every page a deletion frees is zeroed and
        // written, so acknowledging a chunk cost as many bytes written as storing it (twice, WAL and
        // checkpoint). FAST zeroes only what is written anyway; acknowledged readings are on the
        // collector already, and free pages are overwritten as new chunks reuse them.
        try database.execute("PRAGMA secure_delete = FAST")
        // Recorded so `edge-agent status` (another process) can show the policies in force.
        try database.transaction(.immediate) { _ throws in
            let upsert = try database.statement("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")
            for (key, value) in [
                ("fsync", configuration.fsync.rawValue), ("when_full", configuration.whenFull.rawValue),
                ("max_bytes", configuration.maxBytes.map(String.init) ?? ""),
                ("max_series", configuration.maxSeries.map(String.init) ?? ""),
            ] {
                try upsert.bind(key, at: 1)
                try upsert.bind(value, at: 2)
                try upsert.run()
            }
        }
    }

    private func create() throws {
        // auto_vacuum must be chosen before the first table; INCREMENTAL lets freed pages be returned.
        try database.execute("PRAGMA auto_vacuum = INCREMENTAL")
        if try database.pragmaInteger("auto_vacuum") != 2 { try database.execute("VACUUM") }
        var generator = SystemRandomNumberGenerator()
        var stream: UInt64 = 0
        while stream == 0 { stream = generator.next() }
        try database.transaction(.immediate) { db throws in
            try db.execute(
                """
                CREATE TABLE meta(key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;
                CREATE TABLE chunks(
                    first_seq INTEGER PRIMARY KEY,
                    last_seq INTEGER NOT NULL,
                    readings INTEGER NOT NULL,
                    oldest_timestamp INTEGER NOT NULL,
                    bytes INTEGER NOT NULL,
                    quarantine TEXT,
                    payload BLOB NOT NULL
                );
                CREATE TABLE dropped(
                    first_seq INTEGER PRIMARY KEY,
                    last_seq INTEGER NOT NULL,
                    reported INTEGER NOT NULL DEFAULT 0
                );
                """)
            let insert = try db.prepare("INSERT INTO meta(key, value) VALUES (?1, ?2)")
            for (key, value) in [
                ("format", Self.formatVersion), ("stream", Int64(bitPattern: stream)), ("next_seq", 1),
                ("dropped_readings", 0), ("created_at", Int64(Date().timeIntervalSince1970)),
            ] {
                try insert.bind(key, at: 1)
                try insert.bind(value, at: 2)
                try insert.run()
            }
            try insert.bind("device", at: 1)
            try insert.bind(configuration.device, at: 2)
            try insert.run()
        }
        self.device = configuration.device
        self.stream = stream
        self.nextSequence = 1
    }

    private func load(anyDevice: Bool) throws {
        let names = try database.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        var found = Set<String>()
        while try names.step() { found.insert(names.text(at: 0) ?? "") }
        names.reset()
        guard found.isSuperset(of: ["meta", "chunks", "dropped"]) else {
            throw SpoolError(.damaged, "the file is an SQLite database but not a spool (tables: \(found.sorted()))")
        }
        // The right tables with the wrong columns would fail every later statement: call it damage now.
        for probe in [
            "SELECT first_seq, last_seq, readings, oldest_timestamp, bytes, quarantine, payload FROM chunks LIMIT 0",
            "SELECT first_seq, last_seq, reported FROM dropped LIMIT 0", "SELECT key, value FROM meta LIMIT 0",
        ] {
            do {
                _ = try database.prepare(probe)
            } catch {
                throw SpoolError(.damaged, "the spool's tables do not have the expected columns (\(error.message))")
            }
        }
        // Rows that break the chunk invariants would make later arithmetic on them meaningless.
        let broken = try database.prepare(
            "SELECT count(*) FROM chunks WHERE first_seq < 1 OR last_seq < first_seq OR readings != last_seq - first_seq + 1"
        )
        try broken.step()
        let brokenRows = broken.int64(at: 0)
        broken.reset()
        guard brokenRows == 0 else {
            throw SpoolError(.damaged, "\(brokenRows) chunk rows have impossible sequence ranges")
        }
        guard let format = try metaInteger("format"), format == Self.formatVersion else {
            throw SpoolError(.damaged, "unknown spool format \(String(describing: try metaInteger("format")))")
        }
        guard let stream = try metaInteger("stream"), stream != 0, let next = try metaInteger("next_seq"), next >= 1,
            let device = try metaText("device")
        else {
            throw SpoolError(.damaged, "the spool's meta table is incomplete")
        }
        guard anyDevice || device == configuration.device else {
            throw SpoolError(
                .deviceMismatch,
                "the spool was created for device \"\(device)\", not \"\(configuration.device)\"; "
                    + "use its own data directory per device")
        }
        // next_seq must lie past every stored chunk; a lower value would reuse sequence numbers.
        let last = try database.prepare("SELECT max(last_seq) FROM chunks")
        try last.step()
        let lastStored = last.isNull(at: 0) ? nil : last.int64(at: 0)
        last.reset()
        if let lastStored, lastStored >= next {
            throw SpoolError(.damaged, "next_seq \(next) is not past the stored chunks (last \(lastStored))")
        }
        self.device = device
        self.stream = UInt64(bitPattern: stream)
        self.nextSequence = UInt64(next)
    }

    /// Turns the byte cap into page and WAL limits: the WAL gets a quarter, checkpointed at half of that.
    private func applyLimits() throws {
        guard let maxBytes = configuration.maxBytes else {
            // The WAL is part of what the spool holds on disk, and on a small spool it is most of it: keep
            // it near 1 MiB. Checkpoints run in the background from `uncappedBackgroundCheckpointBytes`;
            // under a steady stream of commits they never quite catch up, so the WAL could not restart.
            // At `uncappedWALBytes` the writer's own autocheckpoint finishes the (by then small)
            // remainder, the next commit reuses the WAL from its start, and `journal_size_limit`
            // truncates whatever grew beyond it.
            let walBytes = Self.uncappedWALBytes
            let pageSize = try database.pragmaInteger("page_size") ?? 4096
            try database.execute("PRAGMA wal_autocheckpoint = \(max(8, walBytes / (pageSize + 24)))")
            try database.execute("PRAGMA journal_size_limit = \(walBytes)")
            backgroundCheckpointBytes = Self.uncappedBackgroundCheckpointBytes
            return
        }
        let pageSize = try database.pragmaInteger("page_size") ?? 4096
        let walBudget = maxBytes / 4
        let checkpointPages = max(8, walBudget / 2 / (pageSize + 24))
        try database.execute("PRAGMA wal_autocheckpoint = \(checkpointPages)")
        try database.execute("PRAGMA journal_size_limit = \(walBudget / 2)")
        backgroundCheckpointBytes = walBudget / 4
        capWALBytes = walBudget * 5 / 8
        // Room for the -shm index (32 KiB) and slack: under load a checkpoint can lag a commit or two
        // behind, and the WAL then passes its budget by up to a transaction (seen: 30 KB over at a
        // 1 MiB cap with 64 KiB of slack), so an eighth of the cap, between 64 and 160 KiB.
        let slack = max(64 * 1024, min(160 * 1024, maxBytes / 8))
        let relaxed = (maxBytes - walBudget - slack) / pageSize
        let normal = max(relaxed - 8, 1)
        pageLimits = (normal, relaxed)
        try setPageLimit(normal)
        // At most ~10 bytes per reading in the worst case (arbitrary doubles): keep one transaction
        // under a quarter of the WAL budget.
        transactionReadings = max(256, min(configuration.maxChunkReadings * 4, Int(walBudget / 4 / 12)))
    }

    private func setPageLimit(_ pages: Int64) throws {
        _ = try database.pragmaInteger("max_page_count = \(pages)")
    }

    func metaInteger(_ key: String) throws -> Int64? {
        let statement = try database.statement("SELECT value FROM meta WHERE key = ?1")
        try statement.bind(key, at: 1)
        defer { statement.reset() }
        guard try statement.step(), !statement.isNull(at: 0) else { return nil }
        return statement.int64(at: 0)
    }

    private func metaText(_ key: String) throws -> String? {
        let statement = try database.statement("SELECT value FROM meta WHERE key = ?1")
        try statement.bind(key, at: 1)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return statement.text(at: 0)
    }

    private func setMeta(_ key: String, _ value: Int64) throws {
        let statement = try database.statement("UPDATE meta SET value = ?2 WHERE key = ?1")
        try statement.bind(key, at: 1)
        try statement.bind(value, at: 2)
        try statement.run()
    }

    // MARK: Writing

    /// Commits `writes` in as few transactions as the limits allow; one result per write, in order.
    /// A write is never split across transactions, so it is either wholly durable or wholly absent.
    func commit(_ writes: [PendingWrite]) -> [Result<SequenceRange?, SpoolError>] {
        var results: [Result<SequenceRange?, SpoolError>] = []
        results.reserveCapacity(writes.count)
        var start = 0
        while start < writes.count {
            var end = start + 1
            var total = writes[start].readings.count
            while end < writes.count, total + writes[end].readings.count <= transactionReadings {
                total += writes[end].readings.count
                end += 1
            }
            let group = Array(writes[start..<end])
            do {
                let ranges = try commitTransaction(group, readingCount: total)
                results += ranges.map { .success($0) }
            } catch {
                let failure = SpoolError.wrap(error, while: "storing \(total) readings")
                results += group.map { _ in .failure(failure) }
            }
            start = end
        }
        return results
    }

    private func commitTransaction(_ writes: [PendingWrite], readingCount: Int) throws -> [SequenceRange?] {
        var attempts = 0
        while true {
            do {
                var inserted: [SequenceRange] = []
                let next = try database.transaction(.immediate) { _ throws in
                    let next = try insertChunks(writes, inserted: &inserted)
                    try recordDeliveries(writes)
                    try recordSeries(writes)
                    try recordProcessingCounts(writes)
                    return next
                }
                let first = inserted.first?.first ?? nextSequence
                nextSequence = next
                for chunk in inserted {
                    if chunk.count < UInt64(Self.smallChunkReadings) {
                        smallChunks.append(chunk)
                    } else {
                        smallChunks.removeAll()
                    }
                }
                var ranges: [SequenceRange?] = []
                var cursor = first
                for write in writes {
                    let count = UInt64(write.readings.count)
                    ranges.append(count == 0 ? nil : SequenceRange(cursor, cursor + count - 1))
                    cursor += count
                }
                return ranges
            } catch let error as SQLiteError where error.isDiskFull {
                database.rollbackQuietly()
                let isCap = try isAtCap(writing: Int64(readingCount) * 10 + 16 * 1024)
                guard configuration.whenFull == .dropOldest, attempts < 32 else {
                    if isCap {
                        throw SpoolError(
                            .full,
                            "the spool is full (cap \(configuration.maxBytes ?? 0) bytes, policy reject); retry later",
                            underlying: error)
                    }
                    throw SpoolError(
                        .diskFull, "the disk holding the spool is full; retry when space returns", underlying: error)
                }
                attempts += 1
                let freed = try dropOldest(bytes: Int64(readingCount) * 10 + 16 * 1024)
                if freed == 0 { throw SpoolError.storage(error, while: "storing after dropping every old chunk") }
            }
        }
    }

    /// Whether the page cap (rather than the file system) is what filled up.
    /// Whether a write of about `bytes` failed for the cap rather than for the disk: the pages in use
    /// plus the write's would pass `max_page_count` (a large write can fail far from the cap's last
    /// pages, as an import's 65,536-reading commits do).
    private func isAtCap(writing bytes: Int64) throws -> Bool {
        guard let limits = pageLimits else { return false }
        let pages = try database.pragmaInteger("page_count") ?? 0
        let free = try database.pragmaInteger("freelist_count") ?? 0
        let pageSize = try database.pragmaInteger("page_size") ?? 4096
        return pages - free + 16 + bytes / max(1, pageSize) >= limits.normal
    }

    /// Inserts the writes as chunks of at most `maxChunkReadings`; returns the next free sequence number.
    private func insertChunks(_ writes: [PendingWrite], inserted: inout [SequenceRange]) throws -> UInt64 {
        // Read inside the write transaction rather than trusted from memory: if a second writer (another
        // process on the same data directory) committed meanwhile, sequence numbers still never repeat.
        var next = max(nextSequence, UInt64(try metaInteger("next_seq") ?? 1))
        var keys: [String] = []
        var keyIndex: [ExactString: Int] = [:]
        var readings: [Reading] = []
        readings.reserveCapacity(min(configuration.maxChunkReadings, writes.reduce(0) { $0 + $1.readings.count }))
        func emit() throws {
            try insertChunk(
                Batch(device: device, stream: stream, firstSequence: next, seriesKeys: keys, readings: readings))
            inserted.append(SequenceRange(next, next + UInt64(readings.count) - 1))
            next += UInt64(readings.count)
            keys.removeAll(keepingCapacity: true)
            keyIndex.removeAll(keepingCapacity: true)
            readings.removeAll(keepingCapacity: true)
        }
        for write in writes {
            var map = [Int](repeating: -1, count: write.seriesKeys.count)
            for reading in write.readings {
                var series = map[reading.series]
                if series < 0 {
                    let key = write.seriesKeys[reading.series]
                    if let existing = keyIndex[ExactString(key)] {
                        series = existing
                    } else {
                        series = keys.count
                        keys.append(key)
                        keyIndex[ExactString(key)] = series
                    }
                    map[reading.series] = series
                }
                readings.append(Reading(series: series, timestamp: reading.timestamp, value: reading.value))
                if readings.count >= configuration.maxChunkReadings {
                    try emit()
                    for index in map.indices { map[index] = -1 }
                }
            }
        }
        if !readings.isEmpty { try emit() }
        try setMeta("next_seq", Int64(next))
        return next
    }

    private func insertChunk(_ batch: Batch, quarantine: String? = nil) throws {
        guard let range = SequenceRange(batch.sequences) else { return }
        let payload = try encoder.encode(batch)
        let statement = try database.statement(
            """
            INSERT INTO chunks(first_seq, last_seq, readings, oldest_timestamp, bytes, quarantine, payload)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
            """)
        try statement.bind(Int64(clamping: range.first), at: 1)
        try statement.bind(Int64(clamping: range.last), at: 2)
        try statement.bind(batch.readings.count, at: 3)
        try statement.bind(batch.readings.lazy.map(\.timestamp).min() ?? 0, at: 4)
        try statement.bind(payload.count, at: 5)
        if let quarantine { try statement.bind(quarantine, at: 6) } else { try statement.bindNull(at: 6) }
        try statement.bind(bytes: payload, at: 7)
        try statement.run()
    }

    // MARK: Compaction

    /// Merges the last `compactionRun` small chunks into one when there are that many, re-encoding
    /// them together (fewer headers and key tables, longer runs for delta and decimal encoding).
    /// Best effort: if any of them was acknowledged, split or quarantined meanwhile, or the spool is
    /// full, nothing changes. Sequence ranges stay the same, so batches in flight stay valid.
    func compactIfDue() {
        guard smallChunks.count >= Self.compactionRun else { return }
        let run = smallChunks
        smallChunks.removeAll()
        guard let first = run.first?.first, let last = run.last?.last,
            last - first + 1 <= UInt64(configuration.maxChunkReadings)
        else { return }
        do {
            try database.transaction(.immediate) { _ throws in
                let load = try database.statement(
                    "SELECT first_seq, last_seq, payload FROM chunks WHERE first_seq >= ?1 AND first_seq <= ?2 AND quarantine IS NULL ORDER BY first_seq"
                )
                try load.bind(Int64(clamping: first), at: 1)
                try load.bind(Int64(clamping: last), at: 2)
                var batches: [Batch] = []
                var expected = first
                while try load.step() {
                    guard UInt64(clamping: load.int64(at: 0)) == expected else { break }
                    expected = UInt64(clamping: load.int64(at: 1)) + 1
                    batches.append(try load.withBlob(at: 2) { bytes throws(CodecError) in try decoder.decode(bytes) })
                }
                load.reset()
                guard expected == last + 1, batches.count == run.count else { throw CompactionSkipped() }
                var keys: [String] = []
                var keyIndex: [ExactString: Int] = [:]
                var readings: [Reading] = []
                readings.reserveCapacity(Int(last - first + 1))
                for batch in batches {
                    let map = batch.seriesKeys.map { key -> Int in
                        if let known = keyIndex[ExactString(key)] { return known }
                        keys.append(key)
                        keyIndex[ExactString(key)] = keys.count - 1
                        return keys.count - 1
                    }
                    for reading in batch.readings {
                        readings.append(
                            Reading(series: map[reading.series], timestamp: reading.timestamp, value: reading.value))
                    }
                }
                let delete = try database.statement("DELETE FROM chunks WHERE first_seq >= ?1 AND first_seq <= ?2")
                try delete.bind(Int64(clamping: first), at: 1)
                try delete.bind(Int64(clamping: last), at: 2)
                try delete.run()
                try insertChunk(
                    Batch(device: device, stream: stream, firstSequence: first, seriesKeys: keys, readings: readings))
            }
        } catch {
            // Skipped or failed: the small chunks stay as they are, which is still correct.
        }
    }

    private struct CompactionSkipped: Error {}

    /// Copies the WAL into the database file so the next commit restarts it; failures (busy) leave
    /// the frames for the next attempt.
    func checkpointPassively() {
        _ = try? database.checkpoint(.passive)
    }

    /// Copies the WAL into the database file and truncates it (clean shutdown, benchmarks).
    func checkpointAndTruncate() throws {
        try database.checkpoint(.truncate)
    }

    // MARK: Dropping

    /// Removes the oldest chunks until at least `bytes` payload bytes are freed, recording them as
    /// dropped ranges. Returns the payload bytes freed (0 when the spool holds nothing).
    private func dropOldest(bytes: Int64) throws -> Int64 {
        try withRelaxedLimit {
            try database.transaction(.immediate) { _ throws in
                let select = try database.statement(
                    "SELECT first_seq, last_seq, readings, bytes FROM chunks ORDER BY first_seq LIMIT 256")
                var victims: [(first: Int64, last: Int64, readings: Int64, bytes: Int64)] = []
                var freed: Int64 = 0
                while freed < bytes, try select.step() {
                    let row = (select.int64(at: 0), select.int64(at: 1), select.int64(at: 2), select.int64(at: 3))
                    victims.append(row)
                    freed += row.3 + 64
                }
                select.reset()
                var readings: Int64 = 0
                for victim in victims {
                    let delete = try database.statement("DELETE FROM chunks WHERE first_seq = ?1")
                    try delete.bind(victim.first, at: 1)
                    try delete.run()
                    try recordDropped(SequenceRange(UInt64(victim.first), UInt64(victim.last)))
                    readings += victim.readings
                }
                try setMeta("dropped_readings", (try metaInteger("dropped_readings") ?? 0) + readings)
                return freed
            }
        }
    }

    private func recordDropped(_ range: SequenceRange) throws {
        let last = try database.statement(
            "SELECT first_seq, last_seq FROM dropped WHERE reported = 0 ORDER BY first_seq DESC LIMIT 1")
        if try last.step(), UInt64(bitPattern: last.int64(at: 1)) &+ 1 == range.first {
            let first = last.int64(at: 0)
            last.reset()
            let extend = try database.statement("UPDATE dropped SET last_seq = ?2 WHERE first_seq = ?1")
            try extend.bind(first, at: 1)
            try extend.bind(Int64(clamping: range.last), at: 2)
            try extend.run()
            return
        }
        last.reset()
        let insert = try database.statement(
            "INSERT OR REPLACE INTO dropped(first_seq, last_seq, reported) VALUES (?1, ?2, 0)")
        try insert.bind(Int64(clamping: range.first), at: 1)
        try insert.bind(Int64(clamping: range.last), at: 2)
        try insert.run()
    }

    func unreportedDroppedRanges() throws -> [SequenceRange] {
        let statement = try database.statement(
            "SELECT first_seq, last_seq FROM dropped WHERE reported = 0 ORDER BY first_seq")
        defer { statement.reset() }
        var ranges: [SequenceRange] = []
        while try statement.step() {
            ranges.append(
                SequenceRange(UInt64(clamping: statement.int64(at: 0)), UInt64(clamping: statement.int64(at: 1))))
        }
        return ranges
    }

    func markDroppedRangesReported(_ ranges: [SequenceRange]) throws {
        try withRelaxedLimit {
            try database.transaction(.immediate) { db throws in
                let statement = try db.statement("DELETE FROM dropped WHERE first_seq >= ?1 AND last_seq <= ?2")
                // Drops that came while the report was on its way extend the range in place: keep
                // only its unreported tail, or the whole range would be reported again.
                let trim = try db.statement(
                    "UPDATE dropped SET first_seq = ?2 + 1 WHERE first_seq >= ?1 AND first_seq <= ?2 AND last_seq > ?2")
                for range in ranges {
                    for step in [statement, trim] {
                        try step.bind(Int64(clamping: range.first), at: 1)
                        try step.bind(Int64(clamping: range.last), at: 2)
                        try step.run()
                    }
                }
            }
        }
    }

    private func withRelaxedLimit<T>(_ body: () throws -> T) throws -> T {
        guard let limits = pageLimits else { return try body() }
        try setPageLimit(limits.relaxed)
        defer { try? setPageLimit(limits.normal) }
        return try body()
    }

    // MARK: Reading

    /// The oldest unacknowledged, unquarantined readings at or after `sequence`, at most `maxReadings`,
    /// contiguous in sequence. A chunk that does not decode is quarantined and skipped.
    func batch(from sequence: UInt64, maxReadings: Int) throws -> SpoolBatch? {
        try quarantiningDamage { damaged in
            try collectBatch(from: max(sequence, 1), maxReadings: max(1, maxReadings), damaged: &damaged)
        }
    }

    /// The oldest unacknowledged, unquarantined readings in `range` as stored frames, for the
    /// uploader to send as they are: whole chunks while they fit in `maxReadings` and `maxBytes`
    /// (the first whole chunk inside `range` always, whatever its size).
    /// Only where the run has to cut a chunk (`range` starts or ends inside one, or its first chunk
    /// alone is over `maxReadings`) is that part decoded and encoded again. Each stored frame is
    /// checked (CRC-32, device, stream, sequence range) but not decoded; one that fails is quarantined
    /// and skipped, as by `batch(from:maxReadings:)`.
    func storedRun(in range: SequenceRange, maxReadings: Int, maxBytes: Int) throws -> UploadBatch? {
        try quarantiningDamage { damaged in
            try collectStoredRun(in: range, maxReadings: max(1, maxReadings), maxBytes: maxBytes, damaged: &damaged)
        }
    }

    /// Runs a read that may find a damaged chunk: marks it quarantined (with a loud message) and
    /// reads again until a read finds none.
    private func quarantiningDamage<T>(_ read: (inout (first: Int64, reason: String)?) throws -> T?) throws -> T? {
        while true {
            var damaged: (first: Int64, reason: String)?
            let result = try read(&damaged)
            guard let damaged else { return result }
            let mark = try database.statement("UPDATE chunks SET quarantine = ?2 WHERE first_seq = ?1")
            try mark.bind(damaged.first, at: 1)
            try mark.bind(damaged.reason, at: 2)
            try mark.run()
            configuration.onDamagedFile(
                "ERROR: spool \(database.path): quarantined the chunk at seq \(damaged.first): \(damaged.reason)")
        }
    }

    private func collectStoredRun(
        in range: SequenceRange, maxReadings: Int, maxBytes: Int, damaged: inout (first: Int64, reason: String)?
    ) throws -> UploadBatch? {
        let statement = try database.statement(
            """
            SELECT first_seq, last_seq, payload FROM chunks
            WHERE first_seq >= coalesce((SELECT max(first_seq) FROM chunks WHERE first_seq <= ?1), ?1)
              AND first_seq <= ?2 AND quarantine IS NULL
            ORDER BY first_seq
            """)
        try statement.bind(Int64(clamping: range.first), at: 1)
        try statement.bind(Int64(clamping: range.last), at: 2)
        defer { statement.reset() }
        var frames: [UploadFrame] = []
        var readings = 0
        var bytes = 0
        while readings < maxReadings, try statement.step() {
            let chunk = SequenceRange(
                UInt64(clamping: statement.int64(at: 0)), UInt64(clamping: statement.int64(at: 1)))
            if chunk.last < range.first { continue }
            if let previous = frames.last, chunk.first != previous.range.last + 1 { break }
            let wanted = SequenceRange(max(chunk.first, range.first), min(chunk.last, range.last))
            // A whole chunk inside `range` is taken as the run's first frame even when it holds more
            // than `maxReadings`: the chunk exists already, so sending it whole makes nobody wait,
            // and cutting it would mean decoding and encoding it again (import and busy inputs store
            // chunks of up to 65,536 readings, more than a live batch).
            let fits =
                frames.isEmpty
                || (readings + Int(wanted.count) <= maxReadings && bytes + statement.byteCount(at: 2) <= maxBytes)
            if wanted == chunk && fits {
                let frame = statement.withBlob(at: 2) { raw in
                    Result { () throws(CodecError) in (try decoder.summary(of: raw), Array(raw)) }
                }
                switch frame {
                case .failure(let error):
                    damaged = (Int64(chunk.first), "stored chunk does not decode: \(error)")
                    return nil
                case .success(let (summary, payload)):
                    guard summary.firstSequence == chunk.first, summary.readingCount == Int(chunk.count),
                        summary.stream == stream, summary.device.utf8.elementsEqual(device.utf8)
                    else {
                        damaged = (Int64(chunk.first), "stored chunk does not match its row (seq \(chunk.first)-\(chunk.last))")
                        return nil
                    }
                    frames.append(UploadFrame(range: chunk, bytes: payload, isStored: true))
                    readings += Int(chunk.count)
                    bytes += payload.count
                }
                continue
            }
            // A part of a chunk: only as the run's first frame (later ones end the run at a boundary).
            guard frames.isEmpty else { break }
            let decoded: Batch
            do {
                decoded = try statement.withBlob(at: 2) { raw throws(CodecError) in try decoder.decode(raw) }
            } catch {
                damaged = (Int64(chunk.first), "stored chunk does not decode: \(error)")
                return nil
            }
            guard decoded.firstSequence == chunk.first, decoded.readings.count == Int(chunk.count), decoded.stream == stream
            else {
                damaged = (Int64(chunk.first), "stored chunk does not match its row (seq \(chunk.first)-\(chunk.last))")
                return nil
            }
            let part = SequenceRange(wanted.first, min(wanted.last, wanted.first + UInt64(maxReadings) - 1))
            let payload = try encoder.encode(decoded.slice(part))
            frames.append(UploadFrame(range: part, bytes: payload, isStored: false))
            readings += Int(part.count)
            bytes += payload.count
            if part.last < chunk.last { break }
        }
        return frames.isEmpty ? nil : UploadBatch(frames: frames)
    }

    private func collectBatch(from: UInt64, maxReadings: Int, damaged: inout (first: Int64, reason: String)?) throws
        -> SpoolBatch?
    {
        let statement = try database.statement(
            """
            SELECT first_seq, last_seq, payload FROM chunks
            WHERE first_seq >= coalesce((SELECT max(first_seq) FROM chunks WHERE first_seq <= ?1), ?1)
              AND quarantine IS NULL
            ORDER BY first_seq
            """)
        try statement.bind(Int64(clamping: from), at: 1)
        defer { statement.reset() }
        var keys: [String] = []
        var keyIndex: [ExactString: Int] = [:]
        var readings: [Reading] = []
        var first: UInt64 = 0
        var expected: UInt64 = 0
        while readings.count < maxReadings, try statement.step() {
            let chunkFirst = UInt64(clamping: statement.int64(at: 0))
            let chunkLast = UInt64(clamping: statement.int64(at: 1))
            if chunkLast < from { continue }
            if !readings.isEmpty && chunkFirst != expected { break }
            let decoded: Batch
            do {
                decoded = try statement.withBlob(at: 2) { bytes throws(CodecError) in try decoder.decode(bytes) }
            } catch {
                damaged = (Int64(chunkFirst), "stored chunk does not decode: \(error)")
                return nil
            }
            guard decoded.firstSequence == chunkFirst, decoded.readings.count == Int(chunkLast - chunkFirst + 1),
                decoded.stream == stream
            else {
                damaged = (Int64(chunkFirst), "stored chunk does not match its row (seq \(chunkFirst)-\(chunkLast))")
                return nil
            }
            let skip = Int(max(from, chunkFirst) - chunkFirst)
            if readings.isEmpty { first = chunkFirst + UInt64(skip) }
            let take = min(decoded.readings.count - skip, maxReadings - readings.count)
            var map = [Int](repeating: -1, count: decoded.seriesKeys.count)
            for reading in decoded.readings[skip..<skip + take] {
                var series = map[reading.series]
                if series < 0 {
                    let key = decoded.seriesKeys[reading.series]
                    series = keyIndex[ExactString(key)] ?? keys.count
                    if series == keys.count {
                        keys.append(key)
                        keyIndex[ExactString(key)] = series
                    }
                    map[reading.series] = series
                }
                readings.append(Reading(series: series, timestamp: reading.timestamp, value: reading.value))
            }
            expected = first + UInt64(readings.count)
        }
        guard !readings.isEmpty else { return nil }
        let batch = Batch(device: device, stream: stream, firstSequence: first, seriesKeys: keys, readings: readings)
        return SpoolBatch(batch: batch, range: SequenceRange(first, first + UInt64(readings.count) - 1))
    }

    /// Every stored reading in sequence order, quarantined ones included; for checks and tests.
    func forEachChunk(_ body: (ChunkRow, Result<Batch, CodecError>) throws -> Void) throws {
        let statement = try database.prepare(
            "SELECT first_seq, last_seq, quarantine, payload FROM chunks ORDER BY first_seq")
        while try statement.step() {
            let row = ChunkRow(
                first: UInt64(clamping: statement.int64(at: 0)), last: UInt64(clamping: statement.int64(at: 1)),
                quarantine: statement.text(at: 2))
            let decoded = statement.withBlob(at: 3) { bytes in
                Result { () throws(CodecError) in try decoder.decode(bytes) }
            }
            try body(row, decoded)
        }
    }

    // MARK: Acknowledging and quarantining

    /// Deletes exactly `ranges` (acknowledge) or marks them with `quarantine`, splitting chunks that
    /// lie partly inside a range and re-encoding the parts that stay.
    func update(_ ranges: [SequenceRange], quarantine reason: String?) throws {
        try withRelaxedLimit {
            try database.transaction(.immediate) { _ throws in
                for range in ranges {
                    for chunk in try chunks(overlapping: range) {
                        try update(chunk, in: range, quarantine: reason)
                    }
                }
            }
        }
        if reason == nil { try reclaimFreePages() }
    }

    private func chunks(overlapping range: SequenceRange) throws -> [ChunkRow] {
        let statement = try database.statement(
            """
            SELECT first_seq, last_seq, quarantine FROM chunks
            WHERE first_seq >= coalesce((SELECT max(first_seq) FROM chunks WHERE first_seq <= ?1), ?1)
              AND first_seq <= ?2
            ORDER BY first_seq
            """)
        try statement.bind(Int64(clamping: range.first), at: 1)
        try statement.bind(Int64(clamping: range.last), at: 2)
        defer { statement.reset() }
        var rows: [ChunkRow] = []
        while try statement.step() {
            let row = ChunkRow(
                first: UInt64(clamping: statement.int64(at: 0)), last: UInt64(clamping: statement.int64(at: 1)),
                quarantine: statement.text(at: 2))
            if row.last >= range.first { rows.append(row) }
        }
        return rows
    }

    private func update(_ chunk: ChunkRow, in range: SequenceRange, quarantine reason: String?) throws {
        if range.first <= chunk.first && chunk.last <= range.last {
            if let reason {
                let mark = try database.statement("UPDATE chunks SET quarantine = ?2 WHERE first_seq = ?1")
                try mark.bind(Int64(clamping: chunk.first), at: 1)
                try mark.bind(reason, at: 2)
                try mark.run()
            } else {
                try deleteChunk(chunk.first)
            }
            return
        }
        let load = try database.statement("SELECT payload FROM chunks WHERE first_seq = ?1")
        try load.bind(Int64(clamping: chunk.first), at: 1)
        guard try load.step() else { return }
        let decoded = try load.withBlob(at: 0) { bytes throws(CodecError) in try decoder.decode(bytes) }
        load.reset()
        try deleteChunk(chunk.first)
        let inside = SequenceRange(max(chunk.first, range.first), min(chunk.last, range.last))
        if chunk.first < inside.first {
            try insertChunk(decoded.slice(SequenceRange(chunk.first, inside.first - 1)), quarantine: chunk.quarantine)
        }
        if let reason { try insertChunk(decoded.slice(inside), quarantine: reason) }
        if inside.last < chunk.last {
            try insertChunk(decoded.slice(SequenceRange(inside.last + 1, chunk.last)), quarantine: chunk.quarantine)
        }
    }

    private func deleteChunk(_ first: UInt64) throws {
        let delete = try database.statement("DELETE FROM chunks WHERE first_seq = ?1")
        try delete.bind(Int64(clamping: first), at: 1)
        try delete.run()
    }

    /// The readings of `batch` in `range`, with only the series keys they use.
    /// Returns free pages to the file system once nearly all of the file is free, so the spool
    /// shrinks after a backlog drains instead of only growing. Not earlier: a backlog drains from the
    /// front of the file, so shrinking it means moving the live pages at its end into the holes,
    /// each written twice (WAL and checkpoint). At a quarter free, a drain rewrote about the whole
    /// backlog once more (3.8 bytes written per reading for 1.7 stored, `edge-sync-bench
    /// lifecycle`); at seven eighths it moves at most an eighth of the pages once. Free pages in the
    /// meantime are reused by new chunks and count towards `spool.max_bytes` as before.
    private func reclaimFreePages() throws {
        let free = try database.pragmaInteger("freelist_count") ?? 0
        let pages = try database.pragmaInteger("page_count") ?? 0
        guard free >= 64, free * 8 >= pages * 7 else { return }
        try database.execute("PRAGMA incremental_vacuum")
        try database.checkpoint(.truncate)
    }

    // MARK: Status

    func status() throws -> SpoolStatus {
        let totals = try database.statement(
            """
            SELECT
              coalesce(sum(CASE WHEN quarantine IS NULL THEN readings END), 0),
              coalesce(sum(CASE WHEN quarantine IS NULL THEN bytes END), 0),
              count(CASE WHEN quarantine IS NULL THEN 1 END),
              min(CASE WHEN quarantine IS NULL THEN oldest_timestamp END),
              coalesce(sum(CASE WHEN quarantine IS NOT NULL THEN readings END), 0),
              coalesce(sum(CASE WHEN quarantine IS NOT NULL THEN bytes END), 0)
            FROM chunks
            """)
        defer { totals.reset() }
        try totals.step()
        let unreported = try database.statement("SELECT count(*) FROM dropped WHERE reported = 0")
        defer { unreported.reset() }
        try unreported.step()
        var status = SpoolStatus(
            device: device, stream: stream,
            nextSequence: max(nextSequence, UInt64(try metaInteger("next_seq") ?? 1)),
            queuedReadings: totals.int64(at: 0),
            queuedBytes: totals.int64(at: 1), queuedChunks: totals.int64(at: 2),
            spoolFileBytes: SQLiteDatabase.fileSizes(ofDatabaseAt: database.path).total,
            oldestTimestamp: totals.isNull(at: 3) ? nil : totals.int64(at: 3),
            droppedReadings: try metaInteger("dropped_readings") ?? 0, unreportedDroppedRanges: unreported.int64(at: 0),
            quarantinedReadings: totals.int64(at: 4), quarantinedBytes: totals.int64(at: 5),
            fsync: try metaText("fsync").flatMap(FsyncPolicy.init(rawValue:)) ?? configuration.fsync,
            maxBytes: try metaText("max_bytes").flatMap { Int64($0) },
            whenFull: try metaText("when_full").flatMap(FullPolicy.init(rawValue:)) ?? configuration.whenFull)
        // A spool of the previous release has no series table until the agent opens it.
        if let (series, refused) = try? seriesStatus(today: SeriesCatalog.day(of: configuration.seriesClock())) {
            status.series = series
            status.seriesRefusedReadings = refused
        }
        status.maxSeries = try metaText("max_series").flatMap { Int64($0) }
        // Nor a processing_counts table (an inspection does not create it).
        status.processing = (try? processingCounts()) ?? []
        return status
    }
}
