import Dispatch
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import Foundation
import Synchronization

/// The edge agent's durable write-ahead queue: every reading a producer hands over stays here until
/// the collector has acknowledged it.
///
/// One SQLite file (`spool.sqlite` in the data directory, WAL mode) owned by one serial queue, so
/// blocking SQLite calls and fsyncs never run on the cooperative thread pool. Readings get sequence
/// numbers 1, 2, 3 … within the spool's random 64-bit stream id, persisted across restarts.
///
/// Writes use group commit: concurrent `append` calls queue up, one transaction takes everything
/// queued, and each caller resumes after that transaction is durable under the fsync policy.
package final class Spool: Sendable {
    package let configuration: Configuration
    /// The device id stored in the spool (equal to the configured one).
    package let device: String
    /// The random id drawn when this spool file was created.
    package let stream: UInt64
    /// Where a damaged spool file was moved at open, when that happened.
    package let movedAsideFile: String?

    private let connection: SQLiteConnectionQueue
    private let store: StoreBox
    private let pending = Mutex(PendingQueue())
    /// The series limit's memory; nil without a limit.
    private let catalog: Mutex<SeriesCatalog?>
    /// Wakes uploaders waiting for readings after each commit in this process.
    let appendSignal = AppendSignal()
    /// A second connection that only checkpoints, so commits never wait for one (WAL mode lets a
    /// checkpoint run beside the writer). `nil` if it could not be opened: the writer's own
    /// autocheckpoint then does the work.
    private let checkpointer: SQLiteConnectionQueue?
    private let isCheckpointing = Atomic<Bool>(false)
    /// Frames in the writer's WAL after its last commit. The `-wal` file's size is no measure of
    /// that: the file keeps its size (up to `journal_size_limit`) when the log restarts, and a
    /// threshold on it started a checkpoint, with its two syncs, after nearly every commit.
    private let walFrames = WALFrameCount()
    /// ``SpoolStore/backgroundCheckpointBytes`` in WAL frames.
    private let backgroundCheckpointFrames: Int

    private struct Waiter {
        var write: PendingWrite
        var continuation: CheckedContinuation<Result<SequenceRange?, SpoolError>, Never>
    }

    private struct PendingQueue: ~Copyable {
        var waiters: [Waiter] = []
        var isFlushScheduled = false
    }

    private init(
        configuration: Configuration, connection: SQLiteConnectionQueue, store: SpoolStore, movedAsideFile: String?
    ) {
        self.configuration = configuration
        self.connection = connection
        self.store = StoreBox(store)
        self.device = store.device
        self.stream = store.stream
        self.movedAsideFile = movedAsideFile
        if let limit = configuration.maxSeries {
            var catalog = SeriesCatalog(limit: limit)
            let today = SeriesCatalog.day(of: configuration.seriesClock())
            let rows = connection.runBlocking { _ in (try? store.loadSeries(since: today - 1)) ?? [] }
            catalog.load(rows, today: today)
            self.catalog = Mutex(catalog)
        } else {
            self.catalog = Mutex(nil)
        }
        var options = SQLiteDatabase.Configuration()
        options.synchronous = configuration.fsync.synchronous
        options.createsFile = false
        self.checkpointer = try? SQLiteConnectionQueue(
            path: configuration.databasePath, configuration: options, label: "edge-agent.spool.checkpoint")
        let frames = walFrames
        backgroundCheckpointFrames = connection.runBlocking { database in
            // The hook replaces SQLite's autocheckpoint, so it takes over the pages `applyLimits` set.
            let autocheckpoint = (try? database.pragmaInteger("wal_autocheckpoint"))
                .flatMap { $0 > 0 ? Int($0) : nil }
            let pageSize = (try? database.pragmaInteger("page_size")).flatMap { $0 }.map(Int.init) ?? 4096
            database.onWALCommit(checkpointingAt: autocheckpoint) { count in
                frames.value.store(count, ordering: .relaxed)
            }
            return max(1, Int(store.backgroundCheckpointBytes) / (pageSize + 24))
        }
    }

    // MARK: Opening

    /// Opens the spool in `configuration.dataDirectory`, creating it (with a new stream id) when absent.
    ///
    /// A file that is not a database, fails `PRAGMA quick_check` or is not a spool is renamed to
    /// `spool.sqlite.damaged-<UTC time>` (with its `-wal` and `-shm`), `onDamagedFile` is called with a
    /// message naming both files, and a fresh spool with a new stream id is opened: the agent keeps
    /// running instead of crash-looping. `movedAsideFile` then names the old file.
    ///
    /// - Throws: `.invalidInput` for a bad configuration, `.deviceMismatch` when the spool belongs to
    ///   another device, or a storage error when the directory or file cannot be used at all.
    package static func open(_ configuration: Configuration) async throws(SpoolError) -> Spool {
        let result: Result<Spool, SpoolError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: Result { () throws(SpoolError) in try openBlocking(configuration) })
            }
        }
        return try result.get()
    }

    /// The blocking form of `open(_:)`, for command-line tools running on their own thread.
    package static func openBlocking(_ configuration: Configuration) throws(SpoolError) -> Spool {
        try validate(configuration)
        do {
            try FileManager.default.createDirectory(
                atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw SpoolError(.storage, "cannot create data directory \(configuration.dataDirectory): \(error)")
        }
        let path = configuration.databasePath
        do {
            return try openFile(configuration, movedAsideFile: nil)
        } catch let error where error.kind == .damaged {
            let aside = "\(path).damaged-\(timestampForFileName())"
            do {
                try FileManager.default.moveItem(atPath: path, toPath: aside)
                for companion in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + companion) {
                    try FileManager.default.moveItem(atPath: path + companion, toPath: aside + companion)
                }
            } catch {
                throw SpoolError(
                    .damaged, "spool file \(path) is damaged (\(error)) and could not be moved aside: \(error)")
            }
            configuration.onDamagedFile(
                "ERROR: spool file \(path) is damaged: \(error). It was moved aside to \(aside); "
                    + "starting a fresh spool with a new stream id. Readings in the damaged file were not sent.")
            return try openFile(configuration, movedAsideFile: aside)
        }
    }

    private static func openFile(_ configuration: Configuration, movedAsideFile: String?) throws(SpoolError) -> Spool {
        var options = SQLiteDatabase.Configuration()
        options.synchronous = configuration.fsync.synchronous
        let connection: SQLiteConnectionQueue
        do {
            connection = try SQLiteConnectionQueue(
                path: configuration.databasePath, configuration: options, label: "edge-agent.spool")
        } catch {
            throw SpoolError.storage(error, while: "opening spool \(configuration.databasePath)")
        }
        do {
            let store = try connection.runBlocking { database in
                try SpoolStore(database: database, configuration: configuration)
            }
            return Spool(
                configuration: configuration, connection: connection, store: store, movedAsideFile: movedAsideFile)
        } catch {
            throw SpoolError.wrap(error, while: "opening spool \(configuration.databasePath)")
        }
    }

    private static func validate(_ configuration: Configuration) throws(SpoolError) {
        let device = configuration.device
        guard !device.isEmpty, device.utf8.count <= DecodingLimits.default.maximumDeviceBytes else {
            throw SpoolError(
                .invalidInput,
                "device id must be 1...\(DecodingLimits.default.maximumDeviceBytes) bytes, got \(device.utf8.count)")
        }
        if let maxBytes = configuration.maxBytes, maxBytes < Configuration.minimumMaxBytes {
            throw SpoolError(
                .invalidInput, "max_bytes \(maxBytes) is below the minimum of \(Configuration.minimumMaxBytes)")
        }
        guard (1...DecodingLimits.default.maximumReadings).contains(configuration.maxChunkReadings) else {
            throw SpoolError(.invalidInput, "max chunk readings must be 1...\(DecodingLimits.default.maximumReadings)")
        }
    }

    private static func timestampForFileName() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]
        return formatter.string(from: Date()).replacingOccurrences(of: ":", with: "")
    }

    // MARK: Writing

    /// Stores `readings` with the next sequence numbers and returns them, once the transaction that
    /// holds them is durable under the fsync policy. Concurrent calls share one transaction.
    ///
    /// The write is atomic: on any error nothing of it is stored and no sequence number is used.
    /// - Throws: `.invalidInput` for an empty write or a series key that is empty, longer than 1024
    ///   bytes of UTF-8 or holds U+0000; `.full` (cap reached, policy reject), `.diskFull` or `.ioError`, all retryable.
    package func append(_ readings: some Collection<IncomingReading>) async throws(SpoolError) -> SequenceRange {
        var keys: [String] = []
        var index: [ExactString: Int] = [:]
        var converted: [Reading] = []
        converted.reserveCapacity(readings.count)
        for reading in readings {
            let series: Int
            let key = ExactString(reading.seriesKey)
            if let known = index[key] {
                series = known
            } else {
                series = keys.count
                keys.append(reading.seriesKey)
                index[key] = series
            }
            converted.append(Reading(series: series, timestamp: reading.timestamp, value: reading.value))
        }
        return try await append(seriesKeys: keys, readings: converted)
    }

    /// The same as `append(_:)` for readings whose `series` indexes `seriesKeys` (no per-reading
    /// string hashing; what the importer and benchmarks use).
    package func append(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> SequenceRange {
        try await append(PendingWrite(seriesKeys: seriesKeys, readings: readings))
    }

    /// What `appendAdmitting` stored and what the series limit refused.
    package struct Admitted: Sendable, Equatable {
        /// The readings stored; nil when the limit refused all of them.
        package var range: SequenceRange?
        package var refusedReadings = 0
        /// New series over `maxSeries` whose readings were refused.
        package var refusedSeries = 0
        /// `spool.max_series` when something was refused.
        package var seriesLimit = 0
    }

    /// Stores what the series limit (`Configuration.maxSeries`) admits: readings of new series past
    /// the limit are left out and counted, the rest stored as by `append`. For inputs that answer
    /// a partial write (HTTP) or acknowledge regardless (MQTT).
    package func appendAdmitting(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> Admitted {
        try await submit(PendingWrite(seriesKeys: seriesKeys, readings: readings), dropsOverLimit: true)
    }

    /// Queues `write` for the next group commit and waits for its outcome; the whole write is
    /// refused (`.seriesLimit`) when it has a new series past the limit.
    func append(_ write: PendingWrite) async throws(SpoolError) -> SequenceRange {
        guard let range = try await submit(write, dropsOverLimit: false).range else {
            throw SpoolError(.seriesLimit, "no readings stored")
        }
        return range
    }

    /// Readings and writes refused by the series limit in this process, and the series it holds now.
    package var seriesLimitCounters: (series: Int, limit: Int, refusedReadings: Int, refusedWrites: Int)? {
        catalog.withLock { catalog in
            catalog.map { ($0.count, $0.limit, $0.refusedReadings, $0.refusedWrites) }
        }
    }

    func submit(_ write: PendingWrite, dropsOverLimit: Bool) async throws(SpoolError) -> Admitted {
        // A write of processing counts alone (the rules left no reading) stores no chunk.
        let isCountsOnly = write.readings.isEmpty && !write.processingCounts.isEmpty
        if !isCountsOnly { try Self.validate(seriesKeys: write.seriesKeys, readings: write.readings) }
        var write = write
        var admission: SeriesCatalog.Admission?
        var refusedReadings = 0
        if configuration.maxSeries != nil, !isCountsOnly {
            let day = SeriesCatalog.day(of: configuration.seriesClock())
            guard let admitted = catalog.withLock({ $0?.admit(write.seriesKeys, day: day) }) else {
                preconditionFailure("a spool with maxSeries has a catalog")
            }
            admission = admitted
            if admitted.refusedSeries > 0 {
                let kept = write.readings.filter { !admitted.refused[$0.series] }
                // A write refused whole counts all of its readings.
                refusedReadings = dropsOverLimit ? write.readings.count - kept.count : write.readings.count
                let refused = refusedReadings
                catalog.withLock { $0?.countRefused(readings: refused) }
                let count = refusedReadings
                try? await runUnsynced("counting refused readings") { store in
                    try store.addRefusedSeriesReadings(count)
                }
                guard dropsOverLimit, !kept.isEmpty || !write.processingCounts.isEmpty else {
                    catalog.withLock { $0?.finish(admitted, stored: false) }
                    if !dropsOverLimit { throw seriesLimitError(admitted.refusedSeries, readings: refusedReadings) }
                    return Admitted(
                        range: nil, refusedReadings: refusedReadings, refusedSeries: admitted.refusedSeries,
                        seriesLimit: configuration.maxSeries ?? 0)
                }
                write.readings = kept
            }
            write.catalogKeys = admitted.catalogKeys
            write.seriesDay = admitted.day
        }
        let result = await withCheckedContinuation { continuation in
            let schedules = pending.withLock { queue in
                queue.waiters.append(Waiter(write: write, continuation: continuation))
                defer { queue.isFlushScheduled = true }
                return !queue.isFlushScheduled
            }
            if schedules {
                connection.submit { [self] _ in flush() }
            }
        }
        if let admission {
            let stored = (try? result.get()) != nil
            catalog.withLock { $0?.finish(admission, stored: stored) }
        }
        return Admitted(
            range: try result.get(), refusedReadings: refusedReadings, refusedSeries: admission?.refusedSeries ?? 0,
            seriesLimit: refusedReadings > 0 ? configuration.maxSeries ?? 0 : 0)
    }

    /// The answer to a write with new series past the limit.
    private func seriesLimitError(_ series: Int, readings: Int) -> SpoolError {
        SpoolError(
            .seriesLimit,
            "\(series) new series (\(readings) readings) refused: the spool already holds the \(configuration.maxSeries ?? 0) "
                + "series spool.max_series allows within a day; series not written since yesterday are forgotten")
    }

    /// Runs on the connection queue: commits everything queued so far and answers its writers.
    /// Writes queued while this commit runs schedule the next flush.
    private func flush() {
        let waiters = pending.withLock { queue in
            queue.isFlushScheduled = false
            return queue.waiters.take()
        }
        guard !waiters.isEmpty else { return }
        keepWALInsideCap()
        let results = store.value.commit(waiters.map(\.write))
        for (waiter, result) in zip(waiters, results) {
            waiter.continuation.resume(returning: result)
        }
        appendSignal.signal()
        // Merging chunks changes no reading: it need not pay a sync of its own (see `runUnsynced`).
        _ = try? store.value.database.withSynchronous(.normal) { store.value.compactIfDue() }
        checkpointIfLarge()
    }

    /// Starts a passive checkpoint on the second connection when the WAL has grown past the
    /// threshold and none is running. Runs on the writer's queue.
    private func checkpointIfLarge() {
        guard let checkpointer else { return }
        // Counted from where the last background checkpoint started: under a quick succession of
        // commits a passive checkpoint never catches up, the log cannot restart, and a threshold on
        // the total would start the next checkpoint (two syncs) after every few commits.
        let frames = walFrames.value.load(ordering: .relaxed)
        var since = walFrames.checkpointStartedAt.load(ordering: .relaxed)
        if frames < since { since = 0 }  // the log restarted
        guard frames - since >= backgroundCheckpointFrames,
            isCheckpointing.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        walFrames.checkpointStartedAt.store(frames, ordering: .relaxed)
        checkpointer.submit { [self] database in
            // A failure (disk full, busy) leaves the frames in the WAL for the next attempt.
            _ = try? database.checkpoint(.passive)
            isCheckpointing.store(false, ordering: .releasing)
        }
    }

    /// With a byte cap, a WAL past its share is checkpointed here, before the commit that would grow
    /// it further: after waiting for a running background checkpoint (short, the WAL is small), so
    /// that this one is not refused as busy. Runs on the writer's queue.
    private func keepWALInsideCap() {
        guard let limit = store.value.capWALBytes,
            SQLiteDatabase.fileSizes(ofDatabaseAt: configuration.databasePath).wal > limit
        else { return }
        checkpointer?.runBlocking { _ in }
        store.value.checkpointPassively()
    }

    private static func validate(seriesKeys: [String], readings: [Reading]) throws(SpoolError) {
        guard !readings.isEmpty else { throw SpoolError(.invalidInput, "an append needs at least one reading") }
        guard readings.count <= DecodingLimits.default.maximumReadings else {
            throw SpoolError(
                .invalidInput,
                "\(readings.count) readings in one append; at most \(DecodingLimits.default.maximumReadings)")
        }
        let limit = DecodingLimits.default.maximumSeriesKeyBytes
        for key in seriesKeys where key.isEmpty || key.utf8.count > limit {
            throw SpoolError(
                .invalidInput,
                "series key must be 1...\(limit) bytes of UTF-8, got \(key.utf8.count): \"\(key.prefix(80))\"")
        }
        // PostgreSQL text cannot hold U+0000, and no series name needs it: refused here, where
        // every input passes, so the producer hears about it instead of a collector refusing it later.
        for key in seriesKeys where key.utf8.contains(0) {
            throw SpoolError(.invalidInput, "series key contains U+0000 (NUL): \"\(key.prefix(80).debugDescription)\"")
        }
        guard Set(seriesKeys.map(ExactString.init)).count == seriesKeys.count else {
            throw SpoolError(.invalidInput, "a series key appears twice in one append")
        }
        for reading in readings where !(0..<seriesKeys.count).contains(reading.series) {
            throw SpoolError(.invalidInput, "reading refers to series \(reading.series) of \(seriesKeys.count)")
        }
    }

    // MARK: Reading side (the uploader)

    /// The oldest unacknowledged, unquarantined readings at or after `sequence` (at most
    /// `maxReadings`, contiguous in sequence) as a codec batch with this spool's device and stream.
    ///
    /// Memory is bounded by `maxReadings` plus one stored chunk. To keep several batches in flight,
    /// call again with `range.last + 1`; after a restart start again from 1: everything not
    /// acknowledged is handed out again. Returns `nil` when nothing is left at or after `sequence`.
    package func batches(from sequence: UInt64, maxReadings: Int) async throws(SpoolError) -> SpoolBatch? {
        try await run("reading the spool") { store in try store.batch(from: sequence, maxReadings: maxReadings) }
    }

    /// Deletes exactly the readings in `ranges` (the collector acknowledged them durably); chunks that
    /// lie partly inside are split. Ranges that are not stored (already acknowledged) are ignored.
    ///
    /// Committed without a sync of its own: the next group commit or checkpoint makes it durable. A
    /// power cut before that brings the readings back, and the collector drops them as duplicates.
    package func acknowledge(_ ranges: [SequenceRange]) async throws(SpoolError) {
        guard !ranges.isEmpty else { return }
        try await runUnsynced("acknowledging \(ranges.count) ranges") { store in
            try store.update(ranges, quarantine: nil)
        }
    }

    /// Keeps the readings in `range` on disk but never hands them out again (the collector refused
    /// them permanently, 400/415); they are counted in `status()` as quarantined with `reason`.
    package func quarantine(_ range: SequenceRange, reason: String) async throws(SpoolError) {
        try await runUnsynced("quarantining \(range)") { store in try store.update([range], quarantine: reason) }
    }

    /// Ranges removed by the `drop-oldest` policy that the collector has not been told about yet.
    package func unreportedDroppedRanges() async throws(SpoolError) -> [SequenceRange] {
        try await run("reading dropped ranges") { store in try store.unreportedDroppedRanges() }
    }

    /// Records that the collector has durably received the report of these dropped ranges.
    package func markDroppedRangesReported(_ ranges: [SequenceRange]) async throws(SpoolError) {
        try await runUnsynced("marking dropped ranges reported") { store in
            try store.markDroppedRangesReported(ranges)
        }
    }

    /// Copies the WAL into the main file and truncates it to zero bytes: for a clean shutdown, and
    /// before measuring the file. Fails quietly-safe (SQLITE_BUSY) while another reader is active.
    package func checkpoint() async throws(SpoolError) {
        guard let checkpointer else {
            try await run("checkpointing the spool") { store in try store.checkpointAndTruncate() }
            return
        }
        // On the checkpoint connection's queue, so it never races a background checkpoint.
        do {
            try await checkpointer.run { database in _ = try database.checkpoint(.truncate) }
        } catch {
            throw SpoolError.wrap(error, while: "checkpointing the spool")
        }
    }

    /// Counters and identity for `edge-agent status`.
    package func status() async throws(SpoolError) -> SpoolStatus {
        try await run("reading spool status") { store in try store.status() }
    }

    /// Every stored chunk decoded, in sequence order, quarantined ones with their reason; for checks
    /// and tests (holds the whole spool in memory).
    package func allStoredBatches() async throws(SpoolError) -> [(batch: Batch, quarantine: String?)] {
        try await run("reading the spool") { store in
            var out: [(Batch, String?)] = []
            try store.forEachChunk { row, decoded in out.append((try decoded.get(), row.quarantine)) }
            return out
        }
    }

    /// `run` for changes whose loss in a power cut is harmless because they only repeat work: an
    /// acknowledged range sent again, a quarantine or a dropped-ranges report redone. With fsync
    /// `full` they commit at `synchronous = NORMAL`; in WAL mode the next `FULL` commit (a producer's
    /// write) or checkpoint syncs their frames with its own, so each group commit of producer data
    /// stays the one sync it pays for, and its 2xx still means durable.
    func runUnsynced<T: Sendable>(_ action: String, _ body: @escaping @Sendable (SpoolStore) throws -> T)
        async throws(SpoolError) -> T
    {
        try await run(action) { store in try store.database.withSynchronous(.normal) { try body(store) } }
    }

    func run<T: Sendable>(_ action: String, _ body: @escaping @Sendable (SpoolStore) throws -> T)
        async throws(SpoolError)
        -> T
    {
        let store = self.store
        do {
            return try await connection.run { _ in try body(store.value) }
        } catch {
            throw SpoolError.wrap(error, while: action)
        }
    }
}

/// Carries the store into blocks on the connection queue.
// @unchecked: the store (and its connection) is only touched inside blocks running on the spool's
// serial connection queue, after `openFile` handed it over.
private final class StoreBox: @unchecked Sendable {
    let value: SpoolStore
    init(_ value: SpoolStore) { self.value = value }
}

extension Array {
    /// Returns the elements and leaves the array empty.
    fileprivate mutating func take() -> [Element] {
        var taken: [Element] = []
        swap(&taken, &self)
        return taken
    }
}

/// The writer's WAL frame count, set by its WAL hook (on the writer's queue) and read there too.
private final class WALFrameCount: Sendable {
    let value = Atomic<Int>(0)
    /// `value` when the last background checkpoint was started (set and read on the writer's queue).
    let checkpointStartedAt = Atomic<Int>(0)
}
