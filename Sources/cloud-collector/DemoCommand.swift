import CloudCollector
import EdgeSyncCommandLine
import EdgeSyncSQLite
import Foundation

/// `demo`: the pair working on one machine. A collector on embedded SQLite in a temporary directory,
/// and simulated gateways, each a real `edge-agent run` process with the built-in sensor simulator,
/// uploading to it over loopback. Prints the dashboard URL and a live one-line summary; Ctrl-C stops
/// the gateways, then the collector, and removes the directory (unless `--keep`).
enum DemoCommand {
    static let parser = ArgumentParser(options: [
        .value("--gateways", "N", help: "simulated gateways, each a real edge-agent process (default 3)"),
        .value("--sensors", "N", help: "sensors per gateway (default 20)"),
        .value("--rate", "HZ", help: "readings per second per sensor (default 5)"),
        .value("--listen", "HOST:PORT", help: "collector address (default 127.0.0.1:8080, or a free port if taken)"),
        .flag("--keep", help: "keep the temporary directory (databases, spools, agent logs) at the end"),
    ])

    static func run(_ arguments: [String]) async throws -> ExitCode {
        let parsed = try parser.parse(arguments)
        let gateways =
            try parsed.value(
                "--gateways", as: "a count from 1 to 50", { Int($0).flatMap { (1...50).contains($0) ? $0 : nil } }) ?? 3
        let sensors =
            try parsed.value(
                "--sensors", as: "a count from 1 to 10000", { Int($0).flatMap { (1...10_000).contains($0) ? $0 : nil } }
            ) ?? 20
        let rate =
            try parsed.value(
                "--rate", as: "a rate from 0.1 to 1000", { Double($0).flatMap { (0.1...1000).contains($0) ? $0 : nil } }
            ) ?? 5
        let listen = try parsed.value("--listen", as: "HOST:PORT", CollectorService.Configuration.parseListen)
        guard let agentBinary = siblingExecutable("edge-agent") else {
            standardError(
                "cloud-collector demo: edge-agent was not found next to cloud-collector; build both with `swift build`\n"
            )
            return .failure
        }
        let signals = TerminationSignals.stream()
        let directory = try temporaryDirectory()
        let operatorToken = randomHex(32)

        var configuration = CollectorService.Configuration(dataDirectory: directory + "/collector")
        configuration.operatorToken = operatorToken
        (configuration.host, configuration.port) = listen ?? ("127.0.0.1", 8080)
        let started: (service: CollectorService, serving: Task<Void, any Error>, address: String)
        do {
            do {
                started = try await start(configuration)
            } catch  where listen == nil {
                // 8080 is taken: any free port will do for a demo.
                configuration.port = 0
                started = try await start(configuration)
            }
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        let (service, serving, address) = started
        let url = "http://\(address)"

        var agents: [Process] = []
        /// Stops what was started, in order: gateways, then the collector; then the files.
        func cleanUp(keep: Bool) async {
            for agent in agents where agent.isRunning { agent.terminate() }
            for agent in agents { agent.waitUntilExit() }
            serving.cancel()
            try? await serving.value
            if !keep { try? FileManager.default.removeItem(atPath: directory) }
        }
        do {
            let database = try SQLiteDatabase(path: configuration.databasePath)
            for index in 1...gateways {
                let device = "demo-gw-\(index)"
                let token = try TokenStore.add(device: device, in: database, now: Int64(Date().timeIntervalSince1970))
                let process = Process()
                process.executableURL = agentBinary
                process.arguments = [
                    "run", "--data-dir", "\(directory)/\(device)", "--device", device, "--collector", url,
                    "--simulate", "\(sensors)@\(rate)",
                ]
                process.environment = ProcessInfo.processInfo.environment.merging(["EDGE_AGENT_TOKEN": token.text]) {
                    $1
                }
                _ = FileManager.default.createFile(atPath: "\(directory)/\(device).log", contents: nil)
                process.standardError = FileHandle(forWritingAtPath: "\(directory)/\(device).log")
                process.standardOutput = FileHandle.nullDevice
                try process.run()
                agents.append(process)
            }
        } catch {
            await cleanUp(keep: false)
            throw error
        }
        let gatewayProcesses = Processes(all: agents)

        print(
            """
            edge-sync demo: a collector on embedded SQLite and \(gateways) simulated gateways (\(sensors) sensors at \(rate) Hz each, real edge-agent processes)
              dashboard   \(url)/#token=\(operatorToken)
              query API   curl -H 'Authorization: Bearer \(operatorToken)' \(url)/v1/devices
              metrics     \(url)/metrics
              files       \(directory)  (agent logs: demo-gw-N.log)
            Ctrl-C stops everything.
            """)

        let startedAt = ContinuousClock.now
        let interactive = isatty(STDERR_FILENO) == 1
        let progress = Task { [service] in
            var lastCount = 0
            var lastTime = ContinuousClock.now
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let stored = service.metrics.readingsAccepted.load(ordering: .relaxed)
                let duplicates = service.metrics.readingsDuplicate.load(ordering: .relaxed)
                let now = ContinuousClock.now
                let seconds =
                    Double((now - lastTime).components.attoseconds) / 1e18 + Double((now - lastTime).components.seconds)
                let rate = seconds > 0 ? Double(stored - lastCount) / seconds : 0
                (lastCount, lastTime) = (stored, now)
                let alive = gatewayProcesses.running
                let line =
                    "stored \(ProgressLine.grouped(Int64(stored))) readings (\(ProgressLine.compact(rate))/s), duplicates \(duplicates), gateways running \(alive)/\(gateways), up \(ProgressLine.duration(Double((now - startedAt).components.seconds)))"
                if interactive { standardError("\r\u{1B}[2K" + line) } else { standardError(line + "\n") }
            }
        }

        var waiting = signals.makeAsyncIterator()
        _ = await waiting.next()
        progress.cancel()
        if interactive { standardError("\n") }
        standardError("demo: stopping the gateways… (Ctrl-C again to quit at once)\n")
        // A second signal while stopping quits at once (the gateways' spools are durable anyway).
        let impatient = Task {
            if await waiting.next() != nil { exit(130) }
        }
        await cleanUp(keep: parsed.isSet("--keep"))
        impatient.cancel()
        let stored = service.metrics.readingsAccepted.load(ordering: .relaxed)
        print(
            "demo: stopped. The collector stored \(ProgressLine.grouped(Int64(stored))) readings from \(gateways) gateways."
        )
        if parsed.isSet("--keep") { print("demo: files kept in \(directory)") }
        return .success
    }

    static func start(_ configuration: CollectorService.Configuration) async throws -> (
        service: CollectorService, serving: Task<Void, any Error>, address: String
    ) {
        let service = try CollectorService(configuration: configuration, logger: .discard)
        let serving = Task { try await service.run() }
        do {
            return (service, serving, "\(try await service.localAddress)")
        } catch {
            _ = try? await serving.value
            throw error
        }
    }

    /// The gateway processes, read by the progress task (Process is thread-safe for these reads).
    final class Processes: @unchecked Sendable {
        let all: [Process]
        init(all: [Process]) { self.all = all }
        var running: Int { all.filter(\.isRunning).count }
    }

    /// A program built beside this one (`swift build` puts all products in one folder).
    static func siblingExecutable(_ name: String) -> URL? {
        let own = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates =
            [own.deletingLastPathComponent().appendingPathComponent(name)]
            + (Bundle.main.executableURL.map { [$0.deletingLastPathComponent().appendingPathComponent(name)] } ?? [])
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    static func temporaryDirectory() throws -> String {
        var template = Array((NSTemporaryDirectory() + "edge-sync-demo-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw UsageError("cannot create a temporary directory") }
        return String(cString: made)
    }

    static func randomHex(_ bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
