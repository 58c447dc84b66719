import CloudCollector
import EdgeSyncCodec
import EdgeSyncLogging
import EdgeSyncPostgres
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import HTTPCore
import Synchronization
import Testing

/// Issue 17: the collector never acknowledges into a database it cannot read back (a damaged file
/// gets 503 `database_damaged`, `/readyz` fails, the log names the file), and a full disk answers
/// 503 `disk_full` with Retry-After instead of 500.
@Suite(.serialized) struct DatabaseDamageTests {
    let encoder = BatchEncoder()

    /// A collector database holding readings and a token for gateway-1; returns the token.
    func makeDatabase(at configuration: CollectorService.Configuration) throws -> String {
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        do {
            let store = try SQLiteReadingStore(path: configuration.databasePath)
            for index in 0..<20 {
                _ = try store.store(
                    [Fixtures.batch(first: UInt64(index * 5000 + 1), count: 5000)],
                    receivedAt: 1_700_000_000_000_000_000)
            }
        }
        let database = try SQLiteDatabase(path: configuration.databasePath)
        let token = try TokenStore.add(device: "gateway-1", in: database, now: 0).text
        try database.checkpoint(.truncate)
        return token
    }

    /// As the issue did it: the WAL checkpointed into the file, then 16 KiB in the middle overwritten.
    func overwriteMiddle(of path: String) throws {
        let size = Int64(SQLiteDatabase.fileSizes(ofDatabaseAt: path).database)
        #expect(SQLiteDatabase.fileSizes(ofDatabaseAt: path).wal == 0)
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: UInt64(size / 2 / 4096 * 4096))
        try handle.write(contentsOf: Data(repeating: 0xA5, count: 16 * 1024))
        try handle.close()
    }

    func serve<T>(
        _ configuration: CollectorService.Configuration, log: LogLines,
        _ body: (CollectorService, Int) async throws -> T
    ) async throws -> T {
        let service = try CollectorService(
            configuration: configuration, logger: log.logger)
        let serving = Task { try await service.run() }
        defer { service.shutdown() }
        let port = try await service.localAddress.port
        let result = try await body(service, port)
        service.shutdown()
        try await serving.value
        return result
    }

    func post(_ frame: [UInt8], token: String, port: Int) async throws -> BlockingHTTPClient.Response {
        try await onDedicatedThread {
            try BlockingHTTPClient(port: port).post(
                ProtocolPath.batches, body: frame,
                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", FrameHeader.mediaType)])
        }
    }

    func get(_ path: String, port: Int) async throws -> BlockingHTTPClient.Response {
        try await onDedicatedThread { try BlockingHTTPClient(port: port).send(method: "GET", path: path) }
    }

    @Test func aCollectorStartedOnADamagedFileRefusesBatchesAndIsNotReady() async throws {
        try await withTemporaryDirectory(prefix: "collector-damage") { directory in
            var configuration = CollectorService.Configuration(dataDirectory: directory)
            configuration.port = 0
            let token = try makeDatabase(at: configuration)
            try overwriteMiddle(of: configuration.databasePath)
            let log = LogLines()
            try await serve(configuration, log: log) { service, port in
                let frame = try encoder.encode(Fixtures.batch(first: 100_001, count: 50_000))
                let response = try await post(frame, token: token, port: port)
                #expect(response.status == 503)
                #expect(response.header("retry-after") != nil)
                let body = try JSONDecoder().decode(ErrorBody.self, from: Data(response.body))
                #expect(body.error == "database_damaged")
                #expect(body.message.contains(configuration.databasePath), "\(body.message)")
                #expect(body.message.contains("restore"))

                let ready = try await get("/readyz", port: port)
                #expect(ready.status == 503)
                #expect(ready.text.contains("damaged"), "\(ready.text)")
                #expect(service.integrity.problem != nil)
            }
            let lines = log.lines.withLock { $0 }
            #expect(
                lines.contains {
                    $0.contains("event=database_damaged") && $0.contains("file=\(configuration.databasePath)")
                },
                "\(lines)")
        }
    }

    /// A file too big to check within the start-up budget (here: a budget of zero) is checked in
    /// the background one table at a time; the check that reaches the damage stops the acks.
    @Test func theBackgroundCheckFindsDamageTheStartupBudgetLeftUnchecked() async throws {
        try await withTemporaryDirectory(prefix: "collector-damage") { directory in
            var configuration = CollectorService.Configuration(dataDirectory: directory)
            configuration.port = 0
            configuration.integrity.startupBudget = .zero
            configuration.integrity.backgroundInterval = nil
            let token = try makeDatabase(at: configuration)
            try overwriteMiddle(of: configuration.databasePath)
            let log = LogLines()
            try await serve(configuration, log: log) { service, port in
                #expect(log.lines.withLock { $0.contains { $0.contains("event=integrity_check_partial") } })
                #expect(service.integrity.problem == nil, "the bookkeeping tables are intact")
                var checks = 0
                while service.integrity.problem == nil, checks < 20 {
                    await service.integrity.checkNextTable()
                    checks += 1
                }
                #expect(service.integrity.problem?.contains(configuration.databasePath) == true)
                let frame = try encoder.encode(Fixtures.batch(first: 100_001, count: 10))
                let response = try await post(frame, token: token, port: port)
                #expect(response.status == 503)
                #expect(response.text.contains("database_damaged"))
            }
        }
    }

    @Test func aFileCutInHalfIsNamedWhenTheCollectorStarts() async throws {
        try withTemporaryDirectory(prefix: "collector-damage") { directory in
            var configuration = CollectorService.Configuration(dataDirectory: directory)
            configuration.port = 0
            _ = try makeDatabase(at: configuration)
            let size = SQLiteDatabase.fileSizes(ofDatabaseAt: configuration.databasePath).database
            #expect(truncate(configuration.databasePath, off_t(size / 2)) == 0)
            do {
                let service = try CollectorService(configuration: configuration)
                // Opening worked: the start-up check must have found it.
                #expect(service.integrity.problem?.contains(configuration.databasePath) == true)
            } catch {
                #expect("\(error)".contains(configuration.databasePath), "\(error)")
                #expect("\(error)".contains("damaged"), "\(error)")
            }
        }
    }

    /// Both backends' disk-full errors become the same answer (PostgreSQL cannot be filled here).
    @Test(arguments: [
        SQLiteError(extendedCode: 13, message: "database or disk is full") as any Error & Sendable,
        PostgresError("could not extend file: No space left on device", sqlState: "53100"),
    ])
    func diskFullFromEitherBackendIs503WithRetryAfter(error: any Error & Sendable) async throws {
        var router = CollectorRouter(logger: .discard)
        router.add("POST", ProtocolPath.batches) { _, _ in throw error }
        let request = HTTPRequest(
            head: HTTPRequestHead(method: "POST", target: ProtocolPath.batches, headers: HTTPHeaders()),
            body: HTTPRequestBody(bytes: []))
        let response = try await router.respond(to: request, context: HTTPRequestContext())
        #expect(response.status.code == 503)
        #expect(response.headers["retry-after"] == "10")
        guard case .bytes(let bytes) = response.body else {
            Issue.record("expected a body")
            return
        }
        #expect(try JSONDecoder().decode(ErrorBody.self, from: Data(bytes)).error == "disk_full")
    }

    /// A collector on a small tmpfs filled to the last byte answers 503 `disk_full` with
    /// Retry-After, stores nothing, and accepts the batch once space is back.
    @Test func aFullDiskAnswers503WithRetryAfter() async throws {
        try await withTemporaryDirectory(prefix: "collector-full") { directory in
            let mountPoint = directory + "/tmpfs"
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            let mount = try await ChildProcess.run(
                URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint])
            guard mount.status == 0 else {
                print("skipped: cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): \(mount.stderr)")
                return
            }
            defer { _ = umount2(mountPoint, Int32(MNT_DETACH)) }
            var configuration = CollectorService.Configuration(dataDirectory: mountPoint + "/data")
            configuration.port = 0
            let log = LogLines()
            try await serve(configuration, log: log) { service, port in
                let token = try TokenStore.add(
                    device: "gateway-1", in: try SQLiteDatabase(path: configuration.databasePath), now: 0
                ).text
                let small = try encoder.encode(Fixtures.batch(first: 1, count: 100))
                #expect(try await post(small, token: token, port: port).status == 200)

                let filler = mountPoint + "/filler"
                let descriptor = open(filler, O_CREAT | O_WRONLY, 0o600)
                try #require(descriptor >= 0)
                let chunk = [UInt8](repeating: 1, count: 64 * 1024)
                while write(descriptor, chunk, chunk.count) > 0 {}
                #expect(errno == ENOSPC)
                close(descriptor)

                let frame = try encoder.encode(Fixtures.batch(first: 101, count: 50_000))
                let full = try await post(frame, token: token, port: port)
                #expect(full.status == 503, "\(full.text)")
                #expect(full.header("retry-after") == "10")
                #expect(full.text.contains("disk_full"), "\(full.text)")
                #expect(log.lines.withLock { $0.contains { $0.contains("event=disk_full") } })

                try FileManager.default.removeItem(atPath: filler)
                let freed = try await post(frame, token: token, port: port)
                #expect(freed.status == 200, "\(freed.text)")
                #expect(try Fixtures.readingCount(databasePath: configuration.databasePath) == 50_100)
            }
        }
    }
}

/// What a collector logged, collected from its log closure.
final class LogLines: Sendable {
    let lines = Mutex<[String]>([])
    /// A logger whose records land here, rendered as the collector renders them.
    var logger: Logger { Logger(label: "test") { [self] record in lines.withLock { $0.append(record.logfmt()) } } }
}
