import EdgeSyncLogging
import EdgeSyncMetrics
import EdgeSyncPostgres
import EdgeSyncSQLite
import Foundation
import HTTPCore
import Synchronization

/// The running collector: the central database in a data directory, one writer, read-only
/// connections for authentication, and the HTTP server with its routes.
package final class CollectorService: Sendable {
    package struct Configuration: Sendable {
        package var host = "127.0.0.1"
        package var port = 8080
        package var dataDirectory: String
        package var storage = SQLiteReadingStore.Configuration()
        /// The embedded database's integrity checks (at start and in the background).
        package var integrity = DatabaseIntegrity.Configuration()
        /// Central storage on PostgreSQL instead of embedded SQLite (`--database postgres://…`).
        /// The data directory is then unused; several collectors may share the database.
        package var postgresURL: String?
        package var postgres = PostgresReadingStore.Configuration()
        package var writer = IngestWriter.Configuration()
        package var ingest = IngestEndpoint.Configuration()
        package var readerConnections = 2
        /// Read-only connections for the query API, separate from authentication's.
        package var queryConnections = 2
        package var query = QueryEndpoint.Configuration()
        /// Prometheus remote read and the labels API (`/api/v1/…`), behind the operator token.
        package var prometheus = PrometheusEndpoint.Configuration()
        /// The secret that opens the query API; `nil` leaves it closed (403). Never logged.
        package var operatorToken: String?
        package var eventLoops = 1
        package var maximumConnections = 10_000
        package var shutdownGrace = Duration.seconds(10)
        /// The downstream stream (`stream.*`, decision 0019): when set, every newly stored reading
        /// is written to the outbox in its ingest transaction and relayed to JetStream.
        package var stream: StreamDestination?
        package var relay = StreamRelay.Configuration()

        package init(dataDirectory: String) {
            self.dataDirectory = dataDirectory
        }

        package var databasePath: String {
            (dataDirectory as NSString).appendingPathComponent(CollectorSchema.databaseFileName)
        }

        /// Where central data lives, as logs may show it (never a password).
        package var databaseDescription: String {
            if let postgresURL { return postgresRedactedURL(postgresURL) }
            return databasePath
        }

        func postgresSession(_ role: String) -> PostgresSession.Configuration? {
            guard let postgresURL else { return nil }
            var session = PostgresSession.Configuration(url: postgresURL)
            session.applicationName = "cloud-collector \(role)"
            return session
        }
    }

    /// Makes the store the writer owns; the default opens `PostgresReadingStore` when a PostgreSQL
    /// URL is configured, else `SQLiteReadingStore` in the data directory. A test's wrapper plugs in here.
    package typealias StoreFactory =
        @Sendable (Configuration, Logger) throws -> any ReadingStore

    package let configuration: Configuration
    package let writer: IngestWriter
    /// The counters `/metrics` shows (the demo's progress line reads them too).
    package let metrics = CollectorMetrics()
    /// Damage found in the embedded database; while set, batches get 503 and `/readyz` fails.
    package let integrity: DatabaseIntegrity
    /// Moves the outbox to JetStream while the service runs (nil without `stream`).
    package let relay: StreamRelay?
    private let server: HTTPServer

    /// Opens (creating when needed) the database and prepares the server; nothing listens yet.
    package init(
        configuration: Configuration,
        logger: Logger = .discard,
        makeStore: StoreFactory = { configuration, logger in
            if let session = configuration.postgresSession("writer") {
                return try PostgresReadingStore(session: session, configuration: configuration.postgres)
            }
            return try SQLiteReadingStore(path: configuration.databasePath, configuration: configuration.storage,
                logger: logger.child("storage"))
        },
        extraRoutes: (inout CollectorRouter) -> Void = { _ in },
        now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1e9) }
    ) throws {
        var configuration = configuration
        if let destination = configuration.stream {
            // Before the store is made: its ingest transaction writes the outbox.
            let gauge = StreamOutboxGauge()
            let settings = destination.outboxSettings(gauge: gauge)
            configuration.storage.streamOutbox = settings
            configuration.postgres.streamOutbox = settings
            let session = configuration.postgresSession("stream")
            let path = configuration.databasePath
            let publisher = destination.publisherConfiguration()
            relay = StreamRelay(
                configuration: configuration.relay, gauge: gauge,
                reader: {
                    if let session { return try PostgresStreamOutbox.Reader(session: session) }
                    return try SQLiteStreamOutbox.Reader(path: path)
                },
                publisher: { JetStreamPublisher(publisher) }, logger: logger.child("stream"))
        } else {
            relay = nil
        }
        self.configuration = configuration
        if configuration.postgresURL == nil {
            try FileManager.default.createDirectory(
                atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        }
        let store: any ReadingStore
        do {
            store = try makeStore(configuration, logger.child("storage"))
        } catch let error as SQLiteError where error.isCorrupt {
            // A file cut short or overwritten at its start: say which file and what to do.
            throw CollectorStorageError(
                DatabaseIntegrity.advice(path: configuration.databasePath, finding: "\(error)"))
        }
        integrity =
            configuration.postgresURL == nil
            ? try DatabaseIntegrity(
                databasePath: configuration.databasePath, configuration: configuration.integrity,
                logger: logger.child("integrity"))
            : DatabaseIntegrity()
        writer = IngestWriter(store: store, configuration: configuration.writer, now: now)
        let backend = try Backend(configuration, integrity: integrity)

        let metrics = self.metrics
        var router = CollectorRouter(logger: logger.child("router"), metrics: metrics)
        let refusals = RefusalLog()
        IngestEndpoint(
            configuration: configuration.ingest, authenticator: backend.authenticator, writer: writer, metrics: metrics,
            integrity: integrity, refusals: refusals, now: now
        )
        .register(in: &router)
        QueryEndpoint(
            configuration: configuration.query,
            authenticator: OperatorAuthenticator(token: configuration.operatorToken),
            queries: backend.queries, refusals: refusals,
            skewToleranceNanoseconds: configuration.storage.clock.futureToleranceNanoseconds, now: now
        )
        .register(in: &router)
        PrometheusEndpoint(
            configuration: configuration.prometheus,
            authenticator: OperatorAuthenticator(token: configuration.operatorToken), queries: backend.queries
        )
        .register(in: &router)
        router.add("GET", "/healthz") { _, _ in HTTPResponse(text: "ok\n") }
        let readiness = backend.readiness
        let writer = self.writer
        router.add("GET", "/readyz") { _, _ in
            if let problem = await readiness.problem() {
                throw CollectorError(.serviceUnavailable, "not_ready", problem, retryAfterSeconds: 5)
            }
            return HTTPResponse(text: "ready\n")
        }
        DashboardEndpoint().register(in: &router)
        extraRoutes(&router)
        // /metrics reads the timing wrapper that wraps the router it is part of: late-bound.
        let timing = Mutex<TimedResponder<CollectorRouter>?>(nil)
        let relay = self.relay
        router.add("GET", "/metrics") { _, _ in
            guard let timed = timing.withLock({ $0 }) else { return HTTPResponse(status: .serviceUnavailable) }
            return metrics.render(queuedReadings: writer.queuedReadings, timing: timed, stream: relay, now: now())
                .response
        }
        let timed = TimedResponder(router, knownPaths: router.paths)
        timing.withLock { $0 = timed }

        var server = HTTPServer.Configuration(host: configuration.host, port: configuration.port)
        server.limits.maxBodyBytes = max(
            configuration.ingest.limits.maximumFrameBytes, configuration.ingest.maximumReportBytes)
        server.eventLoopCount = configuration.eventLoops
        server.maxConnections = configuration.maximumConnections
        server.shutdownGrace = configuration.shutdownGrace
        self.server = HTTPServer(configuration: server, responder: timed)
    }

    /// Serves until `shutdown()` or cancellation; in-flight batches finish and commit first.
    /// The stream relay runs alongside and stops after the writer has closed, so what the last
    /// batches put into the outbox is published when the stream is reachable (the rest is
    /// published by the next start).
    package func run() async throws {
        let integrity = self.integrity
        relay?.start()
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await integrity.run() }
                try await server.run()
                group.cancelAll()
            }
        } catch {
            await writer.close()
            await stopRelay()
            throw error
        }
        await writer.close()
        await stopRelay()
    }

    /// `StreamRelay.stop()` blocks until its thread ends (up to a publish run's timeout): wait on
    /// a thread of its own, not on the cooperative pool.
    private func stopRelay() async {
        guard let relay else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                relay.stop()
                continuation.resume()
            }.start()
        }
    }

    package var localAddress: HTTPServer.Address {
        get async throws { try await server.localAddress }
    }

    package func shutdown() {
        server.shutdown(grace: configuration.shutdownGrace)
    }
}

/// What the server reads central data through besides the writer: device authentication, the
/// query API and the readiness probe, on connections of their own.
private struct Backend {
    var authenticator: DeviceAuthenticator
    var queries: any ReadingQueries
    var readiness: ReadinessProbe

    init(_ configuration: CollectorService.Configuration, integrity: DatabaseIntegrity) throws {
        if let auth = configuration.postgresSession("auth"), let query = configuration.postgresSession("query"),
            let probe = configuration.postgresSession("readiness")
        {
            authenticator = DeviceAuthenticator(
                postgres: PostgresPool(configuration: auth, count: configuration.readerConnections, label: "cloud-collector.auth"))
            queries = PostgresReadingQueries(
                pool: PostgresPool(configuration: query, count: configuration.queryConnections, label: "cloud-collector.query"))
            readiness = ReadinessProbe(postgres: PostgresPool(configuration: probe, count: 1, label: "cloud-collector.readiness"))
        } else {
            authenticator = try DeviceAuthenticator(
                databasePath: configuration.databasePath, readerCount: configuration.readerConnections)
            queries = try SQLiteReadingQueries(
                databasePath: configuration.databasePath, connections: configuration.queryConnections)
            readiness = try ReadinessProbe(
                databasePath: configuration.databasePath, dataDirectory: configuration.dataDirectory,
                integrity: integrity)
        }
    }
}
