import EdgeSyncTestSupport
import Foundation

/// Issue 17's flash-wear count: the real `edge-agent run` takes sequential HTTP writes of real line
/// protocol and uploads them to the real `cloud-collector`, under `strace -f -c` counting its
/// `fsync` and `fdatasync` calls; `/proc/PID/io` `write_bytes` gives what it wrote to disk. Both are
/// taken from before the first write until the collector has stored every reading and the spool is
/// empty again, so they cover a reading's whole life at the edge (enqueue, upload, deletion).
enum SyncsBenchmark: BenchmarkScenario {
    static let name = "syncs"
    static let summary =
        "edge-agent under strace: fsync+fdatasync per acknowledged HTTP write, bytes written per reading"

    struct Result {
        var syncs: Int
        var writeBytes: Int64
        var seconds: Double
    }

    static func run(_ options: BenchmarkOptions) async throws {
        let writes = SpoolBenchmark.intOption(options, "--writes") ?? 200
        let builds = try LifecycleBenchmark.builds(options)
        guard let strace = BenchmarkProcess.executable("strace") else {
            throw BenchmarkError("the syncs benchmark needs strace (apt-get install -y strace)")
        }
        let lines = InputsBenchmark.lineProtocol(try RealDataset.loadAll(from: options.dataDirectory))
        print("syncs: \(writes) sequential POST /write per row, real line protocol, one keep-alive connection\n")

        var table = TextTable(
            "build", "fsync", "lines/write", "writes (all 204)", "fsync+fdatasync", "syncs/write", "bytes written/reading",
            "bytes written/write", "seconds")
        for policy in ["full", "normal"] {
            for linesPerWrite in [1, 100, 5_000] {
                for build in builds {
                    let result = try await measure(
                        agent: build.agent, collector: build.collector, strace: strace, policy: policy, lines: lines,
                        writes: writes, linesPerWrite: linesPerWrite)
                    let readings = Double(writes * linesPerWrite)
                    table.append(
                        build.label, policy, String(linesPerWrite), String(writes), String(result.syncs),
                        SpoolBenchmark.format(Double(result.syncs) / Double(writes), 2),
                        SpoolBenchmark.format(Double(result.writeBytes) / readings, 1),
                        SpoolBenchmark.grouped(Double(result.writeBytes) / Double(writes)),
                        SpoolBenchmark.format(result.seconds, 1))
                }
            }
        }
        print(table.render())
        print(
            "\nsyncs and write_bytes of the edge-agent process (all threads) from the first write until the "
                + "collector stored every reading and the spool was empty; target for fsync full: 1 sync per group commit"
        )
    }

    static func measure(
        agent: String, collector: String, strace: String, policy: String, lines: [String], writes: Int,
        linesPerWrite: Int
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("syncs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let token = try ReplayBenchmark.runToCompletion(
            collector, ["token", "add", "--data-dir", directory + "/collector", "bench-gateway"]
        ).trimmingCharacters(in: .whitespacesAndNewlines)

        let server = try start(
            collector, ["serve", "--listen", "127.0.0.1:0", "--data-dir", directory + "/collector"],
            log: directory + "/collector.log")
        defer { stop(server) }
        let collectorPort = try port(inLog: directory + "/collector.log")
        let edge = try start(
            agent,
            [
                "run", "--data-dir", directory + "/spool", "--device", "bench-gateway", "--collector",
                "http://127.0.0.1:\(collectorPort)", "--token", token, "--fsync", policy, "--listen", "127.0.0.1:0",
                // The writes cycle through the data: repeats are new readings here, not retries.
                "--retry-window", "0",
            ], log: directory + "/agent.log")
        defer { stop(edge) }
        let agentPort = try port(inLog: directory + "/agent.log")

        let tracer = try spawnUnblocked(
            strace,
            [
                "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", directory + "/strace.txt", "-p",
                String(edge.processIdentifier),
            ], log: directory + "/strace.log")
        var isTracing = true
        defer {
            if isTracing {
                kill(tracer, SIGKILL)
                waitpid(tracer, nil, 0)
            }
        }
        try waitFor("strace to attach", seconds: 10) {
            ((try? String(contentsOfFile: directory + "/strace.log", encoding: .utf8)) ?? "").contains("attached")
        }

        let before = try writeBytes(edge.processIdentifier)
        let start = ContinuousClock.now
        let client = BlockingHTTPClient(port: agentPort, timeoutSeconds: 30)
        for index in 0..<writes {
            let first = (index * linesPerWrite) % max(1, lines.count - linesPerWrite)
            let body = lines[first..<first + linesPerWrite].joined(separator: "\n")
            let response = try client.post("/write?db=bench", body: Array(body.utf8))
            guard response.status == 204 else {
                throw BenchmarkError("write \(index) answered \(response.status): \(response.text)")
            }
        }
        let expected = writes * linesPerWrite
        try waitFor("the collector to store \(expected) readings and the spool to empty", seconds: 120) {
            guard (try? ReplayBenchmark.storedCount(directory + "/collector")) == expected,
                let metrics = try? client.send(method: "GET", path: "/metrics").text
            else { return false }
            return metrics.split(separator: "\n").contains("edge_agent_spool_queued_readings 0")
        }
        let elapsed = SpoolBenchmark.seconds(ContinuousClock.now - start)
        let after = try writeBytes(edge.processIdentifier)
        client.close()
        // SIGINT makes strace detach and write its summary.
        kill(tracer, SIGINT)
        var status: Int32 = 0
        guard waitpid(tracer, &status, 0) == tracer else { throw BenchmarkError("waitpid failed for strace") }
        isTracing = false
        let summary = try String(contentsOfFile: directory + "/strace.txt", encoding: .utf8)
        return Result(
            syncs: calls(in: summary, of: ["fsync", "fdatasync"]), writeBytes: after - before, seconds: elapsed)
    }

    static func start(_ executable: String, _ arguments: [String], log: String) throws -> Process {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: log)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        return process
    }

    /// Starts `executable` with no signal blocked or ignored: a child of `Process` inherits the
    /// benchmark's blocked SIGINT, and strace then never sees the signal that makes it detach.
    private static func spawnUnblocked(_ executable: String, _ arguments: [String], log: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var cArguments = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, executable, &actions, &attributes, &cArguments, environ) == 0 else {
            throw BenchmarkError("cannot start \(executable)")
        }
        return pid
    }

    static func stop(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    /// The port of the first `event=listening … address=HOST:PORT` line in a log being written.
    static func port(inLog path: String) throws -> Int {
        var found: Int?
        try waitFor("a listening line in \(path)", seconds: 30) {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            found = text.split(separator: "\n").first { $0.contains("event=listening") }
                .flatMap { $0.split(separator: " ").first { $0.hasPrefix("address=") } }
                .flatMap { $0.split(separator: ":").last.flatMap { Int($0) } }
            return found != nil
        }
        return found ?? 0
    }

    /// Polls `condition` every 20 ms: the processes measured are external, nothing to await.
    private static func waitFor(_ what: String, seconds: Double, _ condition: () -> Bool) throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !condition() {
            guard ContinuousClock.now < deadline else { throw BenchmarkError("timed out waiting for \(what)") }
            usleep(20_000)
        }
    }

    /// `write_bytes` of `/proc/PID/io`: bytes the process caused to be sent to the storage layer.
    private static func writeBytes(_ pid: Int32) throws -> Int64 {
        let text = try String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("write_bytes:") }),
            let value = line.split(separator: " ").last.flatMap({ Int64($0) })
        else { throw BenchmarkError("no write_bytes in /proc/\(pid)/io") }
        return value
    }

    /// The `calls` column of `strace -c` rows for `names`.
    static func calls(in summary: String, of names: Set<String>) -> Int {
        summary.split(separator: "\n").reduce(0) { total, line in
            let fields = line.split(separator: " ")
            guard let name = fields.last, names.contains(String(name)), fields.count >= 5, let calls = Int(fields[3])
            else { return total }
            return total + calls
        }
    }
}
