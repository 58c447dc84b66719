import Glibc

/// epoll, eventfd and accept4, which the toolchain's Glibc module does not export.
///
/// The functions are looked up once with `dlsym` and called through `@convention(c)` pointers, so
/// the calling convention is exactly C's; the constants are Linux ABI values, identical on x86_64
/// and arm64. See Docs/decisions/0002-http-server-on-epoll.md for why this is not a C shim target.
enum Epoll {
    static let input: UInt32 = 0x001
    static let output: UInt32 = 0x004
    static let error: UInt32 = 0x008
    static let hangUp: UInt32 = 0x010

    static let add: Int32 = 1
    static let delete: Int32 = 2
    static let modify: Int32 = 3

    private static let closeOnExec: Int32 = 0o2_000_000  // O_CLOEXEC, EPOLL_CLOEXEC, EFD_CLOEXEC
    private static let nonBlocking: Int32 = 0o4_000  // O_NONBLOCK, EFD_NONBLOCK

    /// Size of `struct epoll_event`: packed on x86_64 only.
    #if arch(x86_64)
        static let eventStride = 12
        static let eventDataOffset = 4
    #else
        static let eventStride = 16
        static let eventDataOffset = 8
    #endif

    private typealias CreateFunction = @convention(c) (Int32) -> Int32
    private typealias ControlFunction = @convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32
    private typealias WaitFunction = @convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32
    private typealias EventFDFunction = @convention(c) (UInt32, Int32) -> Int32
    private typealias AcceptFunction =
        @convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32

    private struct Functions: @unchecked Sendable {
        // @unchecked: C function pointers, immutable after the one-time lookup; they capture nothing.
        let create: CreateFunction
        let control: ControlFunction
        let wait: WaitFunction
        let eventFD: EventFDFunction
        let accept: AcceptFunction
    }

    private static let functions: Functions? = {
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            guard let pointer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
            return unsafeBitCast(pointer, to: type)
        }
        guard let create = symbol("epoll_create1", as: CreateFunction.self),
            let control = symbol("epoll_ctl", as: ControlFunction.self),
            let wait = symbol("epoll_wait", as: WaitFunction.self),
            let eventFD = symbol("eventfd", as: EventFDFunction.self),
            let accept = symbol("accept4", as: AcceptFunction.self)
        else { return nil }
        return Functions(create: create, control: control, wait: wait, eventFD: eventFD, accept: accept)
    }()

    private static func resolved(_ name: String) throws -> Functions {
        guard let functions else { throw SocketError(operation: "dlsym \(name)", errno: ENOSYS) }
        return functions
    }

    static func create() throws -> Int32 {
        let fd = try resolved("epoll_create1").create(closeOnExec)
        guard fd >= 0 else { throw SocketError(operation: "epoll_create1", errno: errno) }
        return fd
    }

    /// Registers, changes or removes `fd`; `token` comes back with its events.
    @discardableResult
    static func control(_ epollFD: Int32, _ operation: Int32, _ fd: Int32, events: UInt32, token: UInt64) -> Int32 {
        guard let functions else { return -1 }
        var event = (UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &event) { raw in
            raw.storeBytes(of: events, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: token, toByteOffset: eventDataOffset, as: UInt64.self)
            return functions.control(epollFD, operation, fd, raw.baseAddress)
        }
    }

    /// Waits for events into `buffer` (room for `capacity` events); returns the count or -1.
    static func wait(_ epollFD: Int32, _ buffer: UnsafeMutableRawPointer, capacity: Int, timeoutMilliseconds: Int32)
        -> Int32
    {
        guard let functions else { return -1 }
        return functions.wait(epollFD, buffer, Int32(capacity), timeoutMilliseconds)
    }

    static func events(in buffer: UnsafeMutableRawPointer, at index: Int) -> (events: UInt32, token: UInt64) {
        let base = index * eventStride
        return (
            buffer.loadUnaligned(fromByteOffset: base, as: UInt32.self),
            buffer.loadUnaligned(fromByteOffset: base + eventDataOffset, as: UInt64.self)
        )
    }

    static func makeEventFD() throws -> Int32 {
        let fd = try resolved("eventfd").eventFD(0, nonBlocking | closeOnExec)
        guard fd >= 0 else { throw SocketError(operation: "eventfd", errno: errno) }
        return fd
    }

    /// accept4 with non-blocking and close-on-exec set atomically.
    static func accept(_ listener: Int32, _ address: UnsafeMutablePointer<sockaddr>, _ length: inout socklen_t)
        -> Int32
    {
        guard let functions else { return -1 }
        return functions.accept(listener, address, &length, nonBlocking | closeOnExec)
    }
}
