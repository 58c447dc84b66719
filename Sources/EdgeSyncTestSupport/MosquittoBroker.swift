import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A throwaway Mosquitto broker for tests and benchmarks: Debian's `mosquitto` on a free loopback
/// port, a configuration and a persistence folder in `directory`, anonymous access. Sessions and
/// queued messages are kept across `restart()` (persistence on, saved at a clean stop), and no
/// limit drops queued messages, so a test can count every message. A watchdog shell kills the
/// broker once the process that started it is gone.
package final class MosquittoBroker: Sendable {
    package struct Unavailable: Error, CustomStringConvertible {
        package var description: String
    }

    package let port: Int
    package let directory: String
    private let process = Mutex<ChildProcess?>(nil)

    /// The `mosquitto` binary, or nil when the package is not installed.
    package static var executable: URL? {
        for path in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"]
        where FileManager.default.isExecutableFile(atPath: path) {
            return URL(fileURLWithPath: path)
        }
        return nil
    }

    /// A client program of Debian's `mosquitto-clients` (`mosquitto_sub`, `mosquitto_pub`), or nil.
    package static func client(_ name: String) -> URL? {
        ["/usr/bin/", "/usr/local/bin/"].map { URL(fileURLWithPath: $0 + name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// Writes the configuration into `directory` (which must exist) and starts the broker.
    /// `maximumInflight` is the broker's window of unacknowledged QoS 1 messages per client.
    package static func start(in directory: String, maximumInflight: Int = 1000) async throws -> MosquittoBroker {
        guard executable != nil, FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else {
            throw Unavailable(
                description:
                    "mosquitto or python3 is not installed (Debian packages mosquitto, python3; .ci/run installs them)")
        }
        let broker = MosquittoBroker(port: try freeLoopbackPort(), directory: directory)
        try """
        listener \(broker.port) 127.0.0.1
        allow_anonymous true
        persistence true
        persistence_location \(directory)/
        autosave_interval 3600
        max_inflight_messages \(maximumInflight)
        max_queued_messages 0
        max_queued_bytes 0
        user root
        pid_file \(directory)/mosquitto.pid
        log_dest stderr
        log_type error
        log_type warning

        """.write(toFile: directory + "/mosquitto.conf", atomically: true, encoding: .utf8)
        try await broker.start()
        broker.startWatchdog()
        return broker
    }

    /// The broker's address space, at most (RLIMIT_AS): 1 GiB, far above what any test queues.
    package static let addressSpaceLimit = 1 << 30

    private init(port: Int, directory: String) {
        self.port = port
        self.directory = directory
    }

    private func start() async throws {
        guard let executable = Self.executable else { throw Unavailable(description: "mosquitto is not installed") }
        // Bounded: a runaway test once grew a broker without limits to 16 GB. Past the limit the
        // broker fails its allocations (and the test), instead of taking the machine.
        // The test process blocks SIGTERM (its own signal handling) and a child inherits the mask,
        // so mosquitto would never see the SIGTERM that makes it save its sessions: clear the mask
        // before exec.
        let child = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/python3"),
            [
                "-c",
                "import os, resource, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); resource.setrlimit(resource.RLIMIT_AS, (\(Self.addressSpaceLimit), \(Self.addressSpaceLimit))); os.execv(sys.argv[1], sys.argv[1:])",
                executable.path, "-c", directory + "/mosquitto.conf",
            ], name: "mosquitto")
        process.withLock { $0 = child }
        // The broker is an external process: poll its port with a deadline.
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let status = child.exitStatus {
                throw ChildProcess.Failure(
                    "mosquitto exited with \(status): \(child.stderrLines.suffix(5).joined(separator: " | "))")
            }
            if Self.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        child.kill()
        throw ChildProcess.Failure("mosquitto did not listen on port \(port) within 10 s")
    }

    /// Stops the broker cleanly (SIGTERM: it saves sessions and queued messages) and starts it again
    /// on the same port.
    package func restart() async throws {
        await stop()
        try await start()
    }

    /// SIGTERM, then waits for the exit.
    package func stop() async {
        guard let child = process.withLock({ $0 }) else { return }
        child.kill(SIGTERM)
        _ = await child.waitForExit()
        process.withLock { $0 = nil }
    }

    private static func accepts(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private func startWatchdog(lifetime: Duration = .seconds(3600)) {
        let script = """
            end=$(( $(date +%s) + \(lifetime.components.seconds) ))
            while kill -0 \(getpid()) 2>/dev/null && [ $(date +%s) -lt $end ]; do sleep 1; done
            [ -f '\(directory)/mosquitto.pid' ] && kill -KILL "$(cat '\(directory)/mosquitto.pid')" 2>/dev/null
            """
        let watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments = ["-c", script]
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try? watchdog.run()
    }
}

/// A minimal MQTT 3.1.1 publisher for tests and benchmarks, written apart from the agent's codec
/// so the two check each other: QoS 1 messages with up to `window` unacknowledged, and a ledger
/// of which were acknowledged by the broker (stored there, so the subscriber must get them).
///
/// Not thread-safe: one thread publishes.
package final class MQTTTestPublisher {
    private var fd: Int32 = -1
    private var nextID: UInt16 = 1
    /// Packet identifier → the message's index, while unacknowledged.
    private var inFlight: [UInt16: Int] = [:]
    private var readBuffer: [UInt8] = []
    /// Indexes the broker acknowledged.
    package private(set) var acknowledged: [Int] = []
    /// Indexes sent whose acknowledgement was lost with a connection: stored at most once.
    package private(set) var uncertain: [Int] = []
    private let window: Int

    package init(window: Int = 200) {
        self.window = window
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Connects with a clean session as `clientID`; false when the broker is not there.
    package func connect(port: Int, clientID: String) -> Bool {
        if fd >= 0 { close(fd) }
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        readBuffer.removeAll()
        let id = Array(clientID.utf8)
        // CONNECT: "MQTT", level 4, clean session, keep alive 60 s, the client id.
        let body: [UInt8] =
            [0, 4] + Array("MQTT".utf8) + [4, 0x02, 0, 60, UInt8(id.count >> 8), UInt8(id.count & 0xFF)] + id
        guard connected, write([0x10, UInt8(body.count)] + body), let connack = readPacket(),
            connack.count == 4, connack[0] == 0x20, connack[3] == 0
        else {
            dropConnection()
            return false
        }
        return true
    }

    /// Publishes `payload` on `topic` as message `index`; false when the connection failed (what was
    /// in flight is then `uncertain`).
    package func publish(topic: String, payload: [UInt8], index: Int) -> Bool {
        while inFlight.count >= window {
            guard awaitAcknowledgement() else {
                // Never sent, so never stored: "at most once" holds for it too.
                uncertain.append(index)
                return false
            }
        }
        let topicBytes = Array(topic.utf8)
        let id = nextID
        nextID = nextID == 65535 ? 1 : nextID + 1
        var body: [UInt8] = [UInt8(topicBytes.count >> 8), UInt8(topicBytes.count & 0xFF)] + topicBytes
        body += [UInt8(id >> 8), UInt8(id & 0xFF)]
        body += payload
        var packet: [UInt8] = [0x32]
        var length = body.count
        repeat {
            var byte = UInt8(length & 0x7F)
            length >>= 7
            if length > 0 { byte |= 0x80 }
            packet.append(byte)
        } while length > 0
        inFlight[id] = index
        guard write(packet + body) else {
            dropConnection()
            return false
        }
        return true
    }

    /// Waits for every message in flight to be acknowledged; false when the connection failed.
    package func flush() -> Bool {
        while !inFlight.isEmpty {
            guard awaitAcknowledgement() else { return false }
        }
        return true
    }

    package func disconnect() {
        _ = flush()
        _ = write([0xE0, 0x00])
        close(fd)
        fd = -1
    }

    private func awaitAcknowledgement() -> Bool {
        guard let packet = readPacket(), packet.count == 4, packet[0] == 0x40 else {
            dropConnection()
            return false
        }
        let id = UInt16(packet[2]) << 8 | UInt16(packet[3])
        if let index = inFlight.removeValue(forKey: id) { acknowledged.append(index) }
        return true
    }

    private func dropConnection() {
        uncertain += inFlight.values
        inFlight.removeAll()
        if fd >= 0 { close(fd) }
        fd = -1
    }

    private func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0, errno == EINTR { continue }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }

    /// One whole packet (fixed header included), or nil on end of file, error or timeout.
    private func readPacket() -> [UInt8]? {
        while true {
            if readBuffer.count >= 2 {
                var length = 0
                var index = 1
                var complete = false
                while index < readBuffer.count, index <= 4 {
                    length |= Int(readBuffer[index] & 0x7F) << (7 * (index - 1))
                    index += 1
                    if readBuffer[index - 1] & 0x80 == 0 {
                        complete = true
                        break
                    }
                }
                if complete, readBuffer.count >= index + length {
                    let packet = Array(readBuffer[0..<index + length])
                    readBuffer.removeFirst(index + length)
                    return packet
                }
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return nil }
            readBuffer += chunk[0..<count]
        }
    }
}
