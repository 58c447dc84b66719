import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries, a cluster in a
/// temporary directory, listening on loopback only, trust authentication for the local user
/// `postgres`. As root it runs as `nobody` (PostgreSQL refuses to run as root). A watchdog shell
/// kills the server and deletes its directory once the process that started it is gone, so a
/// crashed or killed test leaves nothing running.
///
/// `make()` returns `nil` with the reason when the binaries are missing, so callers can skip.
package final class PostgresTestServer: Sendable {
    package struct Unavailable: Error, CustomStringConvertible {
        package var description: String
    }

    package struct Settings: Sendable {
        /// Extra `-c name=value` settings (shared_buffers, fsync...).
        package var parameters: [String: String] = [:]
        package init(parameters: [String: String] = [:]) { self.parameters = parameters }

        /// What the ingest benchmark uses: room for bulk loads, checkpoints spread out. Commits are
        /// still durable (fsync and synchronous_commit stay on).
        package static let bulkLoad = Settings(parameters: [
            "shared_buffers": "512MB", "max_wal_size": "8GB", "checkpoint_timeout": "15min",
            "wal_buffers": "64MB", "wal_compression": "off", "autovacuum": "off",
        ])
    }

    package let directory: String
    package let port: Int
    private let binaries: String
    private let settings: Settings
    private let runsAsNobody: Bool
    private let process = Mutex<ChildProcess?>(nil)

    /// The URL a client connects with.
    package var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    /// Creates a cluster in a new temporary directory and starts the server on a free port.
    package static func make(settings: Settings = Settings()) async throws -> PostgresTestServer {
        guard let binaries = findBinaries() else {
            throw Unavailable(
                description: "PostgreSQL server binaries are not installed (Debian package postgresql; .ci/run installs it)")
        }
        let runsAsNobody = geteuid() == 0
        if runsAsNobody, !FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") {
            throw Unavailable(description: "running as root needs setpriv (util-linux) to start PostgreSQL as nobody")
        }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("edge-sync-pg-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if runsAsNobody { chown(directory, 65534, 65534) }
        let server = PostgresTestServer(
            directory: directory, port: try freeLoopbackPort(), binaries: binaries, settings: settings,
            runsAsNobody: runsAsNobody)
        let initdb = try await ChildProcess.run(
            server.launcher, server.command("initdb", ["-D", server.dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"]))
        guard initdb.status == 0 else {
            server.removeFiles()
            throw ChildProcess.Failure("initdb failed (\(initdb.status)): \(initdb.stderr.suffix(600))")
        }
        do {
            try await server.start()
        } catch {
            server.removeFiles()
            throw error
        }
        server.startWatchdog()
        return server
    }

    /// One server per test process, made on first use; each test takes a database of its own
    /// (`makeDatabase()`). Failures (PostgreSQL missing) are remembered and thrown to every caller.
    package static func shared() async throws -> PostgresTestServer {
        try await sharedServer.value
    }

    private static let sharedServer = Task { try await make() }

    /// `shared()`, or `nil` after printing why the calling test is skipped (PostgreSQL is not
    /// installed). Any other failure to start is an error, not a skip.
    package static func sharedOrSkip() async throws -> PostgresTestServer? {
        try await orSkip { try await shared() }
    }

    /// A server of the caller's own (to stop and crash), or `nil` after printing why the test is skipped.
    package static func makeOrSkip() async throws -> PostgresTestServer? {
        try await orSkip { try await make() }
    }

    private static func orSkip(_ start: () async throws -> PostgresTestServer) async throws -> PostgresTestServer? {
        do {
            return try await start()
        } catch let error as Unavailable {
            print("skipped: \(error)")
            return nil
        }
    }

    /// A new, empty database on this server; returns its URL.
    package func makeDatabase(prefix: String = "test") async throws -> String {
        let name = "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await psql("CREATE DATABASE \(name)")
        return "postgres://postgres@127.0.0.1:\(port)/\(name)"
    }

    /// Runs `body` with a new database's URL, then drops the database (and any connection still
    /// open to it), so repeated runs do not fill the disk.
    package func withDatabase<T>(prefix: String, _ body: (String) async throws -> T) async throws -> T {
        let url = try await makeDatabase(prefix: prefix)
        let name = url.split(separator: "/").last.map(String.init) ?? ""
        do {
            let value = try await body(url)
            _ = try await psql("DROP DATABASE \(name) WITH (FORCE)")
            return value
        } catch {
            _ = try? await psql("DROP DATABASE \(name) WITH (FORCE)")
            throw error
        }
    }

    /// Kills the server (whatever its current pid) and deletes the directory once this process has
    /// exited: a shell loop that outlives us as an orphan, at most `lifetime` in any case.
    private func startWatchdog(lifetime: Duration = .seconds(3 * 3600)) {
        let pidFile = dataDirectory + "/postmaster.pid"
        let script = """
            end=$(( $(date +%s) + \(lifetime.components.seconds) ))
            while kill -0 \(getpid()) 2>/dev/null && [ $(date +%s) -lt $end ]; do sleep 1; done
            [ -f '\(pidFile)' ] && kill -KILL "$(head -n 1 '\(pidFile)')" 2>/dev/null
            sleep 1
            rm -rf '\(directory)'
            """
        let watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments = ["-c", script]
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try? watchdog.run()
    }

    private init(directory: String, port: Int, binaries: String, settings: Settings, runsAsNobody: Bool) {
        self.directory = directory
        self.port = port
        self.binaries = binaries
        self.settings = settings
        self.runsAsNobody = runsAsNobody
    }

    private var dataDirectory: String { directory + "/data" }

    private var launcher: URL {
        URL(fileURLWithPath: runsAsNobody ? "/usr/bin/setpriv" : "/usr/bin/env")
    }

    /// The arguments that run `tool` from the PostgreSQL binaries, as nobody when we are root.
    private func command(_ tool: String, _ arguments: [String]) -> [String] {
        let program = binaries + "/" + tool
        if runsAsNobody {
            return ["--reuid=65534", "--regid=65534", "--clear-groups", "--", program]
                + arguments
        }
        return [program] + arguments
    }

    /// Starts the server and returns once it accepts connections (within 60 s).
    package func start() async throws {
        var arguments = [
            "-D", dataDirectory, "-p", String(port), "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=\(directory)", "-c", "max_connections=200",
            "-c", "log_min_messages=warning",
        ]
        for (name, value) in settings.parameters.sorted(by: { $0.key < $1.key }) {
            arguments += ["-c", "\(name)=\(value)"]
        }
        let child = try ChildProcess(launcher, command("postgres", arguments), name: "postgres")
        process.withLock { $0 = child }
        let ready = Task {
            try await child.waitForLine { $0.contains("ready to accept connections") }
        }
        let timeout = Task {
            try await Task.sleep(for: .seconds(60))
            ready.cancel()
            child.kill()
        }
        defer { timeout.cancel() }
        do {
            _ = try await ready.value
        } catch {
            child.kill()
            throw ChildProcess.Failure(
                "PostgreSQL did not start: \(child.stderrLines.suffix(10).joined(separator: "\n"))")
        }
    }

    /// Fast shutdown (SIGINT: active transactions are rolled back, clients disconnected); returns
    /// once the server has exited.
    package func stop() async {
        guard let child = process.withLock({ $0 }) else { return }
        child.kill(SIGINT)
        _ = await child.waitForExit()
        process.withLock { $0 = nil }
    }

    /// A crash: SIGKILL to the postmaster; its backends notice and exit, recovery runs at the next start.
    package func crash() async {
        guard let child = process.withLock({ $0 }) else { return }
        child.kill(SIGKILL)
        _ = await child.waitForExit()
        process.withLock { $0 = nil }
        // Orphaned backends notice the postmaster's death and exit; until they have, a new
        // postmaster refuses the shared memory they hold. Wait for them (their working directory is
        // the data directory).
        let deadline = ContinuousClock.now + .seconds(30)
        while processesInDataDirectory() > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    private func processesInDataDirectory() -> Int {
        let target = (dataDirectory as NSString).resolvingSymlinksInPath
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return 0 }
        return entries.filter { entry in
            guard Int32(entry) != nil,
                let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/cwd")
            else { return false }
            return cwd == target
        }.count
    }

    /// Stops the server and deletes the cluster.
    package func destroy() async {
        await stop()
        removeFiles()
    }

    private func removeFiles() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs SQL through `psql` as the superuser; returns its standard output. For test set-up and checks.
    package func psql(_ sql: String) async throws -> String {
        let output = try await ChildProcess.run(
            URL(fileURLWithPath: binaries + "/psql"),
            ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", sql])
        guard output.status == 0 else { throw ChildProcess.Failure("psql failed: \(output.stderr)") }
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The newest installed PostgreSQL's binary directory (Debian keeps them under /usr/lib/postgresql/N/bin).
    static func findBinaries() -> String? {
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return versions.compactMap(Int.init).sorted(by: >).map { "\(root)/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: $0 + "/postgres") }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
package func freeLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw ChildProcess.Failure("socket() failed: \(errno)") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
            bind(descriptor, socketAddress, length) == 0 && getsockname(descriptor, socketAddress, &length) == 0
        }
    }
    guard bound else { throw ChildProcess.Failure("binding a loopback port failed: \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}
