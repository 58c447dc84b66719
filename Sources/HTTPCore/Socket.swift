import Glibc

/// Thin wrappers over the POSIX socket calls the loop needs; every failure keeps its errno.
package enum Socket {
    /// Creates a non-blocking listening socket bound to `host:port` (numeric IPv4 or IPv6, or a name);
    /// with `datagram`, a bound UDP socket instead (blocking, as its readers are threads).
    package static func listen(
        host: String, port: Int, backlog: Int32, reusePort: Bool = false, datagram: Bool = false
    ) throws -> (fd: Int32, address: HTTPServer.Address) {
        let type = datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw SocketError(operation: "resolve \(host)", errno: status == EAI_SYSTEM ? errno : EINVAL)
        }
        defer { freeaddrinfo(list) }
        let info = first.pointee

        let fd = socket(info.ai_family, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError(operation: "socket", errno: errno) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        if reusePort {
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        if info.ai_family == AF_INET6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        guard bind(fd, info.ai_addr, info.ai_addrlen) == 0 else {
            let error = errno
            close(fd)
            throw SocketError(operation: "bind \(host):\(port)", errno: error)
        }
        guard datagram || Glibc.listen(fd, backlog) == 0 else {
            let error = errno
            close(fd)
            throw SocketError(operation: "listen \(host):\(port)", errno: error)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0, let address = describe(storage) else {
            let error = errno
            close(fd)
            throw SocketError(operation: "getsockname", errno: error)
        }
        return (fd, address)
    }

    /// Host and port of a socket address, or `nil` for families other than IPv4 and IPv6.
    package static func describe(_ storage: sockaddr_storage) -> HTTPServer.Address? {
        withUnsafeBytes(of: storage) { raw in
            switch Int32(storage.ss_family) {
            case AF_INET:
                let address = raw.load(as: sockaddr_in.self)
                return describe(AF_INET, address.sin_addr, port: address.sin_port)
            case AF_INET6:
                let address = raw.load(as: sockaddr_in6.self)
                return describe(AF_INET6, address.sin6_addr, port: address.sin6_port)
            default:
                return nil
            }
        }
    }

    /// `address` (an `in_addr` or `in6_addr` of `family`) as text, with a port in network byte order.
    private static func describe<RawAddress>(_ family: Int32, _ address: RawAddress, port: UInt16)
        -> HTTPServer.Address
    {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        withUnsafeBytes(of: address) { _ = inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        return HTTPServer.Address(
            host: String(decoding: text.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self),
            port: Int(UInt16(bigEndian: port)))
    }

    /// Accepts one pending connection, non-blocking; `nil` when none is waiting.
    static func accept(_ listener: Int32) -> (fd: Int32, peer: String)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Epoll.accept(listener, $0, &length)
            }
        }
        guard fd >= 0 else { return nil }
        var on: Int32 = 1
        // Responses are written whole; waiting for Nagle would only add latency.
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        return (fd, describe(storage)?.description ?? "unknown")
    }
}
