import Glibc

/// An outgoing TCP connection for clients that run on a thread of their own (a broker or stream
/// client): non-blocking underneath, so every call takes a deadline and none blocks past it.
/// Owns its descriptor; `close()` (or deinit) closes it once.
package final class ClientSocket {
    /// A failure with the reason in words (`cannot connect to nats.local:4222: connection refused`).
    package struct Failure: Error, CustomStringConvertible, Equatable {
        package var description: String
        package init(_ description: String) { self.description = description }
    }

    package private(set) var fd: Int32
    /// `host:port` as given, for messages.
    package let peer: String

    private init(fd: Int32, peer: String) {
        self.fd = fd
        self.peer = peer
    }

    deinit { close() }

    /// Connects to `host:port` (a name or a numeric address; each resolved address is tried in
    /// turn), within `timeout` in all. `shouldStop` is asked every 250 ms, so a shutdown does not
    /// wait for a slow connect.
    package static func connect(
        host: String, port: Int, timeout: Duration, shouldStop: () -> Bool = { false }
    ) throws(Failure) -> ClientSocket {
        let peer = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw Failure("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        let deadline = ContinuousClock.now + timeout
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry?.pointee {
            entry = info.ai_next
            let fd = socket(
                info.ai_family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                lastError = String(cString: strerror(errno))
                continue
            }
            if Glibc.connect(fd, info.ai_addr, info.ai_addrlen) != 0, errno != EINPROGRESS {
                lastError = String(cString: strerror(errno))
                Glibc.close(fd)
                continue
            }
            var connected = false
            var timedOut = true
            while ContinuousClock.now < deadline, !shouldStop() {
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let ready = poll(&poller, 1, Self.milliseconds(until: deadline, atMost: 250))
                if ready < 0, errno != EINTR { break }
                guard ready > 0 else { continue }
                timedOut = false
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                if error == 0 { connected = true } else { lastError = String(cString: strerror(error)) }
                break
            }
            if connected {
                var on: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
                return ClientSocket(fd: fd, peer: peer)
            }
            if timedOut { lastError = shouldStop() ? "stopped" : "timed out after \(timeout)" }
            Glibc.close(fd)
        }
        throw Failure("cannot connect to \(peer): \(lastError)")
    }

    /// Writes all of `bytes` before `deadline`.
    package func send(_ bytes: [UInt8], before deadline: ContinuousClock.Instant) throws(Failure) {
        guard fd >= 0 else { throw Failure("connection to \(peer) is closed") }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { raw -> Int in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                offset += sent
                continue
            }
            if sent < 0, errno == EINTR { continue }
            guard sent < 0, errno == EAGAIN || errno == EWOULDBLOCK else {
                throw Failure("write to \(peer) failed: \(String(cString: strerror(errno)))")
            }
            guard ContinuousClock.now < deadline else { throw Failure("write to \(peer) timed out") }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&poller, 1, Self.milliseconds(until: deadline, atMost: 250))
        }
    }

    /// Reads what has arrived (up to `capacity` bytes), waiting until `deadline` for the first
    /// byte: `nil` at the deadline, an empty array when the peer closed the connection.
    package func receive(capacity: Int = 65_536, before deadline: ContinuousClock.Instant) throws(Failure) -> [UInt8]? {
        guard fd >= 0 else { throw Failure("connection to \(peer) is closed") }
        var buffer = [UInt8](repeating: 0, count: capacity)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if count >= 0 {
                buffer.removeSubrange(count...)
                return buffer
            }
            if errno == EINTR { continue }
            guard errno == EAGAIN || errno == EWOULDBLOCK else {
                throw Failure("read from \(peer) failed: \(String(cString: strerror(errno)))")
            }
            let wait = Self.milliseconds(until: deadline, atMost: 250)
            guard wait > 0 else { return nil }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&poller, 1, wait)
        }
    }

    package func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    /// Milliseconds from now to `deadline`, between 0 and `atMost`.
    private static func milliseconds(until deadline: ContinuousClock.Instant, atMost: Int32) -> Int32 {
        let left = ContinuousClock.now.duration(to: deadline)
        guard left > .zero else { return 0 }
        let (seconds, attoseconds) = left.components
        let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1
        return Int32(min(Int64(atMost), total))
    }
}
