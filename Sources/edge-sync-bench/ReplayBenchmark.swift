import EdgeAgent
import EdgeSyncCodec
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation

/// Issue 6's replay: a spool holding a large backlog of real readings drains through the real
/// `edge-agent drain` into the real `cloud-collector` on loopback.
enum ReplayBenchmark: BenchmarkScenario {
    static let name = "replay"
    static let summary =
        "offline backlog: edge-agent drain of 10 M real readings into cloud-collector (readings/s, RSS)"

    static func run(_ options: BenchmarkOptions) async throws {
        let readings = SpoolBenchmark.intOption(options, "--readings") ?? 10_000_000
        let (agent, collector) = try pairBinaries()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spoolDirectory = directory + "/spool"
        let collectorDirectory = directory + "/collector"

        let datasets = try RealDataset.loadAll(from: options.dataDirectory)
        print("replay: building a spool of \(readings) real readings (not timed) …")
        try await fillSpool(spoolDirectory, datasets: datasets, readings: readings)
        let spoolBytes = SQLiteDatabase.fileSizes(ofDatabaseAt: Spool.databasePath(in: spoolDirectory)).total

        let token = try runToCompletion(collector, ["token", "add", "--data-dir", collectorDirectory, "bench-gateway"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: collector)
        server.arguments = ["serve", "--listen", "127.0.0.1:0", "--data-dir", collectorDirectory]
        let serverErrors = Pipe()
        server.standardError = serverErrors
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        let port = try listeningPort(serverErrors.fileHandleForReading)

        print("replay: draining through http://127.0.0.1:\(port) …\n")
        let start = ContinuousClock.now
        let drain = try spawnAndWait(
            agent,
            ["drain", "--data-dir", spoolDirectory, "--collector", "http://127.0.0.1:\(port)", "--token", token])
        let elapsed = SpoolBenchmark.seconds(ContinuousClock.now - start)
        guard drain.status == 0 else { throw BenchmarkError("edge-agent drain exited with status \(drain.status)") }
        let collectorRSS = peakResidentMegabytes(pid: server.processIdentifier)
        server.terminate()
        server.waitUntilExit()

        let wireBytes =
            drain.stdout.split(separator: "\n").first { $0.hasPrefix("bytes on the wire:") }
            .flatMap { $0.split(separator: " ").dropFirst(4).first }.flatMap { Double($0) } ?? .nan
        let stored = try storedCount(collectorDirectory)
        var table = TextTable(
            "backlog readings", "stored", "seconds", "readings/s", "wire B/reading", "spool B/reading", "edge peak RSS",
            "collector peak RSS")
        table.append(
            String(readings), String(stored), SpoolBenchmark.format(elapsed, 2),
            SpoolBenchmark.grouped(Double(readings) / elapsed), SpoolBenchmark.format(wireBytes / Double(readings), 3),
            SpoolBenchmark.format(Double(spoolBytes) / Double(readings), 3),
            SpoolBenchmark.format(drain.peakMegabytes, 1) + " MB", SpoolBenchmark.format(collectorRSS, 1) + " MB")
        print(table.render())
        print(
            "\ntargets: ≥ 1,000,000 readings/s, ≤ 2 bytes on the wire per reading, edge RSS ≤ 64 MB (1 MB = 2^20 bytes)"
        )
        guard stored == readings else { throw BenchmarkError("the collector stored \(stored) of \(readings) readings") }
    }

    /// `edge-agent` and `cloud-collector` beside this benchmark's executable.
    static func pairBinaries() throws -> (agent: String, collector: String) {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let agent = products.appendingPathComponent("edge-agent").path
        let collector = products.appendingPathComponent("cloud-collector").path
        for binary in [agent, collector] where !FileManager.default.isExecutableFile(atPath: binary) {
            throw BenchmarkError("\(binary) is missing: build everything first (swift build -c release)")
        }
        return (agent, collector)
    }

    /// Appends the real datasets, cycled and moved a year forward per pass, in large writes.
    static func fillSpool(_ directory: String, datasets: [RealDataset], readings: Int) async throws {
        var configuration = Spool.Configuration(dataDirectory: directory, device: "bench-gateway")
        configuration.fsync = .normal
        let spool = try await Spool.open(configuration)
        var keys: [String] = []
        var all: [Reading] = []
        for dataset in datasets {
            let offset = keys.count
            keys += dataset.seriesKeys
            all += dataset.readings.map {
                Reading(series: $0.series + offset, timestamp: $0.timestamp, value: $0.value)
            }
        }
        var written = 0
        while written < readings {
            let count = min(65_536, readings - written)
            var write: [Reading] = []
            write.reserveCapacity(count)
            for index in written..<written + count {
                let reading = all[index % all.count]
                let pass = Int64(index / all.count)
                write.append(
                    Reading(
                        series: reading.series, timestamp: reading.timestamp + pass * 365 * 86_400_000_000_000,
                        value: reading.value))
            }
            _ = try await spool.append(seriesKeys: keys, readings: write)
            written += count
        }
        try await spool.checkpoint()
    }

    struct Spawned {
        var status: Int32
        var stdout: String
        var peakMegabytes: Double
        /// User + system CPU time of the child.
        var cpuSeconds: Double = 0
        /// Bytes the child caused to be written to storage (`ru_oublock`, 512-byte units, which Linux
        /// takes from the same accounting as `/proc/PID/io` `write_bytes`).
        var writeBytes: Int64 = 0
    }

    /// Runs a child to completion with posix_spawn and wait4, for its peak RSS (Process reaps
    /// its children itself, so their rusage is lost).
    static func spawnAndWait(_ path: String, _ arguments: [String]) throws -> Spawned {
        var output: [Int32] = [0, 0]
        guard pipe(&output) == 0 else { throw BenchmarkError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, output[1], STDOUT_FILENO)
        posix_spawn_file_actions_addclose(&actions, output[0])
        var cArguments = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, path, &actions, nil, &cArguments, environ) == 0 else {
            throw BenchmarkError("cannot start \(path)")
        }
        close(output[1])
        let text = FileHandle(fileDescriptor: output[0], closeOnDealloc: true).readDataToEndOfFile()
        var status: Int32 = 0
        var usage = rusage()
        guard wait4(pid, &status, 0, &usage) == pid else { throw BenchmarkError("wait4 failed for \(path)") }
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Spawned(
            status: exit, stdout: String(decoding: text, as: UTF8.self), peakMegabytes: Double(usage.ru_maxrss) / 1024,
            cpuSeconds: Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6,
            writeBytes: Int64(usage.ru_oublock) * 512)
    }

    static func runToCompletion(_ path: String, _ arguments: [String]) throws -> String {
        let spawned = try spawnAndWait(path, arguments)
        guard spawned.status == 0 else {
            throw BenchmarkError("\(path) \(arguments.first ?? "") failed: \(spawned.status)")
        }
        return spawned.stdout
    }

    /// Reads the collector's log until it names its port.
    static func listeningPort(_ handle: FileHandle) throws -> Int {
        var text = ""
        while true {
            let data = handle.availableData
            guard !data.isEmpty else { throw BenchmarkError("cloud-collector exited before listening: \(text)") }
            text += String(decoding: data, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.contains("event=listening") }),
                let address = line.split(separator: " ").first(where: { $0.hasPrefix("address=") }),
                let port = address.split(separator: ":").last.flatMap({ Int($0) })
            {
                return port
            }
        }
    }

    /// VmHWM of a running process, in MB.
    static func peakResidentMegabytes(pid: Int32) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        else { return .nan }
        return kilobytes / 1024
    }

    static func storedCount(_ directory: String) throws -> Int {
        var configuration = SQLiteDatabase.Configuration()
        configuration.isReadOnly = true
        let database = try SQLiteDatabase(path: directory + "/collector.sqlite", configuration: configuration)
        let count = try database.prepare("SELECT count(*) FROM readings")
        _ = try count.step()
        return Int(count.int64(at: 0))
    }
}
