import Glibc
import Synchronization

/// Runs one request through the responder and sends the response; runs as a task, off the loop.
enum Exchange {
    private static let plainText: HTTPHeaders = ["Content-Type": "text/plain; charset=utf-8"]
    private static let framingFieldNames = ["Content-Length", "Transfer-Encoding", "Connection"]

    static func run(
        request: HTTPRequest, context: HTTPRequestContext, responder: any HTTPResponder,
        connection: ConnectionHandle, flags: ServerFlags
    ) async {
        var response: HTTPResponse
        do {
            response = try await responder.respond(to: request, context: context)
        } catch let error as any HTTPResponseError {
            response = errorResponse(error)
        } catch {
            logToStandardError("\(request.method) \(request.path): handler failed: \(error)")
            response = HTTPResponse(status: .internalServerError)
        }
        if let problem = invalidHeader(in: response.headers) {
            logToStandardError("\(request.method) \(request.path): handler sent an invalid header (\(problem))")
            response = HTTPResponse(status: .internalServerError)
        }
        // A body that failed while the handler ran (malformed chunked coding, too large, too slow)
        // decides the answer, whatever the handler made of the error (swallowed it, wrapped it into a
        // 500): the client gets that error's status, and the connection closes, since where the next
        // request would start is unknown.
        let bodyFailure = request.body.failure
        if let bodyFailure, bodyFailure != .connectionClosed {
            response = errorResponse(bodyFailure)
        }
        await send(
            response, for: request.head, connection: connection,
            mustClose: flags.isDraining.load(ordering: .relaxed) || bodyFailure != nil)
    }

    static func errorResponse(_ error: any HTTPResponseError) -> HTTPResponse {
        var headers = error.responseHeaders
        var bytes: [UInt8] = []
        if let message = error.responseMessage {
            bytes = Array((message + "\n").utf8)
            headers.set("Content-Type", "text/plain; charset=utf-8")
        }
        return HTTPResponse(status: error.status, headers: headers, body: .bytes(bytes))
    }

    /// The bytes the loop sends itself for a request that failed before reaching a handler.
    static func errorResponseBytes(for error: HTTPError) -> [UInt8] {
        let body = Array((error.detail + "\n").utf8)
        return encodeHead(status: error.status, headers: plainText, framing: .length(body.count), connection: "close")
            + body
    }

    private static func send(
        _ response: HTTPResponse, for head: HTTPRequestHead, connection: ConnectionHandle, mustClose: Bool
    ) async {
        var headers = response.headers
        let asksToClose = headers.listElements(for: "connection").contains("close")
        // Framing is the server's: drop what a handler set (checking first avoids copying the fields).
        for name in framingFieldNames where headers.contains(name) {
            headers.remove(name)
        }
        var keepAlive = head.isKeepAlive && !mustClose && !asksToClose
        let omitsBody = head.method == "HEAD" || response.status.forbidsBody

        switch response.body {
        case .bytes(let bytes):
            var out = encodeHead(
                status: response.status, headers: headers,
                framing: response.status.forbidsBody ? .none : .length(bytes.count),
                connection: connectionValue(keepAlive: keepAlive, version: head.version),
                reserving: omitsBody ? 0 : bytes.count)
            if !omitsBody { out += bytes }
            connection.post(.write(connection.id, out, ending: keepAlive ? .keepAlive : .close, ack: nil))

        case .stream(let produce):
            // HTTP/1.0 has no chunked coding: the body ends when the connection does.
            let isChunked = head.version.minor >= 1 && !omitsBody
            if !isChunked && !omitsBody { keepAlive = false }
            let ending: LoopMessage.Ending = keepAlive ? .keepAlive : .close
            let encoded = encodeHead(
                status: response.status, headers: headers, framing: isChunked ? .chunked : .none,
                connection: connectionValue(keepAlive: keepAlive, version: head.version))
            connection.post(.write(connection.id, encoded, ending: nil, ack: nil))
            if omitsBody {
                connection.post(.write(connection.id, [], ending: ending, ack: nil))
                return
            }
            do {
                try await produce(
                    HTTPResponseBodyWriter(connection: connection, isChunked: isChunked))
                let last: [UInt8] = isChunked ? Array("0\r\n\r\n".utf8) : []
                connection.post(.write(connection.id, last, ending: ending, ack: nil))
            } catch {
                if !(error is HTTPError) {
                    logToStandardError("\(head.method) \(head.path): response stream failed: \(error)")
                }
                connection.post(.abort(connection.id))
            }
        }
    }

    /// The `Connection` header value to send, if any: `close` when closing, `keep-alive` when an
    /// HTTP/1.0 client asked to keep the connection (1.1 keeps it by default).
    private static func connectionValue(keepAlive: Bool, version: HTTPVersion) -> String? {
        if !keepAlive { return "close" }
        return version.minor == 0 ? "keep-alive" : nil
    }

    enum Framing {
        case none
        case length(Int)
        case chunked
    }

    /// Status line and header section as bytes, with the server's `Date`, framing and `Connection`.
    static func encodeHead(
        status: HTTPStatus, headers: HTTPHeaders, framing: Framing = .none, connection: String? = nil,
        reserving extra: Int = 0
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + headers.count * 48 + extra)
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        appendDecimal(status.code, to: &out)
        out.append(0x20)
        out.append(contentsOf: status.reason.utf8)
        out.append(contentsOf: "\r\nDate: ".utf8)
        out.append(contentsOf: HTTPDate.now().utf8)
        out.append(contentsOf: "\r\n".utf8)
        for field in headers {
            out.append(contentsOf: field.name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: field.value.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        switch framing {
        case .none:
            break
        case .length(let length):
            out.append(contentsOf: "Content-Length: ".utf8)
            appendDecimal(length, to: &out)
            out.append(contentsOf: "\r\n".utf8)
        case .chunked:
            out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
        }
        if let connection {
            out.append(contentsOf: "Connection: ".utf8)
            out.append(contentsOf: connection.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        out.append(contentsOf: "\r\n".utf8)
        return out
    }

    /// Appends a non-negative integer's ASCII digits (no intermediate `String` per response).
    private static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        guard value > 0 else {
            out.append(0x30)
            return
        }
        var divisor = 1
        while divisor <= value / 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            out.append(UInt8(truncatingIfNeeded: 0x30 + rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }

    /// A header a handler set that would corrupt the response (response splitting), if any.
    private static func invalidHeader(in headers: HTTPHeaders) -> String? {
        for field in headers {
            if field.name.isEmpty || field.name.utf8.contains(where: { $0 <= 0x20 || $0 == 0x3A || $0 >= 0x7F }) {
                return "name \"\(field.name)\""
            }
            if field.value.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) {
                return "value of \(field.name)"
            }
        }
        return nil
    }
}

/// The `Date` header value, formatted at most once a second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func now() -> String {
        let seconds = time(nil)
        return cache.withLock { cache in
            if cache.second == seconds { return cache.text }
            var clock = seconds
            var parts = tm()
            gmtime_r(&clock, &parts)
            func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
            let text =
                "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) "
                + "\(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
            cache = (seconds, text)
            return text
        }
    }
}
