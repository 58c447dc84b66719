import EdgeSyncCodec
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Synchronization

/// How long, with which seed and how many gateways the soak runs (from the environment).
struct SoakConfiguration: Sendable {
    var seconds: Int
    var seed: UInt64
    var gatewayCount: Int

    /// `EDGE_SYNC_SOAK_SECONDS` (default 100), `EDGE_SYNC_SOAK_SEED` (default: drawn and printed),
    /// `EDGE_SYNC_SOAK_GATEWAYS` (default 4, at least 4: one per fault that needs a gateway of its own).
    static func fromEnvironment() -> SoakConfiguration {
        let environment = ProcessInfo.processInfo.environment
        return SoakConfiguration(
            seconds: environment["EDGE_SYNC_SOAK_SECONDS"].flatMap { Int($0) }.map { max(20, $0) } ?? 100,
            seed: environment["EDGE_SYNC_SOAK_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...999_999_999),
            gatewayCount: max(4, environment["EDGE_SYNC_SOAK_GATEWAYS"].flatMap { Int($0) } ?? 4))
    }
}

/// What a gateway is there to suffer, besides the SIGKILLs and network faults every gateway gets.
enum GatewayRole: String, Sendable {
    case plain
    /// A 256 KiB spool with `drop-oldest` and a 1 KB/s upload cap, so it overflows and drops.
    case dropOldest = "drop-oldest"
    /// Its spool on a small private tmpfs that the soak fills to the last byte now and then.
    case diskFull = "disk full"
    /// Its spool file gets corrupted once while the agent is down.
    case corruptible = "corrupted spool"
}

/// Faults the soak injects itself (the proxy counts its own).
enum SoakFault: String, CaseIterable, Sendable {
    case killAgent = "SIGKILL + restart edge-agent"
    case killCollector = "SIGKILL + restart collector"
    case diskFull = "disk full on the tmpfs gateway"
    case corruptSpool = "corrupted spool at restart"
    case slowloris = "slowloris (slowhttptest)"
    case hostileBurst = "hostile request bursts"
}

/// One simulated gateway: a spool, an `edge-agent run` and its producer.
final class SoakGateway {
    let index: Int
    let device: String
    let role: GatewayRole
    let spoolDirectory: String
    let configPath: String
    let token: String
    var port = 0
    var agent: ChildProcess?
    var producer: SoakProducer?
    /// For the corruptible gateway: the first reading index produced after the corrupted restart.
    var corruptionBoundary: Int?
    var corruptionOutcome: String?
    var drainStatus: Int32?
    var drainOutput = ""
    var stopStatus: Int32?
    var agentStatusJSON: [String: Any] = [:]

    var processRole: String { "edge-agent \(device)" }

    init(index: Int, device: String, role: GatewayRole, spoolDirectory: String, configPath: String, token: String) {
        self.index = index
        self.device = device
        self.role = role
        self.spoolDirectory = spoolDirectory
        self.configPath = configPath
        self.token = token
    }
}

/// Whether the proxy injects faults (off for the final drain), shared with its chooser.
final class ProxyFaultSwitch: Sendable {
    let isOn = Mutex(true)
}

struct SoakFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The whole soak: a collector behind a fault proxy, several gateways fed by producers through
/// their agents' HTTP inputs, faults injected at seeded random times until the deadline, then a
/// clean drain and an exact comparison of what was acknowledged with what the collector holds.
final class SoakRun {
    let configuration: SoakConfiguration
    let directory: String
    private var random: SeededRandom
    private let watch = SoakProcessWatch()
    private var gateways: [SoakGateway] = []
    private var collector: CollectorUnderTest?
    private var proxy: FaultProxy?
    private let proxyFaults = ProxyFaultSwitch()
    private var mountPoint: String?
    private var fillerPath: String? { mountPoint.map { $0 + "/filler" } }
    private var slowloris: ChildProcess?
    private var faults: [SoakFault: Int] = [:]
    /// Disk-full faults during which the spool went on taking writes (no 503 within 15 s).
    private var diskFullsWithoutRefusal = 0
    private var notes: [String] = []
    private var failures: [String] = []
    private var hostile: [String: [String: Int]] = [:]
    private var hostileClient: HostileClient?
    private let started = ContinuousClock.now

    private var collectorDirectory: String { directory + "/collector" }

    init(configuration: SoakConfiguration, directory: String) {
        self.configuration = configuration
        self.directory = directory
        random = SeededRandom(seed: configuration.seed)
    }

    /// Runs the soak and returns its report; every process, thread and mount it made is gone when
    /// this returns or throws.
    func run() async throws -> SoakReport {
        let sampler = Task { [watch] in
            while !Task.isCancelled {
                watch.sample()
                try? await Task.sleep(for: .seconds(1))
            }
        }
        do {
            let report = try await runPhases()
            sampler.cancel()
            await cleanUp()
            return report
        } catch {
            sampler.cancel()
            await cleanUp()
            throw error
        }
    }

    private func log(_ text: String) {
        let elapsed = Int(SoakProducer.seconds(ContinuousClock.now - started))
        print("soak [\(elapsed)s] \(text)")
    }

    // MARK: Phases

    private func runPhases() async throws -> SoakReport {
        let source = try SoakReadingSource.load()
        try await setUp(source: source)
        log("running \(configuration.seconds)s with \(gateways.count) gateways, seed \(configuration.seed)")
        try await injectFaultsUntilDeadline()
        log("deadline reached: stopping faults and producers")
        try await finish()
        return try verify(source: source)
    }

    private func setUp(source: SoakReadingSource) async throws {
        try FileManager.default.createDirectory(atPath: collectorDirectory, withIntermediateDirectories: true)
        let roles: [GatewayRole] = [.plain, .dropOldest, .diskFull, .corruptible]
        if getuid() == 0 {
            let path = directory + "/tmpfs"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let mounted = try await runTool("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=48m", "tmpfs", path])
            if mounted.status == 0 {
                mountPoint = path
            } else {
                notes.append("disk-full fault skipped: mount -t tmpfs failed: \(mounted.stderr)")
            }
        } else {
            notes.append("disk-full fault skipped: not running as root (a tmpfs mount needs root)")
        }
        for index in 1...configuration.gatewayCount {
            let device = "gw-\(index)"
            let role = index <= roles.count ? roles[index - 1] : .plain
            let token = try await CollectorUnderTest.addToken(dataDirectory: collectorDirectory, device: device)
            let spoolDirectory =
                role == .diskFull && mountPoint != nil ? mountPoint! + "/spool" : directory + "/spool-\(device)"
            let configPath = directory + "/agent-\(device).json"
            try Self.agentConfig(role).write(toFile: configPath, atomically: false, encoding: .utf8)
            gateways.append(
                SoakGateway(
                    index: index, device: device, role: role, spoolDirectory: spoolDirectory, configPath: configPath,
                    token: token))
        }
        let fuzzToken = try await CollectorUnderTest.addToken(dataDirectory: collectorDirectory, device: "fuzz-gw")
        let otherToken = try await CollectorUnderTest.addToken(dataDirectory: collectorDirectory, device: "other-gw")

        let collector = try await CollectorUnderTest.start(dataDirectory: collectorDirectory)
        self.collector = collector
        watch.register("collector", collector.process)
        let validFrames = try (0..<8).map { number in
            try BatchEncoder().encode(
                Batch(
                    device: "fuzz-gw", stream: 77, firstSequence: UInt64(number * 50 + 1),
                    seriesKeys: ["fuzz value", "fuzz other"],
                    readings: (0..<50).map {
                        Reading(
                            series: $0 % 2, timestamp: Int64(1_700_000_000_000_000_000 + $0), value: Double($0) / 10)
                    }))
        }
        hostileClient = HostileClient(
            port: collector.port, fuzzDeviceToken: fuzzToken, otherDeviceToken: otherToken, validFrames: validFrames)

        let faultRandom = Mutex(SeededRandom(seed: configuration.seed ^ 0xFA17))
        let faultsOn = proxyFaults
        let proxy = try FaultProxy(upstreamPort: collector.port, stallDuration: .seconds(3)) { _ in
            guard faultsOn.isOn.withLock({ $0 }) else { return .none }
            let roll = faultRandom.withLock { Int.random(in: 0..<100, using: &$0) }
            switch roll {
            case 0..<3: return .resetBeforeForwarding
            case 3..<5: return .stall
            case 5..<8: return .internalServerError
            case 8..<11: return .serviceUnavailable
            case 11..<14: return .tooManyRequests
            case 14..<19: return .loseAnswer
            default: return .none
            }
        }
        self.proxy = proxy

        for gateway in gateways {
            try await startAgent(gateway)
            let rate: Double = gateway.role == .dropOldest ? 2000 : 800
            let producer = SoakProducer(
                gateway: gateway.index, port: gateway.port, input: gateway.role == .dropOldest ? .json : .lineProtocol,
                source: source, readingsPerSecond: rate,
                // The drop-oldest bound is exact while one write holds at most max_bytes / 192 readings.
                maximumPerRequest: gateway.role == .dropOldest ? 1000 : 400,
                seed: configuration.seed &+ UInt64(gateway.index))
            gateway.producer = producer
            producer.start()
        }
    }

    static func agentConfig(_ role: GatewayRole) -> String {
        switch role {
        case .dropOldest:
            // A 1 KB/s cap under a producer of several KB/s of compressed readings: the spool overflows.
            """
            {"collector": {"request_timeout_seconds": 30, "connect_timeout_seconds": 1},
             "spool": {"max_bytes": 262144, "when_full": "drop-oldest"},
             "upload": {"batch_readings": 500, "replay_batch_readings": 500, "linger_ms": 50, "backoff_initial_ms": 50, "backoff_max_seconds": 2,
                        "max_send_bytes_per_second": 1024}}
            """
        case .diskFull:
            // A 1 MiB cap keeps the WAL truncated back after each checkpoint (Docs/edge-agent.md), so
            // on a full disk it must grow and hits ENOSPC within seconds; without a cap SQLite reuses
            // its WAL and free pages and a full disk may go unnoticed for minutes.
            """
            {"collector": {"request_timeout_seconds": 2, "connect_timeout_seconds": 1},
             "spool": {"max_bytes": 1048576},
             "upload": {"batch_readings": 2000, "replay_batch_readings": 2000, "linger_ms": 50, "backoff_initial_ms": 50, "backoff_max_seconds": 2}}
            """
        default:
            """
            {"collector": {"request_timeout_seconds": 2, "connect_timeout_seconds": 1},
             "upload": {"batch_readings": 2000, "replay_batch_readings": 2000, "linger_ms": 50, "backoff_initial_ms": 50, "backoff_max_seconds": 2}}
            """
        }
    }

    static let drainConfig = """
        {"collector": {"request_timeout_seconds": 30, "connect_timeout_seconds": 2},
         "upload": {"batch_readings": 10000, "linger_ms": 20, "backoff_initial_ms": 50, "backoff_max_seconds": 1}}
        """

    /// Starts `gateway`'s agent (on its input port once it has one) and waits for `event=started`.
    /// Returns nil when started, or what the agent said when it exited instead.
    @discardableResult
    private func startAgent(_ gateway: SoakGateway) async throws -> String? {
        guard let proxy else { throw SoakFailure("no proxy") }
        let process = try ChildProcess(
            try ChildProcess.productURL("edge-agent"),
            [
                "run", "--config", gateway.configPath, "--data-dir", gateway.spoolDirectory, "--device", gateway.device,
                "--collector", "http://127.0.0.1:\(proxy.port)", "--listen", "127.0.0.1:\(gateway.port)",
            ], environment: ["EDGE_AGENT_TOKEN": gateway.token], name: gateway.device)
        gateway.agent = process
        watch.register(gateway.processRole, process)
        let outcome = try await eventually(within: .seconds(60)) { () -> String? in
            if process.stderrLines.contains(where: { $0.contains("event=started") }) { return "started" }
            if let status = process.exitStatus { return "exited \(status)" }
            return nil
        }
        guard let outcome else {
            throw SoakFailure(
                "\(gateway.device): edge-agent did not start within 60 s: \(process.stderrLines.suffix(5))")
        }
        if outcome != "started" {
            watch.expectExit(gateway.processRole)
            return "\(outcome): " + process.stderrLines.suffix(3).joined(separator: " | ")
        }
        if gateway.port == 0 {
            let line = process.stderrLines.first { $0.contains("event=listening input=http") } ?? ""
            guard let address = line.split(separator: " ").first(where: { $0.hasPrefix("address=") }),
                let port = address.split(separator: ":").last.flatMap({ Int($0) })
            else { throw SoakFailure("\(gateway.device): no input port in \"\(line)\"") }
            gateway.port = port
        }
        return nil
    }

    private func killAgent(_ gateway: SoakGateway) async {
        guard let agent = gateway.agent else { return }
        watch.expectExit(gateway.processRole)
        agent.kill(SIGKILL)
        _ = await agent.waitForExit()
    }

    // MARK: Faults

    private func injectFaultsUntilDeadline() async throws {
        let deadline = started + .seconds(configuration.seconds)
        let corruptAt = started + .seconds(Double(configuration.seconds) * Double.random(in: 0.3...0.5, using: &random))
        let slowlorisAt =
            started + .seconds(Double(configuration.seconds) * Double.random(in: 0.55...0.7, using: &random))
        var isCorrupted = false
        var isSlowlorisDone = false
        var lastProgress = ContinuousClock.now
        while ContinuousClock.now < deadline {
            // Random fault timing from the seeded generator: a pause of 1-4 s between faults.
            try await Task.sleep(for: .milliseconds(Int.random(in: 1000...4000, using: &random)))
            if ContinuousClock.now >= deadline { break }
            if !isCorrupted, ContinuousClock.now >= corruptAt {
                isCorrupted = true
                try await corruptSpool()
            } else if !isSlowlorisDone, ContinuousClock.now >= slowlorisAt {
                isSlowlorisDone = true
                try await runSlowloris()
            } else {
                let roll = Int.random(in: 0..<100, using: &random)
                switch roll {
                case 0..<35:
                    let gateway = gateways[Int.random(in: 0..<gateways.count, using: &random)]
                    try await restartAgent(gateway)
                case 35..<50: try await restartCollector()
                case 50..<60 where mountPoint != nil: try await fillDisk()
                default: try await hostileBurst()
                }
            }
            let failuresSoFar = watch.unexpectedExits
            if !failuresSoFar.isEmpty {
                failures += failuresSoFar.filter { !failures.contains($0) }
            }
            if ContinuousClock.now - lastProgress > .seconds(60) {
                lastProgress = ContinuousClock.now
                let acked = gateways.map { $0.producer?.snapshot.acknowledgedCount ?? 0 }
                log(
                    "progress: acknowledged \(acked), faults \(faults.map { "\($0.key.rawValue)=\($0.value)" }.sorted())"
                )
            }
        }
    }

    private func restartAgent(_ gateway: SoakGateway) async throws {
        faults[.killAgent, default: 0] += 1
        await killAgent(gateway)
        if let refused = try await startAgent(gateway) {
            failures.append("\(gateway.device): edge-agent refused to restart after SIGKILL: \(refused)")
            throw SoakFailure(failures.last!)
        }
    }

    private func restartCollector() async throws {
        guard let old = collector else { return }
        faults[.killCollector, default: 0] += 1
        watch.expectExit("collector")
        old.process.kill(SIGKILL)
        _ = await old.process.waitForExit()
        let restarted = try await CollectorUnderTest.start(dataDirectory: collectorDirectory, port: old.port)
        collector = restarted
        watch.register("collector", restarted.process)
    }

    /// Fills the tmpfs holding one gateway's spool until ENOSPC (again and again), until its producer
    /// is refused (503) or 15 s pass, frees the space and waits until a write is acknowledged again.
    private func fillDisk() async throws {
        guard let fillerPath, let gateway = gateways.first(where: { $0.role == .diskFull }),
            let producer = gateway.producer
        else { return }
        faults[.diskFull, default: 0] += 1
        let refusedBefore = producer.outcomeCount("503")
        // Filled once, the disk would get room back whenever SQLite truncates its WAL or the spool
        // hands pages back: keep taking every freed block until the producer is refused.
        let refused = try await eventually(within: .seconds(15)) {
            Self.takeAllSpace(fillerPath)
            return producer.outcomeCount("503") > refusedBefore ? true : nil
        }
        if refused == nil { diskFullsWithoutRefusal += 1 }
        try FileManager.default.removeItem(atPath: fillerPath)
        let acceptedBefore = producer.outcomeCount("204")
        let recovered = try await eventually(within: .seconds(30)) {
            producer.outcomeCount("204") > acceptedBefore ? true : nil
        }
        if recovered == nil {
            failures.append("\(gateway.device): no write was accepted within 30 s after disk space returned")
        }
    }

    /// How many file descriptors `pid` has open (its connections among them).
    private static func openDescriptors(pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }

    /// Appends zeros to `path` until the file system refuses (ENOSPC).
    private static func takeAllSpace(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        for blockSize in [1 << 20, 4096] {
            let zeros = [UInt8](repeating: 0, count: blockSize)
            while zeros.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        }
    }

    /// SIGKILLs the corruptible gateway's agent, damages its spool file, runs `spool check`, and
    /// restarts the agent: it must detect the damage and recover (file moved aside, new stream) or
    /// refuse clearly.
    private func corruptSpool() async throws {
        guard let gateway = gateways.first(where: { $0.role == .corruptible }) else { return }
        faults[.corruptSpool, default: 0] += 1
        let requestsBefore = gateway.producer?.requestCount ?? 0
        await killAgent(gateway)
        // Every answer the old spool gave must be in the ledger before the boundary is taken: wait
        // until the request in flight at the kill and one more have been recorded (both failed).
        if let producer = gateway.producer {
            _ = try await eventually(within: .seconds(15)) {
                producer.requestCount >= requestsBefore + 2 ? true : nil
            }
        }
        gateway.corruptionBoundary = gateway.producer?.nextIndex
        let file = gateway.spoolDirectory + "/spool.sqlite"
        let mode = ["header", "pages", "truncate"][Int.random(in: 0..<3, using: &random)]
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: file))
        let size = try handle.seekToEnd()
        switch mode {
        case "header":
            // The first 100 bytes: magic string, page size, file format numbers.
            try handle.seek(toOffset: 0)
            try handle.write(contentsOf: Data((0..<100).map { _ in UInt8.random(in: 0...255, using: &random) }))
        case "pages":
            let pages = max(2, Int(size / 4096))
            for _ in 0..<3 {
                let page = Int.random(in: 1..<pages, using: &random)
                try handle.seek(toOffset: UInt64(page * 4096 + Int.random(in: 0..<3000, using: &random)))
                try handle.write(contentsOf: Data((0..<512).map { _ in UInt8.random(in: 0...255, using: &random) }))
            }
        default:
            try handle.truncate(atOffset: size / 2)
        }
        try handle.synchronize()
        try handle.close()
        let walBytes = (try? FileManager.default.attributesOfItem(atPath: file + "-wal")[.size] as? Int) ?? 0
        let check = try await runTool(
            try ChildProcess.productURL("edge-agent").path, ["spool", "check", "--data-dir", gateway.spoolDirectory])
        let checkSummary =
            "spool check exit \(check.status): "
            + (check.stdout + check.stderr).split(separator: "\n").prefix(2).joined(separator: " / ")
        var outcome: String
        if let refused = try await startAgent(gateway) {
            // Refused clearly: do what an operator would, move the file aside, and start again.
            outcome = "agent refused to start (\(refused)); moved aside by hand"
            for suffix in ["", "-wal", "-shm"] {
                try? FileManager.default.moveItem(atPath: file + suffix, toPath: file + ".soak-aside" + suffix)
            }
            if let again = try await startAgent(gateway) {
                failures.append("\(gateway.device): agent does not start even on a fresh spool: \(again)")
                throw SoakFailure(failures.last!)
            }
        } else if let line = gateway.agent?.stderrLines.first(where: { $0.contains("is damaged") }) {
            outcome = "detected at open, moved aside, new stream: \(line.prefix(600))"
        } else {
            outcome = "not detected at open (the damage was healed by the WAL or hit unused space)"
        }
        let aside = (try? FileManager.default.contentsOfDirectory(atPath: gateway.spoolDirectory))?.filter {
            $0.contains(".damaged-") || $0.contains(".soak-aside")
        }
        gateway.corruptionOutcome =
            "mode \(mode) (\(size) bytes, WAL \(walBytes) bytes); \(checkSummary); \(outcome); files aside: \(aside ?? [])"
        gateway.corruptionOutcome = gateway.corruptionOutcome?.replacingOccurrences(of: directory, with: "<soak>")
        log("corrupted \(gateway.device): \(gateway.corruptionOutcome!)")
    }

    /// A burst of hostile requests straight at the collector; afterwards the collector must still
    /// answer `/healthz`.
    private func hostileBurst() async throws {
        guard let client = hostileClient, collector != nil else { return }
        faults[.hostileBurst, default: 0] += 1
        var kinds: [HostileKind] = []
        for _ in 0..<Int.random(in: 3...8, using: &random) {
            kinds.append(HostileKind.allCases[Int.random(in: 0..<HostileKind.allCases.count, using: &random)])
        }
        kinds += Array(repeating: .mutatedFrame, count: Int.random(in: 5...20, using: &random))
        let seed = random.next()
        let chosen = kinds
        let results = try await onDedicatedThread { () -> [(HostileKind, String)] in
            var random = SeededRandom(seed: seed)
            return chosen.map { ($0, client.send($0, random: &random)) }
        }
        for (kind, outcome) in results {
            hostile[kind.rawValue, default: [:]][outcome, default: 0] += 1
            if !kind.acceptable.contains(outcome) {
                failures.append(
                    "hostile \(kind.rawValue): answered \(outcome), expected one of \(kind.acceptable.sorted())")
            }
        }
        try await expectCollectorHealthy(after: "hostile requests")
    }

    private func expectCollectorHealthy(after what: String) async throws {
        guard let port = collector?.port else { return }
        let status = try await onDedicatedThread { () -> Int in
            let client = BlockingHTTPClient(port: port, timeoutSeconds: 10)
            return (try? client.send(method: "GET", path: "/healthz").status) ?? 0
        }
        if status != 200 { failures.append("collector /healthz answered \(status) after \(what)") }
    }

    /// slowhttptest's slowloris mode against the collector for 15 s; meanwhile an honest client must
    /// still be served.
    private func runSlowloris() async throws {
        guard let collector else { return }
        guard let tool = executableOnPath("slowhttptest") else {
            notes.append("slowloris skipped: slowhttptest is not installed (Debian package slowhttptest)")
            return
        }
        faults[.slowloris, default: 0] += 1
        let attack = try ChildProcess(
            tool,
            [
                "-H", "-c", "400", "-r", "200", "-i", "5", "-x", "24", "-p", "3", "-l", "15", "-t", "GET",
                "-u", "http://127.0.0.1:\(collector.port)/healthz",
            ], name: "slowhttptest")
        slowloris = attack
        // Once the collector holds most of the slow connections (its open descriptors show them),
        // an honest request.
        let collectorPID = collector.process.processIdentifier
        let descriptorsBefore = Self.openDescriptors(pid: collectorPID)
        let piledUp = try await eventually(within: .seconds(10)) {
            Self.openDescriptors(pid: collectorPID) >= descriptorsBefore + 300 ? true : nil
        }
        let slowConnections = Self.openDescriptors(pid: collectorPID) - descriptorsBefore
        let probeStarted = ContinuousClock.now
        let port = collector.port
        let status = try await onDedicatedThread { () -> Int in
            let client = BlockingHTTPClient(port: port, timeoutSeconds: 10)
            return (try? client.send(method: "GET", path: "/healthz").status) ?? 0
        }
        let probeTime = ContinuousClock.now - probeStarted
        let finished = try await eventually(within: .seconds(40)) { attack.exitStatus }
        if finished == nil { attack.kill(SIGKILL) }
        let plain = attack.stdoutText.replacing(/\x1B\[[0-9;]*m/, with: "")
        let summary = plain.split(separator: "\n").filter {
            $0.contains("service available") || $0.contains("closed") || $0.contains("connected")
        }.suffix(3).map { $0.trimmingCharacters(in: .whitespaces) }
        hostile["honest GET during slowloris", default: [:]]["\(status)", default: 0] += 1
        notes.append(
            "slowloris: 400 slow connections for 15 s (\(slowConnections) open at the collector when probed"
                + "\(piledUp == nil ? ", fewer than 300 after 10 s" : "")); an honest GET /healthz during it answered \(status) in "
                + "\(Int(SoakProducer.seconds(probeTime) * 1000)) ms; slowhttptest: \(summary.joined(separator: "; "))")
        if status != 200 { failures.append("collector did not serve an honest request during slowloris (\(status))") }
        slowloris = nil
    }

    // MARK: End

    private func finish() async throws {
        proxyFaults.isOn.withLock { $0 = false }
        for gateway in gateways { gateway.producer?.requestStop() }
        let producers = gateways.compactMap(\.producer)
        let stopped = try await eventually(within: .seconds(30)) {
            producers.allSatisfy(\.isFinished) ? true : nil
        }
        if stopped == nil { failures.append("producers did not stop within 30 s") }
        if let fillerPath { try? FileManager.default.removeItem(atPath: fillerPath) }
        for gateway in gateways {
            guard let agent = gateway.agent else { continue }
            watch.expectExit(gateway.processRole)
            agent.kill(SIGTERM)
            gateway.stopStatus = try await eventually(within: .seconds(30)) { agent.exitStatus }
            if gateway.stopStatus == nil {
                agent.kill(SIGKILL)
                failures.append("\(gateway.device): edge-agent did not stop within 30 s of SIGTERM")
            } else if gateway.stopStatus != 0 {
                failures.append("\(gateway.device): edge-agent exited \(gateway.stopStatus!) on SIGTERM")
            }
        }
        guard let collector else { throw SoakFailure("no collector") }
        try FileManager.default.createDirectory(atPath: directory + "/drain", withIntermediateDirectories: true)
        let drainConfigPath = directory + "/drain/agent.json"
        try Self.drainConfig.write(toFile: drainConfigPath, atomically: false, encoding: .utf8)
        for gateway in gateways {
            let drain = try ChildProcess(
                try ChildProcess.productURL("edge-agent"),
                [
                    "drain", "--data-dir", gateway.spoolDirectory, "--collector", collector.url, "--config",
                    drainConfigPath,
                ],
                environment: ["EDGE_AGENT_TOKEN": gateway.token], name: "drain \(gateway.device)")
            gateway.drainStatus = try await eventually(within: .seconds(300)) { drain.exitStatus }
            if gateway.drainStatus == nil { drain.kill(SIGKILL) }
            await drain.waitForOutputToClose()
            gateway.drainOutput = drain.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
            if gateway.drainStatus != 0 {
                failures.append(
                    "\(gateway.device): drain ended with \(gateway.drainStatus.map { "\($0)" } ?? "a timeout"): "
                        + drain.stderrLines.suffix(3).joined(separator: " | "))
            }
            let status = try await runTool(
                try ChildProcess.productURL("edge-agent").path,
                ["status", "--data-dir", gateway.spoolDirectory, "--json"])
            gateway.agentStatusJSON =
                (try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]) ?? [:]
        }
        watch.expectExit("collector")
        collector.process.kill(SIGTERM)
        if try await eventually(within: .seconds(30), { collector.process.exitStatus }) == nil {
            collector.process.kill(SIGKILL)
            failures.append("collector did not stop within 30 s of SIGTERM")
        }
        failures += watch.unexpectedExits.filter { !failures.contains($0) }
    }

    /// Ends whatever is still running and unmounts the tmpfs; safe to call after a failure.
    private func cleanUp() async {
        for gateway in gateways { gateway.producer?.requestStop() }
        proxyFaults.isOn.withLock { $0 = false }
        var processes: [ChildProcess] = gateways.compactMap(\.agent)
        if let collector { processes.append(collector.process) }
        if let slowloris { processes.append(slowloris) }
        for process in processes where process.exitStatus == nil {
            process.kill(SIGKILL)
            _ = await process.waitForExit()
        }
        let producers = gateways.compactMap(\.producer)
        _ = try? await eventually(within: .seconds(15)) { producers.allSatisfy(\.isFinished) ? true : nil }
        proxy?.stop()
        if let mountPoint {
            let unmounted = try? await runTool("/usr/bin/umount", [mountPoint])
            if unmounted?.status != 0 { _ = try? await runTool("/usr/bin/umount", ["-l", mountPoint]) }
        }
    }

    struct ToolOutput {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a short tool to completion, killing it after 60 s.
    private func runTool(_ path: String, _ arguments: [String]) async throws -> ToolOutput {
        let child = try ChildProcess(URL(fileURLWithPath: path), arguments)
        guard let status = try await eventually(within: .seconds(60), { child.exitStatus }) else {
            child.kill(SIGKILL)
            _ = await child.waitForExit()
            throw SoakFailure("\(path) \(arguments.joined(separator: " ")) did not finish within 60 s")
        }
        await child.waitForOutputToClose()
        return ToolOutput(
            status: status, stdout: child.stdoutText, stderr: child.stderrLines.joined(separator: "\n"))
    }

    // MARK: Verification

    private func verify(source: SoakReadingSource) throws -> SoakReport {
        var readOnly = SQLiteDatabase.Configuration()
        readOnly.isReadOnly = true
        let database = try SQLiteDatabase(path: collectorDirectory + "/collector.sqlite", configuration: readOnly)
        var rows: [SoakReport.GatewayRow] = []
        for gateway in gateways {
            guard let producer = gateway.producer else { continue }
            let ledger = producer.snapshot
            var row = SoakReport.GatewayRow(device: gateway.device, role: gateway.role.rawValue)
            row.produced = ledger.produced
            row.acknowledged = ledger.acknowledgedCount
            row.producerOutcomes = ledger.outcomes

            var sequenceOf: [Int: UInt64] = [:]
            for run in ledger.sequenceRuns {
                for offset in 0..<run.count { sequenceOf[run.firstIndex + offset] = run.firstSequence + UInt64(offset) }
            }
            let streams = try database.prepare("SELECT count(*) FROM streams WHERE device = ?1")
            try streams.bind(gateway.device, at: 1)
            _ = try streams.step()
            row.streams = Int(streams.int64(at: 0))
            let dropped = try database.prepare(
                """
                SELECT d.first_seq, d.last_seq FROM dropped_ranges d JOIN streams s ON s.stream_ref = d.stream_ref
                WHERE s.device = ?1 ORDER BY d.first_seq
                """)
            try dropped.bind(gateway.device, at: 1)
            // The table may hold overlapping rows: a range the agent extended while reporting it is
            // reported again whole (harmless: the collector's views use the union). Count the union.
            var droppedRows = 0
            var overlappingRows = 0
            var droppedRanges: [ClosedRange<UInt64>] = []
            while try dropped.step() {
                droppedRows += 1
                let range = UInt64(dropped.int64(at: 0))...UInt64(dropped.int64(at: 1))
                if let last = droppedRanges.last, range.lowerBound <= last.upperBound { overlappingRows += 1 }
                if let last = droppedRanges.last, range.lowerBound <= last.upperBound &+ 1 {
                    droppedRanges[droppedRanges.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
                } else {
                    droppedRanges.append(range)
                }
            }
            row.collectorDropped = droppedRanges.reduce(0) { $0 + Int($1.count) }
            if droppedRows > droppedRanges.count {
                notes.append(
                    "\(gateway.device): the collector holds \(droppedRows) dropped-range rows, \(droppedRanges.count) "
                        + "after joining adjacent ones; \(overlappingRows) overlap an earlier row")
            }
            row.agentDropped = (gateway.agentStatusJSON["dropped_readings"] as? NSNumber)?.intValue ?? 0
            row.agentQuarantined = (gateway.agentStatusJSON["quarantined_readings"] as? NSNumber)?.intValue ?? 0
            func isDropped(_ sequence: UInt64) -> Bool {
                // Binary search over the sorted, disjoint union.
                var low = 0
                var high = droppedRanges.count
                while low < high {
                    let middle = (low + high) / 2
                    if droppedRanges[middle].upperBound < sequence { low = middle + 1 } else { high = middle }
                }
                return low < droppedRanges.count && droppedRanges[low].contains(sequence)
            }

            var copies = [UInt8](repeating: 0, count: ledger.produced)
            let select = try database.prepare(
                "SELECT series_key, timestamp, value, value_bits, seq FROM readings_view WHERE device = ?1")
            try select.bind(gateway.device, at: 1)
            while try select.step() {
                row.storedRows += 1
                guard let index = source.index(of: select.int64(at: 1)), index < ledger.produced else {
                    row.unexpected += 1
                    continue
                }
                let entry = source.entry(index, gateway: gateway.index)
                let bits =
                    select.isNull(at: 3) ? select.double(at: 2).bitPattern : UInt64(bitPattern: select.int64(at: 3))
                if select.text(at: 0) != source.seriesKeys[Int(source.seriesOfEntry[entry])]
                    || bits != source.values[entry].bitPattern
                {
                    row.mismatched += 1
                }
                if gateway.role == .dropOldest, row.streams == 1, isDropped(UInt64(select.int64(at: 4))) {
                    row.storedAndDropped += 1
                }
                copies[index] = copies[index] &+ 1
            }
            let damagedAside = gateway.corruptionOutcome?.contains("moved aside") ?? false
            // Damage the open-time check missed can still break one stored chunk, which the spool
            // then quarantines (documented): at most that many readings of the damaged file count as
            // lost with it.
            var quarantinedByDamage = gateway.corruptionBoundary != nil && !damagedAside ? row.agentQuarantined : 0
            for index in 0..<ledger.produced {
                let count = Int(copies[index])
                if count > 1 { row.duplicates += count - 1 }
                if ledger.acknowledged[index] {
                    if count > 0 {
                        row.storedAcknowledged += 1
                    } else if gateway.role == .dropOldest, row.streams == 1, let sequence = sequenceOf[index],
                        isDropped(sequence)
                    {
                        row.droppedByPolicy += 1
                    } else if damagedAside, let boundary = gateway.corruptionBoundary, index < boundary {
                        row.lostWithDamagedSpool += 1
                    } else if quarantinedByDamage > 0, let boundary = gateway.corruptionBoundary, index < boundary {
                        quarantinedByDamage -= 1
                        row.lostWithDamagedSpool += 1
                    } else {
                        row.lost += 1
                    }
                } else if count > 0 {
                    row.storedUnacknowledged += 1
                }
            }
            if row.lost > 0 {
                let missing = (0..<ledger.produced).filter { ledger.acknowledged[$0] && copies[$0] == 0 }.prefix(5)
                notes.append("\(gateway.device): first lost reading indexes \(Array(missing))")
            }
            row.peakRSSKiB = watch.peakKiB[gateway.processRole] ?? 0
            row.drainSummary = gateway.drainOutput.split(separator: "\n").last.map(String.init) ?? ""
            if let outcome = gateway.corruptionOutcome { notes.append("\(gateway.device) corruption: \(outcome)") }
            rows.append(row)
        }
        if diskFullsWithoutRefusal > 0 {
            notes.append(
                "disk full: in \(diskFullsWithoutRefusal) of \(faults[.diskFull] ?? 0) fills the spool kept taking "
                    + "writes for 15 s (room left in its WAL and free pages)")
        }
        var proxyFaults: [String: Int] = [:]
        for (fault, count) in proxy?.statistics.faults ?? [:] where fault != .none {
            proxyFaults["proxy: \(fault)"] = count
        }
        return SoakReport(
            seconds: configuration.seconds, seed: configuration.seed, gateways: rows,
            faults: Dictionary(uniqueKeysWithValues: faults.map { ($0.key.rawValue, $0.value) }).merging(
                proxyFaults, uniquingKeysWith: +),
            proxyRequests: proxy?.statistics.requests ?? 0,
            hostile: hostile,
            collectorPeakRSSKiB: watch.peakKiB["collector"] ?? 0, notes: notes, failures: failures)
    }
}
