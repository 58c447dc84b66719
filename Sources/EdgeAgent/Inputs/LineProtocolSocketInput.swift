import Dispatch
import EdgeSyncLogging
import EdgeSyncProtocol
import Foundation
import HTTPCore
import Synchronization

/// Line protocol from devices that write to a socket: newline-delimited over TCP (a connection per
/// device, any number of lines) or one or more lines per UDP datagram.
///
/// There is no answer channel, so a bad line is logged with its connection and line number, counted,
/// and skipped; the lines around it are stored. Over TCP the input stops reading while the spool
/// refuses writes (full, disk full), so TCP flow control pushes back on the device and nothing is
/// lost. UDP cannot push back: a datagram that finds the spool full is dropped and counted.
///
/// Each connection is served by its own thread (devices are few and long-lived; the HTTP input is
/// the one for many clients), at most `maximumConnections` at once.
package final class LineProtocolSocketInput: Sendable {
    package enum Transport: String, Sendable {
        case tcp, udp
    }

    package struct Configuration: Sendable {
        package var transport: Transport
        package var host: String
        package var port: Int
        /// The unit of the lines' timestamps.
        package var precision = TimestampPrecision.nanoseconds
        package var maximumConnections = 64
        /// Readings gathered before an append; a pause in the stream appends what is there at once.
        package var blockReadings = 10_000
        /// Wait between retries while the spool refuses writes (TCP).
        package var retryDelay = Duration.seconds(1)

        package init(transport: Transport, host: String, port: Int) {
            self.transport = transport
            self.host = host
            self.port = port
        }
    }

    package struct Counters: Sendable {
        package var readingsStored = 0
        package var rejectedLines = 0
        package var skippedStringFields = 0
        package var roundedIntegers = 0
        package var droppedDatagrams = 0
        package var connections = 0
    }

    package let configuration: Configuration
    private let sink: any ReadingSink
    private let now: @Sendable () -> Int64
    private let logger: Logger
    private let state = Mutex(State())
    private let threads = DispatchGroup()

    private struct State {
        var listener: Int32 = -1
        var address: HTTPServer.Address?
        var connections: Set<Int32> = []
        var stopping = false
        var counters = Counters()
    }

    package init(
        configuration: Configuration, sink: any ReadingSink,
        now: @escaping @Sendable () -> Int64 = InputEndpoints.wallClock,
        logger: Logger = .discard
    ) {
        self.configuration = configuration
        self.sink = sink
        self.now = now
        self.logger = logger
    }

    package var counters: Counters { state.withLock { $0.counters } }

    /// Binds and starts serving on threads of its own; returns the bound address (port 0 picks one).
    package func start() throws -> HTTPServer.Address {
        let datagram = configuration.transport == .udp
        let (fd, address) = try Socket.listen(
            host: configuration.host, port: configuration.port, backlog: 128, datagram: datagram)
        // Threads block in accept/recv; stop() wakes them with shutdown(2).
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        state.withLock {
            $0.listener = fd
            $0.address = address
        }
        if datagram {
            spawn { self.receiveDatagrams(fd) }
        } else {
            spawn { self.acceptConnections(fd) }
        }
        return address
    }

    /// Stops accepting, ends every connection once the lines the kernel already holds are stored, and
    /// waits. A device that half-closes its connection (`shutdown(SHUT_WR)`) and reads until end of
    /// file knows every line it sent is durable: the agent closes only after storing them.
    package func stop() {
        let listener = state.withLock { state -> Int32 in
            state.stopping = true
            return state.listener
        }
        // Wakes the accepting thread (TCP) or the receiver (UDP). TCP connections notice `stopping`
        // themselves and first store what the kernel already holds for them (see `serve`).
        if listener >= 0 { shutdown(listener, Int32(SHUT_RDWR)) }
        threads.wait()
        if listener >= 0 { close(listener) }
    }

    /// Serves what `start()` bound until the task is cancelled, then stops (on a thread of its own:
    /// stopping joins connection threads that may be waiting on the spool).
    package func run() async {
        await waitForCancellation()
        await awaitBlocking { self.stop() }
    }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        threads.enter()
        let thread = Thread { [threads] in
            body()
            threads.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    // MARK: TCP

    private func acceptConnections(_ listener: Int32) {
        while true {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    accept(listener, $0, &length)
                }
            }
            if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EMFILE || errno == ENFILE {
                    logger.error("accept_failed", ["input": "tcp", "error": .quoted("too many open files")])
                    Thread.sleep(forTimeInterval: 0.1)
                    continue
                }
                return  // shut down
            }
            let peer = Socket.describe(storage)?.description ?? "unknown"
            let admitted = state.withLock { state -> Bool in
                guard !state.stopping, state.connections.count < configuration.maximumConnections else { return false }
                state.connections.insert(fd)
                state.counters.connections += 1
                return true
            }
            guard admitted else {
                logger.warning(
                    "connection_refused", ["input": "tcp", "remote": "\(peer)", "reason": .quoted("connection limit")])
                close(fd)
                continue
            }
            spawn { self.serve(fd, peer: peer) }
        }
    }

    private func serve(_ fd: Int32, peer: String) {
        defer {
            state.withLock { _ = $0.connections.remove(fd) }
            close(fd)
        }
        var parser = LineProtocolParser(precision: configuration.precision)
        var block = ReadingBlock()
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var lineNumber = 1
        var stoppingSince: ContinuousClock.Instant?
        var endOfFile = false
        var lost = false
        // A device that sees its connection reset (not a clean end of file) knows lines were lost.
        defer { if lost { Self.resetOnClose(fd) } }
        while true {
            // Wake up now and then to notice a stop. Once stopping, keep reading while data is
            // waiting (what the device sent before the stop is stored), for at most two seconds.
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 250)
            if stoppingSince == nil, state.withLock({ $0.stopping }) { stoppingSince = .now }
            if let since = stoppingSince, ready == 0 || ContinuousClock.now - since > .seconds(2) { break }
            if ready == 0 || (ready < 0 && errno == EINTR) { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                endOfFile = count == 0
                break
            }
            pending.append(contentsOf: buffer[0..<count])
            guard let lastNewline = pending.lastIndex(of: 0x0A) else {
                if pending.count > LineProtocolParser.maximumLineBytes {
                    reject(InputError(line: lineNumber, "the line is longer than \(LineProtocolParser.maximumLineBytes) bytes; the connection is closed"), peer: peer)
                    pending.removeAll()
                    lost = true
                    break
                }
                continue
            }
            parse(pending[0..<lastNewline], parser: &parser, lineNumber: &lineNumber, into: &block, peer: peer)
            pending.removeSubrange(0...lastNewline)
            // Append when the block is large or the device paused (the read did not fill the buffer).
            if block.count >= configuration.blockReadings || count < buffer.count {
                guard storeRetrying(&block, peer: peer) else {
                    lost = true
                    return
                }
            }
        }
        // A last line without a newline is complete only when the device closed its side; when the
        // agent stops, it is the start of a line still on its way, and is not stored.
        if endOfFile, !pending.isEmpty {
            parse(pending[...], parser: &parser, lineNumber: &lineNumber, into: &block, peer: peer)
        } else if !pending.isEmpty {
            lost = true
            logger.warning(
                "partial_line_dropped",
                ["input": "tcp", "remote": "\(peer)", "bytes": "\(pending.count)", "reason": .quoted("stopping")])
        }
        if !storeRetrying(&block, peer: peer) { lost = true }
    }

    /// `SO_LINGER` 0: `close` sends a reset instead of a clean end of file.
    private static func resetOnClose(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
    }

    /// Parses complete lines, skipping (and reporting) bad ones.
    private func parse(
        _ text: ArraySlice<UInt8>, parser: inout LineProtocolParser, lineNumber: inout Int,
        into block: inout ReadingBlock, peer: String
    ) {
        var start = text.startIndex
        while start < text.endIndex {
            let end = text[start...].firstIndex(of: 0x0A) ?? text.endIndex
            do {
                try parser.parse(text[start..<end], lineNumber: lineNumber, defaultTimestamp: now(), into: &block)
            } catch {
                reject(error, peer: peer)
            }
            lineNumber += 1
            start = end + 1
        }
        if parser.skippedStringFields > 0 || parser.roundedIntegers > 0 {
            state.withLock {
                $0.counters.skippedStringFields += parser.skippedStringFields
                $0.counters.roundedIntegers += parser.roundedIntegers
            }
            parser.skippedStringFields = 0
            parser.roundedIntegers = 0
        }
    }

    private func reject(_ error: InputError, peer: String) {
        state.withLock { $0.counters.rejectedLines += 1 }
        logger.warning(
            "bad_line",
            ["input": "\(configuration.transport.rawValue)", "remote": "\(peer)", "error": .quoted(error.description)])
    }

    /// Appends the block, retrying while the spool refuses for a retryable reason; false when stopping.
    private func storeRetrying(_ block: inout ReadingBlock, peer: String) -> Bool {
        guard !block.isEmpty else { return true }
        while true {
            switch sink.appendBlocking(block) {
            case .success:
                state.withLock { $0.counters.readingsStored += block.count }
                block.removeAll()
                return true
            case .failure(let error) where error.isRetryable:
                logger.warning(
                    "spool_refused",
                    [
                        "input": "tcp", "remote": "\(peer)", "readings": "\(block.count)", "error": .quoted(error.message),
                        "action": .quoted("holding the connection and retrying"),
                    ])
                if state.withLock({ $0.stopping }) {
                    logger.error(
                        "lines_not_stored",
                        [
                            "input": "tcp", "remote": "\(peer)", "readings": "\(block.count)",
                            "reason": .quoted("stopping while the spool refuses writes"),
                        ])
                    return false
                }
                Thread.sleep(forTimeInterval: Double(configuration.retryDelay.components.seconds) + Double(configuration.retryDelay.components.attoseconds) / 1e18)
            case .failure(let error):
                logger.error(
                    "lines_not_stored",
                    ["input": "tcp", "remote": "\(peer)", "readings": "\(block.count)", "error": .quoted(error.message)])
                block.removeAll()
                return false
            }
        }
    }

    // MARK: UDP

    private func receiveDatagrams(_ fd: Int32) {
        var parser = LineProtocolParser(precision: configuration.precision)
        var block = ReadingBlock()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var datagrams = 0
        while true {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            // Block for the first datagram, then drain whatever else is queued into the same append.
            let flags = block.isEmpty ? Int32(0) : Int32(MSG_DONTWAIT)
            let count = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(fd, bytes.baseAddress, bytes.count, flags, $0, &length)
                    }
                }
            }
            if count < 0, errno == EINTR { continue }
            if count <= 0 {
                let wouldBlock = count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
                storeOrDrop(&block, datagrams: datagrams)
                datagrams = 0
                if wouldBlock { continue }
                if state.withLock({ $0.stopping }) { return }
                continue
            }
            let peer = Socket.describe(storage)?.description ?? "unknown"
            var lineNumber = 1
            parse(buffer[0..<count], parser: &parser, lineNumber: &lineNumber, into: &block, peer: peer)
            datagrams += 1
            if block.count >= configuration.blockReadings {
                storeOrDrop(&block, datagrams: datagrams)
                datagrams = 0
            }
        }
    }

    private func storeOrDrop(_ block: inout ReadingBlock, datagrams: Int) {
        guard !block.isEmpty else { return }
        switch sink.appendBlocking(block) {
        case .success:
            state.withLock { $0.counters.readingsStored += block.count }
        case .failure(let error):
            state.withLock { $0.counters.droppedDatagrams += datagrams }
            logger.error(
                "datagrams_dropped",
                ["input": "udp", "datagrams": "\(datagrams)", "readings": "\(block.count)", "error": .quoted(error.message)])
        }
        block.removeAll()
    }
}
