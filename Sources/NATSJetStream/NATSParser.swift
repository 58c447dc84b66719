import Foundation

/// Frames the bytes a NATS server sends into operations, incrementally and without I/O: feed
/// whatever arrived with `append`, then take operations with `next()` until it returns nil.
///
/// Limits are checked before anything is buffered past them: a control line longer than
/// `maximumControlLine` or a payload larger than `maximumPayload` is a violation, never an
/// allocation the server chose.
package struct NATSParser: Sendable {
    package let maximumControlLine: Int
    package let maximumPayload: Int
    private var buffer: [UInt8] = []
    private var start = 0

    package init(maximumControlLine: Int = 4096, maximumPayload: Int = 8 << 20) {
        self.maximumControlLine = maximumControlLine
        self.maximumPayload = maximumPayload
    }

    /// Bytes received and not yet framed.
    package var bufferedCount: Int { buffer.count - start }

    package mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeSubrange(..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete operation, or nil when more bytes are needed.
    package mutating func next() throws(NATSProtocolViolation) -> NATSServerOperation? {
        guard let lineEnd = findLineEnd() else {
            // No CRLF starts within the limit, except that a legal line of exactly
            // `maximumControlLine` bytes may have its CR as the last byte here, its LF on the way.
            let cutAfterCR = bufferedCount == maximumControlLine + 1 && buffer[buffer.count - 1] == 13
            if bufferedCount > maximumControlLine, !cutAfterCR {
                throw NATSProtocolViolation("control line longer than \(maximumControlLine) bytes")
            }
            return nil
        }
        guard lineEnd - start <= maximumControlLine else {
            throw NATSProtocolViolation("control line longer than \(maximumControlLine) bytes")
        }
        let line = buffer[start..<lineEnd]
        let (verb, rest) = Self.split(line)
        switch Self.upper(verb) {
        case "PING" where rest.isEmpty:
            start = lineEnd + 2
            return .ping
        case "PONG" where rest.isEmpty:
            start = lineEnd + 2
            return .pong
        case "+OK" where rest.isEmpty:
            start = lineEnd + 2
            return .ok
        case "-ERR":
            start = lineEnd + 2
            var text = String(decoding: rest, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            if text.count >= 2, text.hasPrefix("'"), text.hasSuffix("'") { text = String(text.dropFirst().dropLast()) }
            return .error(text)
        case "INFO":
            let info: NATSServerInfo
            do {
                info = try JSONDecoder().decode(NATSServerInfo.self, from: Data(rest))
            } catch {
                throw NATSProtocolViolation("INFO is not the JSON object the protocol defines")
            }
            start = lineEnd + 2
            return .info(info)
        case "MSG":
            return try message(arguments: Self.fields(rest), lineEnd: lineEnd, hasHeaders: false)
        case "HMSG":
            return try message(arguments: Self.fields(rest), lineEnd: lineEnd, hasHeaders: true)
        default:
            let shown = String(decoding: line.prefix(32), as: UTF8.self).unicodeScalars
                .map { $0.isASCII && $0.value >= 32 && $0.value < 127 ? String($0) : "?" }.joined()
            throw NATSProtocolViolation("unknown operation '\(shown)'")
        }
    }

    /// `MSG <subject> <sid> [reply] <size>` or `HMSG <subject> <sid> [reply] <header size> <total size>`.
    private mutating func message(arguments: [ArraySlice<UInt8>], lineEnd: Int, hasHeaders: Bool) throws(NATSProtocolViolation)
        -> NATSServerOperation?
    {
        let sizeCount = hasHeaders ? 2 : 1
        guard arguments.count == 2 + sizeCount || arguments.count == 3 + sizeCount else {
            throw NATSProtocolViolation("\(hasHeaders ? "HMSG" : "MSG") with \(arguments.count) arguments")
        }
        let sizes = arguments.suffix(sizeCount).map(Self.decimal)
        guard let total = sizes.last ?? nil, let headerSize = hasHeaders ? sizes.first ?? nil : 0 else {
            throw NATSProtocolViolation("message size is not a decimal number")
        }
        guard total <= maximumPayload else {
            throw NATSProtocolViolation("message of \(total) bytes exceeds the \(maximumPayload)-byte limit")
        }
        guard headerSize <= total else { throw NATSProtocolViolation("header size \(headerSize) exceeds total size \(total)") }
        let bodyStart = lineEnd + 2
        guard buffer.count - bodyStart >= total + 2 else { return nil }
        guard buffer[bodyStart + total] == 13, buffer[bodyStart + total + 1] == 10 else {
            throw NATSProtocolViolation("message body is not followed by CRLF")
        }
        var message = NATSMessage(
            subject: String(decoding: arguments[0], as: UTF8.self),
            subscription: String(decoding: arguments[1], as: UTF8.self),
            replyTo: arguments.count == 3 + sizeCount ? String(decoding: arguments[2], as: UTF8.self) : nil,
            payload: Array(buffer[(bodyStart + headerSize)..<(bodyStart + total)]))
        if hasHeaders { try Self.parseHeaders(buffer[bodyStart..<(bodyStart + headerSize)], into: &message) }
        start = bodyStart + total + 2
        return .message(message)
    }

    /// `NATS/1.0[ status[ description]]\r\n(Name: value\r\n)*\r\n`, read as bytes (in a Swift
    /// string CR LF is one character, which would blur the framing).
    private static func parseHeaders(_ block: ArraySlice<UInt8>, into message: inout NATSMessage) throws(NATSProtocolViolation) {
        let bytes = Array(block)
        guard bytes.count >= 12, bytes.suffix(4).elementsEqual([13, 10, 13, 10]) else {
            throw NATSProtocolViolation("headers block does not end with an empty line")
        }
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = 0
        var index = 0
        let end = bytes.count - 2  // the final empty line
        while index + 1 < end {
            if bytes[index] == 13, bytes[index + 1] == 10 {
                lines.append(bytes[lineStart..<index])
                index += 2
                lineStart = index
            } else {
                guard bytes[index] != 13, bytes[index] != 10 else { throw NATSProtocolViolation("a bare CR or LF in headers") }
                index += 1
            }
        }
        guard lineStart == end, let version = lines.first, version.starts(with: Array("NATS/1.0".utf8)) else {
            throw NATSProtocolViolation("headers block without NATS/1.0")
        }
        let status = String(decoding: version.dropFirst(8), as: UTF8.self).trimmingCharacters(in: .whitespaces)
        if !status.isEmpty {
            let code = status.prefix { $0.isASCII && $0.isNumber }
            guard code.count == 3, let value = Int(code) else { throw NATSProtocolViolation("headers status '\(status.prefix(16))'") }
            message.status = value
            message.statusDescription = status.dropFirst(3).trimmingCharacters(in: .whitespaces)
        }
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon != line.startIndex else {
                throw NATSProtocolViolation("header line without a name")
            }
            message.headers.append(
                (String(decoding: line[..<colon], as: UTF8.self),
                 String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingCharacters(in: .whitespaces)))
        }
    }

    private func findLineEnd() -> Int? {
        var index = start
        let limit = min(buffer.count - 1, start + maximumControlLine + 1)
        while index < limit {
            if buffer[index] == 13, buffer[index + 1] == 10 { return index }
            index += 1
        }
        return nil
    }

    private static func split(_ line: ArraySlice<UInt8>) -> (ArraySlice<UInt8>, ArraySlice<UInt8>) {
        guard let space = line.firstIndex(where: { $0 == 32 || $0 == 9 }) else { return (line, line[line.endIndex...]) }
        return (line[..<space], line[(space + 1)...])
    }

    private static func fields(_ text: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        text.split(whereSeparator: { $0 == 32 || $0 == 9 })
    }

    private static func upper(_ verb: ArraySlice<UInt8>) -> String {
        String(decoding: verb.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }, as: UTF8.self)
    }

    /// A non-negative decimal of at most 10 digits (sizes are bounded by the payload limit anyway).
    private static func decimal(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 10 else { return nil }
        var value = 0
        for digit in digits {
            guard digit >= 48, digit <= 57 else { return nil }
            value = value * 10 + Int(digit - 48)
        }
        return value
    }
}
