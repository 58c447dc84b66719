import EdgeSyncTestSupport
import Foundation
import Glibc
import Testing

@testable import HTTPCore

/// Runs blocking work (sockets, child processes) on its own thread, so tests never block the
/// cooperative pool the server's handlers need.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Starts a server on a free loopback port, runs `body`, then shuts the server down and waits for it.
func withServer<T: Sendable>(
    _ configuration: HTTPServer.Configuration = HTTPServer.Configuration(port: 0),
    responder: some HTTPResponder,
    _ body: (HTTPServer, HTTPServer.Address) async throws -> T
) async throws -> T {
    let server = HTTPServer(configuration: configuration, responder: responder)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        let address = try await server.localAddress
        do {
            let result = try await body(server, address)
            server.shutdown(grace: .milliseconds(200))
            try await group.waitForAll()
            return result
        } catch {
            server.shutdown(grace: .zero)
            try? await group.waitForAll()
            throw error
        }
    }
}

func withServer<T: Sendable>(
    _ configuration: HTTPServer.Configuration = HTTPServer.Configuration(port: 0),
    handler: @escaping @Sendable (HTTPRequest, HTTPRequestContext) async throws -> HTTPResponse,
    _ body: (HTTPServer, HTTPServer.Address) async throws -> T
) async throws -> T {
    try await withServer(configuration, responder: HTTPClosureResponder(handler), body)
}

/// A parsed response as a raw client saw it.
struct RawResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking TCP client for exact control over the bytes sent; every read is bounded by a timeout,
/// so a server bug fails the test instead of hanging it.
final class RawClient: @unchecked Sendable {
    // @unchecked: used by one test at a time, each call on a fresh thread that the caller awaits,
    // so calls never overlap.
    let fd: Int32
    private var buffer: [UInt8] = []

    init(_ address: HTTPServer.Address, readTimeoutSeconds: Int = 5, receiveBufferSize: Int32? = nil) throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address.host, String(address.port), &hints, &list) == 0, let info = list?.pointee else {
            throw TestFailure("cannot resolve \(address)")
        }
        defer { freeaddrinfo(list) }
        fd = socket(info.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: readTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if var size = receiveBufferSize {
            // Set before connecting, and it turns off autotuning: a fixed, small window.
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        guard Glibc.connect(fd, info.ai_addr, info.ai_addrlen) == 0 else {
            // No close here: a class whose init throws after storing every property is deinitialised,
            // and a second close could hit a descriptor another test has just opened.
            throw SocketError(operation: "connect \(address)", errno: errno)
        }
    }

    deinit { close(fd) }

    static func connect(
        _ address: HTTPServer.Address, readTimeoutSeconds: Int = 5, receiveBufferSize: Int32? = nil
    ) async throws -> RawClient {
        try await offPool {
            try RawClient(address, readTimeoutSeconds: readTimeoutSeconds, receiveBufferSize: receiveBufferSize)
        }
    }

    func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    /// Connects and sends `text` on one thread, so no scheduling delay can separate the two (a
    /// server's header timeout counts from the connection when nothing has arrived).
    static func connect(_ address: HTTPServer.Address, sending text: String) async throws -> RawClient {
        try await offPool {
            let client = try RawClient(address)
            try client.sendNow(Array(text.utf8))
            return client
        }
    }

    func send(_ bytes: [UInt8]) async throws {
        try await offPool { try self.sendNow(bytes) }
    }

    func sendNow(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                Glibc.send(self.fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw SocketError(operation: "send", errno: errno) }
            offset += sent
        }
    }

    /// Reads more bytes; false at end of stream.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &chunk, chunk.count, 0)
        if count > 0 {
            buffer += chunk[0..<count]
            return true
        }
        if count == 0 { return false }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw TestFailure("read timed out") }
        if errno == ECONNRESET { return false }
        throw SocketError(operation: "recv", errno: errno)
    }

    private func line() throws -> String {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let text = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return text.hasSuffix("\r") ? String(text.dropLast()) : text
            }
            guard try fill() else { throw TestFailure("connection closed mid-line") }
        }
    }

    private func bytes(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw TestFailure("connection closed mid-body") }
        }
        defer { buffer.removeSubrange(0..<count) }
        return Array(buffer[0..<count])
    }

    /// Reads one response (1xx included) framed by Content-Length, chunked coding or close.
    func readResponse(forHead: Bool = false) async throws -> RawResponse {
        try await offPool { try self.readResponseNow(forHead: forHead) }
    }

    private func readResponseNow(forHead: Bool) throws -> RawResponse {
        let statusLine = try line()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else {
            throw TestFailure("bad status line: \(statusLine)")
        }
        var headers = HTTPHeaders()
        while true {
            let field = try line()
            if field.isEmpty { break }
            guard let colon = field.firstIndex(of: ":") else { throw TestFailure("bad header: \(field)") }
            headers.add(String(field[..<colon]), field[field.index(after: colon)...].trimmingOptionalWhitespace())
        }
        var body: [UInt8] = []
        if forHead || status < 200 || status == 204 || status == 304 {
            // no body
        } else if headers["transfer-encoding"] == "chunked" {
            while true {
                let sizeLine = try line()
                guard let size = Int(sizeLine, radix: 16) else { throw TestFailure("bad chunk size: \(sizeLine)") }
                if size == 0 {
                    while try !line().isEmpty {}
                    break
                }
                body += try bytes(size)
                _ = try line()
            }
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            body = try bytes(length)
        } else {
            while try fill() {}
            body = buffer
            buffer = []
        }
        return RawResponse(status: status, headers: headers, body: body)
    }

    /// True when the server has closed the connection (end of stream or reset) with nothing unread.
    func isClosedByServer() async throws -> Bool {
        try await offPool {
            if !self.buffer.isEmpty { return false }
            return try !self.fill()
        }
    }

    func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }
}

/// External command-line clients; tests using them are disabled with a reason when one is missing.
enum Tool {
    static func path(_ name: String) -> String? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for directory in directories {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func exists(_ name: String) -> Bool {
        let found = path(name) != nil
        if !found { print("skipping tests that need \(name): not installed") }
        return found
    }

    struct Output: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a tool to completion on its own thread.
    static func run(_ name: String, _ arguments: [String], input: String? = nil) async throws -> Output {
        guard let executable = path(name) else { throw TestFailure("\(name) not installed") }
        return try await offPool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            let stdout = Pipe.closingOnExec()
            let stderr = Pipe.closingOnExec()
            let stdin = Pipe.closingOnExec()
            process.standardOutput = stdout
            process.standardError = stderr
            process.standardInput = stdin
            try process.run()
            if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
            try stdin.fileHandleForWriting.close()
            let out = stdout.fileHandleForReading.readDataToEndOfFile()
            let err = stderr.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return Output(
                status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                stderr: String(decoding: err, as: UTF8.self))
        }
    }
}
