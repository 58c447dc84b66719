import EdgeSyncTestSupport
import Foundation
import HTTPCore
import Testing

/// A headless Chromium driven over the DevTools protocol, for what `--dump-dom` cannot do: press,
/// move and release the mouse, then ask the page what it did. The protocol runs over a WebSocket;
/// the few frames it needs (masked text out, text or continuation in, close) are written here.
///
/// Blocking on purpose: every call runs on a dedicated thread (`onDedicatedThread`) with a deadline.
final class DevToolsPage: @unchecked Sendable {  // used from one thread at a time: the test's
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let browser: ChildProcess
    private let socket: ClientSocket
    private var received: [UInt8] = []
    private var nextID = 1
    static let timeLimit = Duration.seconds(60)

    private init(browser: ChildProcess, socket: ClientSocket) {
        self.browser = browser
        self.socket = socket
    }

    deinit { browser.kill() }

    /// Starts Chromium on `url` with a DevTools port and attaches to the page.
    static func open(_ url: String, scratch: String) async throws -> DevToolsPage {
        guard let path = Chromium.path else { throw Failure(description: "\(Chromium.missingReason)") }
        let browser = try ChildProcess(
            URL(fileURLWithPath: path),
            [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                "--user-data-dir=\(scratch)/chromium-\(UUID().uuidString)", "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", url,
            ],
            environment: ["HOME": scratch])
        do {
            let line = try await browser.waitForLine { $0.contains("DevTools listening on ws://") }
            guard let address = line.split(separator: "ws://").last,
                let port = address.split(separator: "/").first?.split(separator: ":").last.flatMap({ Int($0) })
            else { throw Failure(description: "no DevTools port in \"\(line)\"") }
            return try await onDedicatedThread { try Self.attach(browser: browser, port: port) }
        } catch {
            browser.kill()
            throw error
        }
    }

    private static func attach(browser: ChildProcess, port: Int) throws -> DevToolsPage {
        let deadline = ContinuousClock.now + timeLimit
        // The page target appears once the first navigation has started.
        var path: String?
        while path == nil, ContinuousClock.now < deadline {
            let list = try BlockingHTTPClient(port: port).send(method: "GET", path: "/json/list", headers: [])
            let targets = (try? JSONSerialization.jsonObject(with: Data(list.body))) as? [[String: Any]] ?? []
            path = targets.first { $0["type"] as? String == "page" }
                .flatMap { $0["webSocketDebuggerUrl"] as? String }
                .flatMap { URL(string: $0)?.path }
        }
        guard let path else { throw Failure(description: "Chromium listed no page target") }
        let socket = try ClientSocket.connect(host: "127.0.0.1", port: port, timeout: .seconds(10))
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let request =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try socket.send(Array(request.utf8), before: deadline)
        let page = DevToolsPage(browser: browser, socket: socket)
        let head = try page.readUntilHeadersEnd(before: deadline)
        guard head.hasPrefix("HTTP/1.1 101") else { throw Failure(description: "WebSocket upgrade refused: \(head)") }
        return page
    }

    /// Sends a protocol command and returns its `result` (events that arrive meanwhile are skipped).
    @discardableResult
    func call(_ method: String, _ parameters: [String: Any] = [:]) throws -> [String: Any] {
        let deadline = ContinuousClock.now + Self.timeLimit
        let id = nextID
        nextID += 1
        let message = try JSONSerialization.data(withJSONObject: ["id": id, "method": method, "params": parameters])
        try socket.send(Self.maskedTextFrame(Array(message)), before: deadline)
        while true {
            let text = try readMessage(before: deadline)
            guard let object = (try? JSONSerialization.jsonObject(with: Data(text))) as? [String: Any],
                object["id"] as? Int == id
            else { continue }
            if let error = object["error"] { throw Failure(description: "\(method) failed: \(error)") }
            return object["result"] as? [String: Any] ?? [:]
        }
    }

    /// Evaluates `expression` in the page (awaiting it if it is a promise) and returns its JSON value.
    /// While the first navigation is still replacing the blank page there is no context to run in:
    /// that is retried (within the time limit), anything else is an error.
    func evaluate(_ expression: String) throws -> Any? {
        let deadline = ContinuousClock.now + Self.timeLimit
        var answer: [String: Any]?
        while answer == nil {
            do {
                answer = try call(
                    "Runtime.evaluate", ["expression": expression, "awaitPromise": true, "returnByValue": true])
            } catch let failure as Failure
                where failure.description.contains("context") && ContinuousClock.now < deadline
            {
                continue
            }
        }
        let result = answer ?? [:]
        if let exception = result["exceptionDetails"] { throw Failure(description: "script threw: \(exception)") }
        return (result["result"] as? [String: Any])?["value"]
    }

    /// Resolves when `condition` (a JavaScript expression) holds in the page, checked on every
    /// animation frame (a condition that throws, as on a page still loading, does not hold yet), or
    /// fails after `seconds`.
    func waitUntil(_ condition: String, seconds: Int = 30) throws {
        let holds = try evaluate(
            """
            new Promise((resolve) => {
              const deadline = Date.now() + \(seconds * 1000);
              const holds = () => { try { return Boolean(\(condition)); } catch (error) { return false; } };
              const check = () => {
                if (holds()) resolve(true);
                else if (Date.now() > deadline) resolve(false);
                else requestAnimationFrame(check);
              };
              check();
            })
            """)
        guard holds as? Bool == true else { throw Failure(description: "page never reached: \(condition)") }
    }

    /// A mouse drag with the left button from one viewport point to another, in steps.
    func drag(from start: (x: Double, y: Double), to end: (x: Double, y: Double), steps: Int = 8) throws {
        try call("Input.dispatchMouseEvent", ["type": "mouseMoved", "x": start.x, "y": start.y])
        try call(
            "Input.dispatchMouseEvent",
            ["type": "mousePressed", "x": start.x, "y": start.y, "button": "left", "buttons": 1, "clickCount": 1])
        for step in 1...steps {
            let fraction = Double(step) / Double(steps)
            try call(
                "Input.dispatchMouseEvent",
                [
                    "type": "mouseMoved", "x": start.x + (end.x - start.x) * fraction,
                    "y": start.y + (end.y - start.y) * fraction, "button": "left", "buttons": 1,
                ])
        }
        try call(
            "Input.dispatchMouseEvent",
            ["type": "mouseReleased", "x": end.x, "y": end.y, "button": "left", "buttons": 0, "clickCount": 1])
    }

    // MARK: WebSocket frames (RFC 6455)

    private func readUntilHeadersEnd(before deadline: ContinuousClock.Instant) throws -> String {
        let end: [UInt8] = [13, 10, 13, 10]
        while true {
            if let range = received.firstRange(of: end) {
                let head = String(decoding: received[..<range.lowerBound], as: UTF8.self)
                received.removeSubrange(..<range.upperBound)
                return head
            }
            try fill(before: deadline)
        }
    }

    /// The next whole text message (fragments joined); pings and other control frames are skipped.
    private func readMessage(before deadline: ContinuousClock.Instant) throws -> [UInt8] {
        var message: [UInt8] = []
        while true {
            while received.count < 2 { try fill(before: deadline) }
            let isFinal = received[0] & 0x80 != 0
            let opcode = received[0] & 0x0F
            var length = Int(received[1] & 0x7F)
            var headerLength = 2
            if length == 126 {
                while received.count < 4 { try fill(before: deadline) }
                length = Int(received[2]) << 8 | Int(received[3])
                headerLength = 4
            } else if length == 127 {
                while received.count < 10 { try fill(before: deadline) }
                length = received[2..<10].reduce(0) { $0 << 8 | Int($1) }
                headerLength = 10
            }
            guard length < 64 << 20 else { throw Failure(description: "a \(length)-byte WebSocket frame") }
            while received.count < headerLength + length { try fill(before: deadline) }
            let payload = Array(received[headerLength..<(headerLength + length)])
            received.removeSubrange(..<(headerLength + length))
            switch opcode {
            case 0x8: throw Failure(description: "Chromium closed the DevTools connection")
            case 0x9, 0xA: continue
            default:
                message += payload
                if isFinal { return message }
            }
        }
    }

    private func fill(before deadline: ContinuousClock.Instant) throws {
        guard let bytes = try socket.receive(before: deadline) else {
            throw Failure(description: "Chromium did not answer within \(Self.timeLimit)")
        }
        guard !bytes.isEmpty else { throw Failure(description: "Chromium closed the DevTools connection") }
        received += bytes
    }

    private static func maskedTextFrame(_ payload: [UInt8]) -> [UInt8] {
        var frame: [UInt8] = [0x81]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            frame += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        return frame
    }
}
