import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An HTTP/1.1 proxy for tests that sits between an agent and a collector on loopback and, per
/// request, injects the faults real networks produce: connection resets, stalls, error answers
/// with Retry-After, and the "lost acknowledgement" (the collector committed, the client never
/// hears it).
///
/// It understands just enough HTTP to find message boundaries (Content-Length bodies, which is what
/// the uploader and the collector send). One thread per client connection, blocking sockets.
package final class FaultProxy: @unchecked Sendable {
    // Mutable state lives in `state` (a Mutex); the rest is set in init.
    package enum Fault: Sendable, Equatable, CaseIterable {
        /// Forward the request and the answer.
        case none
        /// Reset the client connection before forwarding anything.
        case resetBeforeForwarding
        /// Hold the request for `stallDuration`, then close the connection without forwarding.
        case stall
        /// Answer 500 without forwarding.
        case internalServerError
        /// Answer 503 with `Retry-After: 1` without forwarding.
        case serviceUnavailable
        /// Answer 429 with `Retry-After: 1` without forwarding (a rate limiter in front of the
        /// collector).
        case tooManyRequests
        /// Forward the request, read the collector's answer, then reset the client connection.
        case loseAnswer
    }

    package struct Statistics: Sendable, Equatable {
        package var requests = 0
        package var faults: [Fault: Int] = [:]
    }

    private let listener: Int32
    package let port: Int
    private let upstreamPort: Int
    private let stallDuration: Duration
    private let choose: @Sendable (_ requestNumber: Int) -> Fault
    private struct State {
        var statistics = Statistics()
        var clients: Set<Int32> = []
        var isStopped = false
        var requestWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    /// Listens on a free loopback port and forwards to `upstreamPort` on loopback; `choose` picks
    /// the fault for each request (numbered from 1).
    package init(
        upstreamPort: Int,
        stallDuration: Duration = .seconds(2),
        choose: @escaping @Sendable (_ requestNumber: Int) -> Fault
    ) throws {
        self.upstreamPort = upstreamPort
        self.stallDuration = stallDuration
        self.choose = choose
        (listener, port) = try Self.listenOnLoopback()
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    package var statistics: Statistics { state.withLock { $0.statistics } }

    /// Returns once the proxy has seen at least `count` requests in all.
    package func waitForRequests(atLeast count: Int) async {
        await withCheckedContinuation { continuation in
            let isReady = state.withLock { state -> Bool in
                if state.statistics.requests >= count { return true }
                state.requestWaiters.append((count, continuation))
                return false
            }
            if isReady { continuation.resume() }
        }
    }

    private static func listenOnLoopback() throws -> (Int32, Int) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw ProxyError("socket: errno \(errno)") }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listener, 128) == 0 else {
            close(listener)
            throw ProxyError("bind/listen: errno \(errno)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        return (listener, Int(UInt16(bigEndian: actual.sin_port)))
    }

    /// Stops accepting and closes every client connection.
    package func stop() {
        let stopping = state.withLock { state -> (Set<Int32>, [CheckedContinuation<Void, Never>])? in
            // Once only: a second close of the listener could close a descriptor reused meanwhile.
            guard !state.isStopped else { return nil }
            state.isStopped = true
            defer { state.requestWaiters.removeAll() }
            return (state.clients, state.requestWaiters.map(\.continuation))
        }
        guard let (clients, waiters) = stopping else { return }
        for waiter in waiters { waiter.resume() }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for client in clients { shutdown(client, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let accepted = state.withLock { state -> Bool in
                guard !state.isStopped else { return false }
                state.clients.insert(client)
                return true
            }
            guard accepted else {
                close(client)
                return
            }
            Thread { [self] in
                serve(client)
                state.withLock { _ = $0.clients.remove(client) }
                close(client)
            }.start()
        }
    }

    private func serve(_ client: Int32) {
        var upstream: Int32 = -1
        defer { if upstream >= 0 { close(upstream) } }
        var clientReader = MessageReader(fd: client)
        while let request = clientReader.nextMessage() {
            let (fault, ready) = state.withLock { state in
                state.statistics.requests += 1
                let fault = choose(state.statistics.requests)
                state.statistics.faults[fault, default: 0] += 1
                let count = state.statistics.requests
                let ready = state.requestWaiters.filter { $0.count <= count }.map(\.continuation)
                state.requestWaiters.removeAll { $0.count <= count }
                return (fault, ready)
            }
            for waiter in ready { waiter.resume() }
            switch fault {
            case .resetBeforeForwarding:
                Self.reset(client)
                return
            case .stall:
                Thread.sleep(
                    forTimeInterval: Double(stallDuration.components.seconds) + Double(
                        stallDuration.components.attoseconds) / 1e18)
                return
            case .internalServerError:
                guard Self.write(client, Array("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".utf8))
                else { return }
                continue
            case .serviceUnavailable:
                guard
                    Self.write(
                        client,
                        Array("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n".utf8))
                else { return }
                continue
            case .tooManyRequests:
                guard
                    Self.write(
                        client,
                        Array("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n".utf8))
                else { return }
                continue
            case .none, .loseAnswer:
                if upstream < 0 {
                    upstream = Self.connectLoopback(port: upstreamPort)
                    guard upstream >= 0 else {
                        Self.reset(client)
                        return
                    }
                }
                var upstreamReader = MessageReader(fd: upstream)
                guard Self.write(upstream, request), let answer = upstreamReader.nextMessage() else {
                    Self.reset(client)
                    return
                }
                if fault == .loseAnswer {
                    Self.reset(client)
                    return
                }
                guard Self.write(client, answer) else { return }
            }
        }
    }

    /// Reads whole HTTP messages (head plus Content-Length body) from a blocking socket.
    private struct MessageReader {
        let fd: Int32
        var buffer: [UInt8] = []

        init(fd: Int32) { self.fd = fd }

        mutating func nextMessage() -> [UInt8]? {
            while true {
                if let end = headEnd() {
                    let head = String(decoding: buffer[..<end], as: UTF8.self).lowercased()
                    var length = 0
                    for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                        length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                    let total = end + 4 + length
                    if buffer.count >= total {
                        let message = Array(buffer[..<total])
                        buffer.removeFirst(total)
                        return message
                    }
                }
                var chunk = [UInt8](repeating: 0, count: 65536)
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count <= 0 {
                    if count < 0 && errno == EINTR { continue }
                    return nil
                }
                buffer.append(contentsOf: chunk[..<count])
            }
        }

        private func headEnd() -> Int? {
            guard buffer.count >= 4 else { return nil }
            for index in 0...(buffer.count - 4)
            where buffer[index] == 13 && buffer[index + 1] == 10 && buffer[index + 2] == 13 && buffer[index + 3] == 10 {
                return index
            }
            return nil
        }
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 {
                if sent < 0 && errno == EINTR { continue }
                return false
            }
            offset += sent
        }
        return true
    }

    /// Closes with RST instead of FIN, as a crashed middlebox or a dropped route would.
    private static func reset(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        shutdown(fd, Int32(SHUT_RD))
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        return address
    }

    private static func connectLoopback(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return -1
        }
        return fd
    }

    package struct ProxyError: Error, CustomStringConvertible {
        package var description: String
        init(_ description: String) { self.description = description }
    }
}
