import CEpoll
import Glibc

/// epoll, eventfd and accept4 through the `CEpoll` shim (the toolchain's Glibc module does not
/// export them); every failure keeps its errno.
enum Epoll {
    static let input = cepoll_input
    static let output = cepoll_output
    static let error = cepoll_error
    static let hangUp = cepoll_hang_up

    static let add = cepoll_add
    static let delete = cepoll_delete
    static let modify = cepoll_modify

    /// Bytes per event in a `wait` buffer (`struct epoll_event` is packed on x86_64 only).
    static let eventStride = cepoll_event_size()

    static func create() throws -> Int32 {
        let fd = cepoll_create()
        guard fd >= 0 else { throw SocketError(operation: "epoll_create1", errno: errno) }
        return fd
    }

    /// Registers, changes or removes `fd`; `token` comes back with its events.
    @discardableResult
    static func control(_ epollFD: Int32, _ operation: Int32, _ fd: Int32, events: UInt32, token: UInt64) -> Int32 {
        cepoll_control(epollFD, operation, fd, events, token)
    }

    /// Waits for events into `buffer` (room for `capacity` events); returns the count or -1.
    static func wait(_ epollFD: Int32, _ buffer: UnsafeMutableRawPointer, capacity: Int, timeoutMilliseconds: Int32)
        -> Int32
    {
        cepoll_wait(epollFD, buffer, Int32(capacity), timeoutMilliseconds)
    }

    static func events(in buffer: UnsafeMutableRawPointer, at index: Int) -> (events: UInt32, token: UInt64) {
        (cepoll_event_flags(buffer, Int32(index)), cepoll_event_token(buffer, Int32(index)))
    }

    static func makeEventFD() throws -> Int32 {
        let fd = cepoll_make_event_fd()
        guard fd >= 0 else { throw SocketError(operation: "eventfd", errno: errno) }
        return fd
    }

    /// accept4 with non-blocking and close-on-exec set atomically.
    static func accept(_ listener: Int32, _ address: UnsafeMutablePointer<sockaddr>, _ length: inout socklen_t)
        -> Int32
    {
        cepoll_accept(listener, address, &length)
    }
}
