import CloudCollector
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Synchronization
import Testing

/// The built `cloud-collector` binary, next to the test bundle in the build products.
enum CollectorBinary {
    static var url: URL {
        get throws { try ChildProcess.productURL("cloud-collector") }
    }

    typealias Outcome = ChildProcess.Output

    /// Runs the binary to completion without blocking a thread of the cooperative pool.
    static func run(_ arguments: [String]) async throws -> Outcome {
        try await ChildProcess.run(try url, arguments)
    }
}

/// A `cloud-collector serve` child process on a free loopback port.
final class CollectorProcess: Sendable {
    let process: Process  // started once in `start`, then only signalled and awaited
    let port: Int

    private init(process: Process, port: Int) {
        self.process = process
        self.port = port
    }

    /// Starts the server and returns once it logs its listening address.
    static func start(dataDirectory: String, extraArguments: [String] = []) async throws -> CollectorProcess {
        let (process, port) = try await onDedicatedThread { () throws -> (ProcessBox, Int) in
            let process = Process()
            process.executableURL = try CollectorBinary.url
            process.arguments = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDirectory] + extraArguments
            let err = Pipe.closingOnExec()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let handle = err.fileHandleForReading
            var text = ""
            while true {
                let data = handle.availableData
                if data.isEmpty { throw CollectorStartFailure(description: "collector exited: \(text)") }
                text += String(decoding: data, as: UTF8.self)
                if let range = text.range(of: "event=listening address=127.0.0.1:") {
                    let digits = text[range.upperBound...].prefix { $0.isNumber }
                    if let port = Int(digits), text[range.upperBound...].dropFirst(digits.count).first == " " {
                        // Keep draining stderr so the child never blocks on a full pipe.
                        Thread { while !handle.availableData.isEmpty {} }.start()
                        return (ProcessBox(process), port)
                    }
                }
            }
        }
        return CollectorProcess(process: process.process, port: port)
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the child to exit and returns its status.
    func waitForExit() async throws -> Int32 {
        let process = ProcessBox(self.process)
        return try await onDedicatedThread {
            process.process.waitUntilExit()
            return process.process.terminationStatus
        }
    }
}

/// What the sender threads of the kill test share.
final class KillSwitch: Sendable {
    let acknowledged = Mutex<[SequenceRange]>([])
    let killed = Atomic<Bool>(false)
}

struct CollectorStartFailure: Error, CustomStringConvertible { var description: String }

/// Carries a `Process` across threads; it is used by one thread at a time.
final class ProcessBox: @unchecked Sendable {
    let process: Process
    init(_ process: Process) { self.process = process }
}

@Suite(.serialized)
struct CollectorProcessTests {
    static let device = "gateway-7"

    func batches(count: Int, size: Int = 1000) -> [Batch] {
        (0..<count).map { Fixtures.batch(device: Self.device, stream: 77, first: UInt64($0 * size + 1), count: size) }
    }

    func addToken(_ directory: String) async throws -> String {
        let outcome = try await CollectorBinary.run(["token", "add", "--data-dir", directory, Self.device])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let token = outcome.stdout.trimmingCharacters(in: .newlines)
        #expect(outcome.stdout == token + "\n", "token add prints only the token")
        return token
    }

    /// Posts `frames` over one keep-alive connection; returns the acknowledgements.
    func send(_ frames: [[UInt8]], port: Int, token: String) async throws -> [BatchAcknowledgement] {
        try await onDedicatedThread {
            let client = BlockingHTTPClient(port: port)
            return try frames.map { frame in
                let response = try client.post(
                    ProtocolPath.batches, body: frame,
                    headers: [("Authorization", "Bearer \(token)"), ("Content-Type", FrameHeader.mediaType)])
                guard response.status == 200 else {
                    throw CollectorStartFailure(description: "status \(response.status): \(response.text)")
                }
                return try JSONDecoder().decode(BatchAcknowledgement.self, from: Data(response.body))
            }
        }
    }

    @Test func twoProcessesSharingOneDataDirectorySequentially() async throws {
        try await withTemporaryDirectory(prefix: "collector-process") { directory in
            let token = try await addToken(directory)
            let batches = batches(count: 40)
            let frames = try batches.map { try BatchEncoder().encode($0) }

            let first = try await CollectorProcess.start(dataDirectory: directory)
            let firstAcks = try await send(Array(frames[0..<25]), port: first.port, token: token)
            first.signal(SIGTERM)
            #expect(try await first.waitForExit() == 0)

            let second = try await CollectorProcess.start(dataDirectory: directory)
            let secondAcks = try await send(
                Array(frames[15...]) + Array(frames[0..<5]), port: second.port, token: token)
            second.signal(SIGTERM)
            #expect(try await second.waitForExit() == 0)

            #expect(firstAcks.allSatisfy { $0.accepted == 1000 })
            #expect(
                secondAcks.map(\.accepted) == Array(repeating: 0, count: 10) + Array(repeating: 1000, count: 15)
                    + Array(repeating: 0, count: 5))
            let path = (directory as NSString).appendingPathComponent(CollectorSchema.databaseFileName)
            #expect(try Fixtures.storedReadings(databasePath: path) == Fixtures.expected(batches))
        }
    }

    /// SIGTERM checkpoints the WAL into the database and truncates it: a stopped collector leaves
    /// the database and an empty log, and the readings are all in the database file.
    @Test func aCleanStopLeavesAnEmptyWAL() async throws {
        try await withTemporaryDirectory(prefix: "collector-clean-stop") { directory in
            let token = try await addToken(directory)
            let batches = batches(count: 30)
            let path = (directory as NSString).appendingPathComponent(CollectorSchema.databaseFileName)
            let server = try await CollectorProcess.start(dataDirectory: directory)
            _ = try await send(try batches.map { try BatchEncoder().encode($0) }, port: server.port, token: token)
            // The running collector's log holds the commits (passive checkpoints never shrink it).
            #expect(SQLiteDatabase.fileSizes(ofDatabaseAt: path).wal > 0)
            server.signal(SIGTERM)
            #expect(try await server.waitForExit() == 0)
            #expect(SQLiteDatabase.fileSizes(ofDatabaseAt: path).wal == 0)
            #expect(try Fixtures.storedReadings(databasePath: path) == Fixtures.expected(batches))
        }
    }

    /// kill -9 while four gateways stream batches; after a restart, re-sending everything yields
    /// exactly the expected readings, and every batch acknowledged before the kill was stored.
    @Test func killMinusNineThenResendEverything() async throws {
        try await withTemporaryDirectory(prefix: "collector-kill") { directory in
            let token = try await addToken(directory)
            let batches = batches(count: 120, size: 2000)
            let frames = try batches.map { try BatchEncoder().encode($0) }
            let server = try await CollectorProcess.start(dataDirectory: directory)
            let shared = KillSwitch()
            let pid = server.process.processIdentifier

            // Four senders, each with every fourth batch; the one that sees the 30th ack kills.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<4 {
                    let mine = stride(from: lane, to: frames.count, by: 4).map { frames[$0] }
                    let port = server.port
                    group.addTask {
                        try await onDedicatedThread {
                            let client = BlockingHTTPClient(port: port)
                            for frame in mine {
                                guard
                                    let response = try? client.post(
                                        ProtocolPath.batches, body: frame,
                                        headers: [("Authorization", "Bearer \(token)")])
                                else { return }  // the collector is gone
                                guard response.status == 200,
                                    let ack = try? JSONDecoder().decode(
                                        BatchAcknowledgement.self, from: Data(response.body))
                                else { continue }
                                let total = shared.acknowledged.withLock { list in
                                    list += ack.acknowledged
                                    return list.count
                                }
                                if total == 30, !shared.killed.exchange(true, ordering: .relaxed) { kill(pid, SIGKILL) }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let wasKilled = shared.killed.load(ordering: .relaxed)
            #expect(wasKilled)
            #expect(try await server.waitForExit() == SIGKILL)

            let path = (directory as NSString).appendingPathComponent(CollectorSchema.databaseFileName)
            // Everything acknowledged before the kill survived it.
            let storedBeforeRestart = Set(try Fixtures.storedReadings(databasePath: path).map(\.seq))
            for range in shared.acknowledged.withLock({ $0 }) {
                #expect(storedBeforeRestart.contains(range.first) && storedBeforeRestart.contains(range.last))
            }

            let restarted = try await CollectorProcess.start(dataDirectory: directory)
            let acks = try await send(frames, port: restarted.port, token: token)
            restarted.signal(SIGTERM)
            #expect(try await restarted.waitForExit() == 0)
            #expect(acks.count == frames.count)
            #expect(acks.reduce(0) { $0 + $1.accepted } == batches.count * 2000 - storedBeforeRestart.count)
            #expect(try Fixtures.storedReadings(databasePath: path) == Fixtures.expected(batches))
            let database = try SQLiteDatabase(path: path)
            #expect(try database.integrityProblems().isEmpty)
        }
    }

    @Test func badUsageExitsWith64NamingTheProblem() async throws {
        try await withTemporaryDirectory(prefix: "collector-cli") { directory in
            let badFlag = try await CollectorBinary.run(["serve", "--data-dir", directory, "--lissen", "x"])
            #expect(badFlag.status == 64 && badFlag.stderr.contains("--lissen"))
            let badListen = try await CollectorBinary.run(["serve", "--data-dir", directory, "--listen", "localhost"])
            #expect(badListen.status == 64 && badListen.stderr.contains("--listen"))
            let config = (directory as NSString).appendingPathComponent("collector.json")
            try Data(#"{"data_dir": "d", "colour": "red"}"#.utf8).write(to: URL(fileURLWithPath: config))
            let unknownKey = try await CollectorBinary.run(["serve", "--config", config])
            #expect(unknownKey.status == 64 && unknownKey.stderr.contains("colour"))
            try Data(#"{"data_dir": "d", "queue": {"max_readings": -3}}"#.utf8).write(to: URL(fileURLWithPath: config))
            let badValue = try await CollectorBinary.run(["serve", "--config", config])
            #expect(badValue.status == 64 && badValue.stderr.contains("queue.max_readings"))
            let missingDevice = try await CollectorBinary.run(["token", "add", "--data-dir", directory])
            #expect(missingDevice.status == 64)

            _ = try await addToken(directory)
            let list = try await CollectorBinary.run(["token", "list", "--data-dir", directory])
            #expect(list.status == 0 && list.stdout.hasPrefix(Self.device + "\t"))
            #expect(!list.stdout.contains("est_"))
            let revoke = try await CollectorBinary.run(["token", "revoke", "--data-dir", directory, Self.device])
            #expect(revoke.status == 0)
            let again = try await CollectorBinary.run(["token", "revoke", "--data-dir", directory, Self.device])
            #expect(again.status == 1)
        }
    }
}

/// The example configuration shipped in `cloud/` is accepted by the real binary (with the data
/// directory overridden by the flag).
struct ExampleConfigurationTests {
    @Test func exampleConfigurationStartsTheCollector() async throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("cloud/collector.example.json")
        try await withTemporaryDirectory(prefix: "collector-example") { directory in
            let server = try await CollectorProcess.start(
                dataDirectory: directory, extraArguments: ["--config", example.path])
            server.signal(SIGTERM)
            #expect(try await server.waitForExit() == 0)
        }
    }
}
