import Foundation
import Synchronization

/// A real `nats-server -js` (Debian's `nats-server`) on a loopback port, with its store in a
/// directory of the test's: for the JetStream client's and the collector's stream tests.
package final class NATSTestServer: Sendable {
    package struct Unavailable: Error, CustomStringConvertible {
        package var description: String
    }

    package let port: Int
    package let directory: String
    package let token: String?
    /// With both set, clients must log in as this user (`--user`/`--pass`) instead of a token.
    package let user: String?
    package let password: String?
    private let process = Mutex<ChildProcess?>(nil)

    /// The `nats-server` binary, or nil when the package is not installed.
    package static var executable: URL? {
        ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"].map(URL.init(fileURLWithPath:))
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// Starts a server with JetStream storing under `directory` (which must exist); with `token`,
    /// clients must present it; with `user` and `password`, clients must log in with them.
    package static func start(
        in directory: String, token: String? = nil, user: String? = nil, password: String? = nil
    ) async throws -> NATSTestServer {
        guard executable != nil else {
            throw Unavailable(description: "nats-server is not installed (Debian package nats-server; .ci/run installs it)")
        }
        let server = NATSTestServer(
            port: try freeLoopbackPort(), directory: directory, token: token, user: user, password: password)
        try await server.start()
        return server
    }

    private init(port: Int, directory: String, token: String?, user: String?, password: String?) {
        self.port = port
        self.directory = directory
        self.token = token
        self.user = user
        self.password = password
    }

    private func start() async throws {
        guard let executable = Self.executable else { throw Unavailable(description: "nats-server is not installed") }
        var arguments = ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", directory + "/jetstream"]
        if let token { arguments += ["--auth", token] }
        if let user, let password { arguments += ["--user", user, "--pass", password] }
        // The test process blocks SIGTERM (its own signal handling) and a child inherits the mask:
        // clear it before exec so the server can be stopped cleanly.
        let child = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                "-c",
                "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
                executable.path,
            ] + arguments, name: "nats-server")
        process.withLock { $0 = child }
        // It logs this line once clients can connect.
        _ = try await child.waitForLine { $0.contains("Server is ready") }
    }

    /// Stops the server (SIGTERM; JetStream's store is on disk) and starts it again on the same port.
    package func restart() async throws {
        await stop()
        try await start()
    }

    /// SIGKILL: the server goes away without a goodbye.
    package func kill() async {
        guard let child = process.withLock({ $0 }) else { return }
        child.kill()
        _ = await child.waitForExit()
        process.withLock { $0 = nil }
    }

    /// SIGTERM, then waits for the exit.
    package func stop() async {
        guard let child = process.withLock({ $0 }) else { return }
        child.kill(SIGTERM)
        _ = await child.waitForExit()
        process.withLock { $0 = nil }
    }

    deinit {
        process.withLock { $0?.kill() }
    }
}
