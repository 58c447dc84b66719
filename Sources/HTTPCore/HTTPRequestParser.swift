/// An incremental RFC 9112 request parser: bytes in, request events out, no I/O.
///
/// Feed bytes as they arrive with `append(_:)` in any chunking, then call `next()` until it returns
/// `nil` ("need more bytes"). Each request yields one `.head`, zero or more `.body` pieces and one
/// `.end`; pipelined requests follow one another. The first error puts the parser in a failed state:
/// every later `next()` throws the same error, because after a framing error the position of the next
/// request is unknowable and the connection must be closed.
///
/// The parser is strict where leniency enables request smuggling: it rejects bare CR or LF, obsolete
/// line folding, whitespace before the colon, `Content-Length` together with `Transfer-Encoding`,
/// conflicting lengths and any transfer coding other than a final `chunked`.
public struct HTTPRequestParser: Sendable {
    /// Size limits; exceeding one fails the request with the status named on each property.
    public struct Limits: Sendable, Equatable {
        /// Longest request line in bytes, without CRLF (414).
        public var maxRequestLineLength: Int = 8 * 1024
        /// Largest header section (or trailer section) in bytes, each line counted with its CRLF (431).
        public var maxHeaderBytes: Int = 32 * 1024
        /// Most header fields in one request, also applied to trailers (431).
        public var maxHeaderCount: Int = 100
        /// Largest body, declared or received (413).
        public var maxBodyBytes: Int = 16 * 1024 * 1024

        public init(
            maxRequestLineLength: Int = 8 * 1024, maxHeaderBytes: Int = 32 * 1024, maxHeaderCount: Int = 100,
            maxBodyBytes: Int = 16 * 1024 * 1024
        ) {
            self.maxRequestLineLength = maxRequestLineLength
            self.maxHeaderBytes = maxHeaderBytes
            self.maxHeaderCount = maxHeaderCount
            self.maxBodyBytes = maxBodyBytes
        }
    }

    /// One step of a request.
    public enum Event: Sendable, Equatable {
        case head(HTTPRequestHead)
        /// The next piece of the body, already stripped of chunk framing.
        case body([UInt8])
        /// The request is complete; trailers are empty unless a chunked body carried some.
        case end(trailers: HTTPHeaders)
    }

    private enum State: Sendable {
        case requestLine
        case headerLines
        case fixedBody(remaining: Int)
        case chunkSizeLine
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailerLines
        case endPending
        case failed(HTTPError)
    }

    /// The request line and fields gathered while the header section is still arriving.
    private struct PartialHead: Sendable {
        var method: String
        var target: String
        var version: HTTPVersion
        var headers = HTTPHeaders()
    }

    private static let chunkSizeLineLimit = 1024
    private static let versionPrefix = Array("HTTP/".utf8)
    private static let cr: UInt8 = 0x0D
    private static let lf: UInt8 = 0x0A

    public let limits: Limits
    private var state = State.requestLine
    private var buffer: [UInt8] = []
    /// Start of the unconsumed bytes in `buffer`.
    private var readIndex = 0
    /// Where the search for the next LF resumes, so a line fed byte by byte is scanned once.
    private var scanIndex = 0
    private var partial: PartialHead?
    private var trailers = HTTPHeaders()
    /// Bytes of the current header or trailer section so far.
    private var sectionBytes = 0
    /// Body bytes of the current request so far.
    private var bodyBytes = 0

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Bytes appended but not yet consumed by `next()`.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// True when no byte of a next request has been consumed or buffered: the connection is idle.
    public var isIdle: Bool {
        if case .requestLine = state { return bufferedByteCount == 0 }
        return false
    }

    /// True while the current request's body is still being parsed (after its head, before its end).
    public var isInBody: Bool {
        switch state {
        case .fixedBody, .chunkSizeLine, .chunkData, .chunkDataEnd, .trailerLines, .endPending: true
        default: false
        }
    }

    /// Adds received bytes; call `next()` afterwards.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Adds received bytes straight from a read buffer.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        buffer.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
    }

    /// Drops consumed bytes; keeps a small buffer's capacity, releases a large one so idle
    /// connections stay cheap.
    private mutating func compact() {
        guard readIndex > 0 else { return }
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 16 * 1024)
        } else if readIndex >= 4096 && readIndex * 2 >= buffer.count {
            buffer.removeSubrange(0..<readIndex)
        } else {
            return
        }
        scanIndex -= readIndex
        readIndex = 0
    }

    /// The next event, or `nil` when more bytes are needed.
    ///
    /// - Throws: `HTTPError` whose status is the response the request deserves; the connection
    ///   must be closed after sending it.
    public mutating func next() throws(HTTPError) -> Event? {
        do {
            return try step()
        } catch {
            state = .failed(error)
            return try step()
        }
    }

    private mutating func step() throws(HTTPError) -> Event? {
        while true {
            switch state {
            case .failed(let error):
                throw error

            case .requestLine:
                let limit = limits.maxRequestLineLength
                guard let line = try nextLine(limit: limit, overflow: HTTPError.requestLineTooLong(limit: limit)) else {
                    return nil
                }
                // RFC 9112 §2.2: ignore empty lines before the request line.
                if line.isEmpty { continue }
                partial = try parseRequestLine(line)
                sectionBytes = 0
                state = .headerLines

            case .headerLines:
                guard let line = try nextSectionLine(of: "header", fieldCount: partial?.headers.count ?? 0) else {
                    return nil
                }
                guard case .field(let field) = line else { return .head(try finishHead()) }
                guard var head = partial else { throw HTTPError.malformed("header without request line") }
                partial = nil  // keeps `headers` uniquely referenced while appending
                head.headers.add(field.name, field.value)
                partial = head

            case .fixedBody(let remaining):
                guard let piece = takeBody(upTo: remaining) else { return nil }
                state = remaining == piece.count ? .endPending : .fixedBody(remaining: remaining - piece.count)
                return .body(piece)

            case .chunkSizeLine:
                let limit = Self.chunkSizeLineLimit
                guard let line = try nextLine(limit: limit, overflow: .malformed("chunk size line too long")) else {
                    return nil
                }
                let size = try parseChunkSize(line)
                guard size <= limits.maxBodyBytes - bodyBytes else {
                    throw HTTPError.bodyTooLarge(limit: limits.maxBodyBytes)
                }
                if size == 0 {
                    trailers = HTTPHeaders()
                    sectionBytes = 0
                    state = .trailerLines
                } else {
                    state = .chunkData(remaining: size)
                }

            case .chunkData(let remaining):
                guard let piece = takeBody(upTo: remaining) else { return nil }
                bodyBytes += piece.count
                state = remaining == piece.count ? .chunkDataEnd : .chunkData(remaining: remaining - piece.count)
                return .body(piece)

            case .chunkDataEnd:
                let available = bufferedByteCount
                if available >= 1 && buffer[readIndex] != Self.cr {
                    throw HTTPError.malformed("chunk data not followed by CRLF")
                }
                guard available >= 2 else { return nil }
                guard buffer[readIndex + 1] == Self.lf else {
                    throw HTTPError.malformed("chunk data not followed by CRLF")
                }
                readIndex += 2
                scanIndex = readIndex
                state = .chunkSizeLine

            case .trailerLines:
                guard let line = try nextSectionLine(of: "trailer", fieldCount: trailers.count) else { return nil }
                guard case .field(let field) = line else {
                    let finished = trailers
                    trailers = HTTPHeaders()
                    resetForNextRequest()
                    return .end(trailers: finished)
                }
                trailers.add(field.name, field.value)

            case .endPending:
                resetForNextRequest()
                return .end(trailers: HTTPHeaders())
            }
        }
    }

    private mutating func resetForNextRequest() {
        state = .requestLine
        bodyBytes = 0
        sectionBytes = 0
        partial = nil
    }

    private enum SectionLine {
        case field(HTTPHeaders.Field)
        /// The empty line that ends the section.
        case end
    }

    /// The next line of a header or trailer section (`section` names it in errors), counted against
    /// the section's byte and field limits; `nil` if no complete line has arrived yet.
    private mutating func nextSectionLine(of section: String, fieldCount: Int) throws(HTTPError) -> SectionLine? {
        let limit = limits.maxHeaderBytes
        guard
            let line = try nextLine(
                limit: limit - sectionBytes,
                overflow: HTTPError.headersTooLarge("\(section) section larger than \(limit) bytes"))
        else { return nil }
        sectionBytes += line.count + 2
        if line.isEmpty { return .end }
        let field = try parseField(line)
        guard fieldCount < limits.maxHeaderCount else {
            throw HTTPError.headersTooLarge("more than \(limits.maxHeaderCount) \(section) fields")
        }
        return .field(field)
    }

    /// Up to `remaining` buffered body bytes, consumed; `nil` when none are buffered.
    private mutating func takeBody(upTo remaining: Int) -> [UInt8]? {
        let count = min(remaining, bufferedByteCount)
        guard count > 0 else { return nil }
        let piece = Array(buffer[readIndex..<readIndex + count])
        readIndex += count
        scanIndex = readIndex
        return piece
    }

    /// The next line without its CRLF, consumed; `nil` if no LF has arrived yet.
    ///
    /// Every line must end in CRLF: a LF without CR is rejected (RFC 9112 §2.2 allows leniency, which
    /// is exactly what smuggling exploits). A CR elsewhere is caught by the callers' character checks.
    private mutating func nextLine(limit: Int, overflow: @autoclosure () -> HTTPError) throws(HTTPError) -> Range<Int>?
    {
        let start = readIndex
        let end = buffer.count
        var newline = -1
        var index = max(scanIndex, start)
        buffer.withUnsafeBufferPointer { bytes in
            while index < end {
                if bytes[index] == Self.lf {
                    newline = index
                    return
                }
                index += 1
            }
        }
        guard newline >= 0 else {
            scanIndex = end
            // The line so far may still end in the CR of its CRLF.
            if end - start > limit + 1 { throw overflow() }
            return nil
        }
        // Length before form: a line that ran past the limit fails as too long whether its LF came in
        // the same read or a later one, so the answer never depends on how TCP cut the bytes.
        if newline - start > limit + 1 { throw overflow() }
        guard newline > start, buffer[newline - 1] == Self.cr else {
            throw HTTPError.malformed("line ends in LF without CR")
        }
        let line = start..<(newline - 1)
        if line.count > limit { throw overflow() }
        readIndex = newline + 1
        scanIndex = readIndex
        return line
    }

    private func parseRequestLine(_ line: Range<Int>) throws(HTTPError) -> PartialHead {
        guard let firstSpace = buffer[line].firstIndex(of: 0x20) else {
            throw HTTPError.malformed("request line has no spaces")
        }
        let methodRange = line.lowerBound..<firstSpace
        guard !methodRange.isEmpty, buffer[methodRange].allSatisfy(Self.isTokenByte) else {
            throw HTTPError.malformed("invalid method")
        }
        let rest = (firstSpace + 1)..<line.upperBound
        guard let secondSpace = buffer[rest].firstIndex(of: 0x20) else {
            throw HTTPError.malformed("request line has no version")
        }
        let targetRange = rest.lowerBound..<secondSpace
        guard !targetRange.isEmpty, buffer[targetRange].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw HTTPError.malformed("invalid request target")
        }
        let version = try parseVersion((secondSpace + 1)..<line.upperBound)
        let method = String(decoding: buffer[methodRange], as: UTF8.self)
        let target = String(decoding: buffer[targetRange], as: UTF8.self)
        try checkTargetForm(target, method: method)
        // Room for a typical request's fields up front: growing 1, 2, 4, 8 cost three extra allocations.
        return PartialHead(method: method, target: target, version: version, headers: HTTPHeaders(capacity: 8))
    }

    private func parseVersion(_ range: Range<Int>) throws(HTTPError) -> HTTPVersion {
        let bytes = buffer[range]
        guard bytes.count == 8, bytes.starts(with: Self.versionPrefix) else {
            throw HTTPError.malformed("invalid HTTP version")
        }
        let major = bytes[range.lowerBound + 5]
        let dot = bytes[range.lowerBound + 6]
        let minor = bytes[range.lowerBound + 7]
        guard Self.isDigit(major), dot == 0x2E, Self.isDigit(minor) else {
            throw HTTPError.malformed("invalid HTTP version")
        }
        let version = HTTPVersion(major: Int(major - 0x30), minor: Int(minor - 0x30))
        // Any 1.x is answered as 1.1 would be (RFC 9110 §6.2); other majors are a different protocol.
        guard version.major == 1 else { throw HTTPError.unsupportedVersion(version.description) }
        return version
    }

    private func checkTargetForm(_ target: String, method: String) throws(HTTPError) {
        if target.hasPrefix("/") { return }
        if method == "CONNECT" { return }  // authority-form; whether to serve it is the handler's business
        if target == "*" {
            guard method == "OPTIONS" else { throw HTTPError.malformed("asterisk target outside OPTIONS") }
            return
        }
        // absolute-form: scheme "://" ...
        if let colon = target.firstIndex(of: ":"), colon > target.startIndex,
            target[colon...].hasPrefix("://"),
            target[..<colon].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." })
        {
            return
        }
        throw HTTPError.malformed("invalid request target form")
    }

    private func parseField(_ line: Range<Int>) throws(HTTPError) -> HTTPHeaders.Field {
        let first = buffer[line.lowerBound]
        if first == 0x20 || first == 0x09 {
            throw HTTPError.malformed("obsolete line folding")
        }
        guard let colon = buffer[line].firstIndex(of: 0x3A) else {
            throw HTTPError.malformed("header field without colon")
        }
        let nameRange = line.lowerBound..<colon
        guard !nameRange.isEmpty, buffer[nameRange].allSatisfy(Self.isTokenByte) else {
            throw HTTPError.malformed("invalid character in header field name")
        }
        var valueStart = colon + 1
        var valueEnd = line.upperBound
        while valueStart < valueEnd, buffer[valueStart] == 0x20 || buffer[valueStart] == 0x09 { valueStart += 1 }
        while valueEnd > valueStart, buffer[valueEnd - 1] == 0x20 || buffer[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        let valueRange = valueStart..<valueEnd
        for byte in buffer[valueRange] where byte < 0x20 && byte != 0x09 || byte == 0x7F {
            throw HTTPError.malformed("control character in header field value")
        }
        return HTTPHeaders.Field(
            name: String(decoding: buffer[nameRange], as: UTF8.self),
            value: String(decoding: buffer[valueRange], as: UTF8.self)
        )
    }

    private func parseChunkSize(_ line: Range<Int>) throws(HTTPError) -> Int {
        var size = 0
        var index = line.lowerBound
        while index < line.upperBound, let digit = Self.hexValue(buffer[index]) {
            // 15 hex digits stay far below Int.max; anything longer is hostile.
            guard index - line.lowerBound < 15 else { throw HTTPError.malformed("chunk size too large") }
            size = size * 16 + digit
            index += 1
        }
        guard index > line.lowerBound else { throw HTTPError.malformed("invalid chunk size") }
        if index < line.upperBound {
            // Only a chunk extension may follow: BWS ";" ... with no control characters.
            while index < line.upperBound, buffer[index] == 0x20 || buffer[index] == 0x09 { index += 1 }
            guard index < line.upperBound, buffer[index] == 0x3B else {
                throw HTTPError.malformed("invalid chunk size")
            }
            for byte in buffer[index..<line.upperBound] where byte < 0x20 && byte != 0x09 || byte == 0x7F {
                throw HTTPError.malformed("control character in chunk extension")
            }
        }
        return size
    }

    /// Checks the head as a whole and decides how the body is framed (RFC 9112 §6.3).
    private mutating func finishHead() throws(HTTPError) -> HTTPRequestHead {
        guard let partial else { throw HTTPError.malformed("empty head") }
        let headers = partial.headers
        let isHTTP11 = partial.version.minor >= 1

        // One pass over the fields for the few that decide framing; the arrays stay unallocated
        // when a field is absent, which is the common case for all but Content-Length.
        var hostCount = 0
        var transferEncodingValues: [String] = []
        var lengthValues: [String] = []
        var expectValues: [String] = []
        var connectionValues: [String] = []
        for field in headers {
            switch field.name.utf8.count {
            case 4 where HTTPHeaders.namesMatch(field.name, "host"): hostCount += 1
            case 6 where HTTPHeaders.namesMatch(field.name, "expect"): expectValues.append(field.value)
            case 10 where HTTPHeaders.namesMatch(field.name, "connection"): connectionValues.append(field.value)
            case 14 where HTTPHeaders.namesMatch(field.name, "content-length"): lengthValues.append(field.value)
            case 17 where HTTPHeaders.namesMatch(field.name, "transfer-encoding"):
                transferEncodingValues.append(field.value)
            default: break
            }
        }
        if isHTTP11 && hostCount != 1 || hostCount > 1 {
            throw HTTPError.malformed(hostCount == 0 ? "missing Host header" : "more than one Host header")
        }
        if let host = headers["host"], !host.utf8.allSatisfy(Self.isHostByte) {
            throw HTTPError.malformed("invalid Host header")  // RFC 9112 §3.2: an invalid value is a 400
        }

        let hasTransferEncoding = !transferEncodingValues.isEmpty
        let codings = HTTPHeaders.listElements(of: transferEncodingValues)
        // Each coding is a token compared byte-wise: a proxy that sees `chun\u{212A}ed` as an unknown
        // coding and we as `chunked` would disagree on where the request ends.
        if let invalid = codings.first(where: { !ASCIICase.isToken($0) }) {
            throw HTTPError.malformed("invalid transfer coding \"\(invalid)\"")
        }
        var framing = HTTPRequestHead.BodyFraming.none
        if hasTransferEncoding {
            guard isHTTP11 else { throw HTTPError.malformed("Transfer-Encoding in an HTTP/1.0 request") }
            guard lengthValues.isEmpty else {
                throw HTTPError.malformed("both Content-Length and Transfer-Encoding")
            }
            guard codings.last == "chunked" else {
                throw HTTPError.malformed("chunked is not the final transfer coding")
            }
            guard codings.count == 1 else {
                if let other = codings.first(where: { $0 != "chunked" }) {
                    throw HTTPError.unsupportedTransferCoding(other)
                }
                throw HTTPError.malformed("chunked applied more than once")
            }
            framing = .chunked
        } else if !lengthValues.isEmpty {
            let length = try parseContentLength(lengthValues)
            guard length <= limits.maxBodyBytes else { throw HTTPError.bodyTooLarge(limit: limits.maxBodyBytes) }
            if length > 0 { framing = .length(length) }
        }

        var expectsContinue = false
        if let expectation = expectValues.first {
            guard expectValues.count == 1, ASCIICase.equal(expectation, "100-continue") else {
                throw HTTPError.unsupportedExpectation(expectValues.joined(separator: ", "))
            }
            // RFC 9110 §10.1.1: ignore 100-continue from HTTP/1.0 clients.
            expectsContinue = isHTTP11 && framing != .none
        }

        let options = HTTPHeaders.listElements(of: connectionValues)
        if let invalid = options.first(where: { !ASCIICase.isToken($0) }) {
            throw HTTPError.malformed("invalid Connection option \"\(invalid)\"")
        }
        let isKeepAlive =
            if options.contains("close") { false } else if isHTTP11 { true } else { options.contains("keep-alive") }

        switch framing {
        case .none: state = .endPending
        case .length(let length): state = .fixedBody(remaining: length)
        case .chunked: state = .chunkSizeLine
        }
        self.partial = nil
        return HTTPRequestHead(
            method: partial.method, target: partial.target, version: partial.version, headers: headers,
            framing: framing, isKeepAlive: isKeepAlive, expectsContinue: expectsContinue)
    }

    /// The length from the one `Content-Length` field, which must be 1 to 18 ASCII digits.
    ///
    /// RFC 9112 §6.3 lets a recipient accept identical repeats (`5, 5` or two fields of `5`); like
    /// nginx we refuse them: no client we serve sends them, and every leniency in framing is room for
    /// a front proxy and this server to disagree (`Docs/http-server.md`).
    private func parseContentLength(_ values: [String]) throws(HTTPError) -> Int {
        guard values.count == 1 else { throw HTTPError.malformed("more than one Content-Length field") }
        guard let length = Self.plainNumber(values[0].utf8) else {
            throw HTTPError.malformed(
                values[0].utf8.contains(0x2C) ? "Content-Length holds a list" : "invalid Content-Length")
        }
        return length
    }

    /// The value of 1 to 18 ASCII digits with nothing around them, else `nil`.
    private static func plainNumber(_ digits: String.UTF8View) -> Int? {
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        var value = 0
        for digit in digits {
            guard isDigit(digit) else { return nil }
            value = value * 10 + Int(digit - 0x30)
        }
        return value
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: Int(byte - 0x30)
        case 0x41...0x46: Int(byte - 0x41 + 10)
        case 0x61...0x66: Int(byte - 0x61 + 10)
        default: nil
        }
    }

    /// RFC 9110 `tchar`: the characters allowed in methods and field names.
    private static func isTokenByte(_ byte: UInt8) -> Bool { ASCIICase.isTokenByte(byte) }

    /// What a `Host` value may hold (RFC 3986 `uri-host [ ":" port ]`): unreserved, sub-delims,
    /// percent escapes, `:` and the brackets of an IP literal. No space, no control, no non-ASCII.
    private static func isHostByte(_ byte: UInt8) -> Bool { hostBytes[Int(byte)] }

    private static let hostBytes: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in UInt8(0x30)...0x39 { table[Int(byte)] = true }
        for byte in UInt8(0x41)...0x5A { table[Int(byte)] = true }
        for byte in UInt8(0x61)...0x7A { table[Int(byte)] = true }
        for byte in "-._~!$&'()*+,;=%:[]".utf8 { table[Int(byte)] = true }
        return table
    }()
}
