import EdgeSyncMetrics
import EdgeSyncPostgres
import EdgeSyncSQLite
import Foundation
import HTTPCore
import Synchronization

/// The collector's counters for `GET /metrics` (Prometheus text format); names and meanings are in
/// `Docs/protocol.md`.
package final class CollectorMetrics: Sendable {
    package let batches = Atomic<Int>(0)
    package let readingsAccepted = Atomic<Int>(0)
    package let readingsDuplicate = Atomic<Int>(0)
    /// Frame bytes of stored batches (what went over the wire).
    package let frameBytes = Atomic<Int>(0)
    package let droppedReports = Atomic<Int>(0)
    package let batchReadings = Histogram(bounds: [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000])
    private let errors = Mutex<[ErrorKey: Int]>([:])

    private struct ErrorKey: Hashable {
        var status: Int
        var code: String
    }

    package init() {}

    /// Counts an error answer by status and its stable code (`queue_full`, `checksum_mismatch`, …).
    package func countError(status: Int, code: String) {
        errors.withLock { $0[ErrorKey(status: status, code: code), default: 0] += 1 }
    }

    package func countBatch(accepted: Int, duplicates: Int, frameBytes: Int) {
        batches.add(1, ordering: .relaxed)
        readingsAccepted.add(accepted, ordering: .relaxed)
        readingsDuplicate.add(duplicates, ordering: .relaxed)
        self.frameBytes.add(frameBytes, ordering: .relaxed)
        batchReadings.observe(Double(accepted + duplicates))
    }

    func render(
        queuedReadings: Int, timing: TimedResponder<CollectorRouter>, stream relay: StreamRelay? = nil, now: Int64 = 0
    ) -> Exposition {
        var out = Exposition()
        let accepted = Double(readingsAccepted.load(ordering: .relaxed))
        let duplicates = Double(readingsDuplicate.load(ordering: .relaxed))
        let bytes = Double(frameBytes.load(ordering: .relaxed))
        out.counter("collector_ingest_batches_total", "Batches stored and acknowledged.", Double(batches.load(ordering: .relaxed)))
        out.counter("collector_ingest_readings_total", "Readings stored for the first time.", accepted)
        out.counter("collector_ingest_duplicate_readings_total", "Readings received again and acknowledged without storing (dedup).", duplicates)
        out.counter("collector_ingest_received_bytes_total", "Frame bytes of acknowledged batches.", bytes)
        out.gauge(
            "collector_ingest_compression_ratio", "Frame bytes per reading over 16 bytes per raw reading (compressed/original), since start.",
            accepted + duplicates > 0 ? bytes / (accepted + duplicates) / 16 : 0)
        out.histogram("collector_ingest_batch_readings", "Readings per acknowledged batch.", [([], batchReadings.snapshot)])
        out.counter("collector_dropped_reports_total", "Dropped-range reports received from edges.", Double(droppedReports.load(ordering: .relaxed)))
        out.gauge("collector_write_queue_readings", "Readings decoded and waiting for the writer's next commit.", Double(queuedReadings))
        let errorCounts = errors.withLock { $0 }.sorted { ($0.key.status, $0.key.code) < ($1.key.status, $1.key.code) }
        out.family(
            "collector_http_errors_total", "counter", "Error answers by status and code.",
            errorCounts.map { ([("code", String($0.key.status)), ("error", $0.key.code)], Double($0.value)) })
        if let relay { Self.writeStream(relay, now: now, into: &out) }
        timing.write(into: &out, prefix: "collector")
        return out
    }

    /// The downstream stream's outbox and relay (decision 0019); only with `stream.*` configured.
    private static func writeStream(_ relay: StreamRelay, now: Int64, into out: inout Exposition) {
        let counters = relay.counters
        out.gauge(
            "collector_stream_outbox_messages", "Stream messages waiting in the outbox.",
            Double(relay.gauge.messages))
        out.gauge(
            "collector_stream_outbox_bytes",
            "Bytes waiting in the outbox (ingest answers 503 stream_backlog past stream.max_outbox_bytes).",
            Double(relay.gauge.bytes))
        let lag = counters.oldestWaitingCreatedAt.map { max(0, Double(now - $0) / 1e9) } ?? 0
        out.gauge(
            "collector_stream_publish_lag_seconds",
            "Age of the oldest message waiting in the outbox (0 when none waits).", lag)
        out.counter(
            "collector_stream_published_messages_total", "Messages JetStream stored.", Double(counters.published))
        out.counter(
            "collector_stream_published_readings_total", "Readings in messages JetStream stored.",
            Double(counters.publishedReadings))
        out.counter(
            "collector_stream_duplicate_messages_total",
            "Messages JetStream already had (a retry inside its duplicate window).", Double(counters.duplicates))
        out.counter(
            "collector_stream_refused_messages_total",
            "Publishes JetStream refused (the message stays and is retried).", Double(counters.refused))
        out.counter(
            "collector_stream_publish_failures_total",
            "Publish runs that failed (NATS unreachable, timeouts, database errors).", Double(counters.failures))
    }
}

/// `GET /readyz`: the collector can store data right now: the database takes a write lock within a
/// second, and the data directory's file system has room.
package struct ReadinessProbe: Sendable {
    package static let minimumFreeBytes: Int64 = 64 << 20
    /// How long the database may take to answer before the collector counts as not ready.
    package static let databaseTimeout = Duration.seconds(2)
    private let databaseProblem: @Sendable () async -> String?
    private let dataDirectory: String?
    private let integrity: DatabaseIntegrity?

    /// Embedded SQLite: the write lock must be free within a second and the data directory must
    /// have room.
    package init(databasePath: String, dataDirectory: String, integrity: DatabaseIntegrity? = nil) throws {
        var configuration = SQLiteDatabase.Configuration()
        configuration.createsFile = false
        configuration.busyTimeout = .seconds(1)
        let connection = try SQLiteConnectionQueue(path: databasePath, configuration: configuration, label: "readiness")
        self.dataDirectory = dataDirectory
        self.integrity = integrity
        databaseProblem = {
            do {
                try await connection.run { database in
                    try database.execute("BEGIN IMMEDIATE")
                    try database.execute("ROLLBACK")
                }
                return nil
            } catch {
                return "the database does not take writes: \(error)"
            }
        }
    }

    /// PostgreSQL: the server must answer within `databaseTimeout` and take writes (a primary,
    /// not a standby in recovery).
    package init(postgres pool: PostgresPool) {
        dataDirectory = nil
        integrity = nil
        databaseProblem = {
            // A hung server must not hang the probe: whichever comes first, the answer or the
            // timeout, decides; a late answer is ignored.
            let decided = Mutex<CheckedContinuation<String?, Never>?>(nil)
            return await withCheckedContinuation { continuation in
                decided.withLock { $0 = continuation }
                let decide: @Sendable (String?) -> Void = { problem in
                    decided.withLock { $0.take() }?.resume(returning: problem)
                }
                Task {
                    do {
                        let inRecovery = try await pool.run { connection in
                            try connection.query("SELECT pg_is_in_recovery()").string(0, 0)
                        }
                        decide(inRecovery == "t" ? "PostgreSQL is a read-only standby (in recovery)" : nil)
                    } catch {
                        // Unauthenticated callers read this: no host, user or database names. The
                        // details are in the log lines of the batches that fail meanwhile.
                        decide("PostgreSQL is unreachable")
                    }
                }
                Task {
                    try? await Task.sleep(for: Self.databaseTimeout)
                    decide("PostgreSQL did not answer within \(Self.databaseTimeout)")
                }
            }
        }
    }

    /// nil when ready, else why not.
    package func problem() async -> String? {
        if let damage = integrity?.problem { return damage }
        if let dataDirectory {
            var stats = statvfs()
            if statvfs(dataDirectory, &stats) == 0 {
                let free = Int64(stats.f_bavail) * Int64(stats.f_frsize)
                if free < Self.minimumFreeBytes { return "only \(free) bytes free in the data directory" }
            }
        }
        return await databaseProblem()
    }
}
