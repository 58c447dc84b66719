import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Requests no honest gateway sends, aimed at the collector during the soak. Each kind names the
/// answers the collector may give; anything else (a 500, a hang, a crash) is a failure.
enum HostileKind: String, CaseIterable, Sendable {
    case oversizedHeaders = "oversized headers (40 KiB)"
    case tooManyHeaders = "too many header fields (150)"
    case contentLengthAndChunked = "smuggling: CL + TE"
    case twoContentLengths = "smuggling: two Content-Length"
    case obsFold = "smuggling: obs-fold"
    case chunkedNotLast = "smuggling: TE gzip, chunked"
    case badChunkSize = "chunked body, bad chunk size"
    case bareLineFeeds = "bare LF line ends"
    case deflateBombHonest = "deflate bomb, true size declared"
    case deflateBombLying = "deflate bomb, 1 KiB declared"
    case gzipContentEncoding = "Content-Encoding: gzip bomb"
    case wrongToken = "wrong device token"
    case tokenOfAnotherDevice = "another device's token"
    case noToken = "no token"
    case hugeContentLength = "Content-Length 2^63"
    case mutatedFrame = "fuzzed frame"

    /// Statuses the collector may answer with; `closed` means it closed without answering, which
    /// is acceptable only where listed.
    var acceptable: Set<String> {
        switch self {
        case .oversizedHeaders, .tooManyHeaders: ["431", "400"]
        case .contentLengthAndChunked, .twoContentLengths, .obsFold, .bareLineFeeds, .badChunkSize:
            ["400"]
        case .chunkedNotLast: ["400", "501"]
        case .deflateBombHonest: ["413"]
        case .deflateBombLying: ["400"]
        case .gzipContentEncoding: ["415", "400", "413"]
        case .wrongToken, .noToken: ["401"]
        case .tokenOfAnotherDevice: ["403"]
        case .hugeContentLength: ["413", "400"]
        // A mutation that leaves a valid frame is stored (200) under the fuzzing device, or refused
        // (403) when it changed the device name; the rest is refused as malformed, too large or of an
        // unknown version.
        case .mutatedFrame: ["200", "400", "403", "413", "415"]
        }
    }
}

/// Builds and sends hostile requests over raw sockets (the test clients refuse to send them).
struct HostileClient {
    let port: Int
    /// Tokens of the two devices hostile requests may use; neither carries soak readings.
    let fuzzDeviceToken: String
    let otherDeviceToken: String
    let validFrames: [[UInt8]]

    /// Sends one request of `kind`; returns the status code, or `closed` / `timeout` / `refused`.
    func send(_ kind: HostileKind, random: inout SeededRandom) -> String {
        exchange(bytes(kind, random: &random))
    }

    private func head(
        _ method: String = "POST", _ path: String = ProtocolPath.batches, token: String? = nil,
        extra: [String] = []
    ) -> String {
        var lines = ["\(method) \(path) HTTP/1.1", "Host: 127.0.0.1:\(port)"]
        if let token { lines.append("Authorization: Bearer \(token)") }
        lines += extra
        return lines.joined(separator: "\r\n") + "\r\n\r\n"
    }

    private func bytes(_ kind: HostileKind, random: inout SeededRandom) -> [UInt8] {
        let frame = validFrames[Int.random(in: 0..<validFrames.count, using: &random)]
        let frameHeaders = ["Content-Type: \(FrameHeader.mediaType)", "Content-Length: \(frame.count)"]
        switch kind {
        case .oversizedHeaders:
            return Array(
                head("GET", "/healthz", extra: ["X-Padding: " + String(repeating: "a", count: 40 << 10)]).utf8)
        case .tooManyHeaders:
            return Array(head("GET", "/healthz", extra: (0..<150).map { "X-H\($0): v" }).utf8)
        case .contentLengthAndChunked:
            return Array(
                head(token: fuzzDeviceToken, extra: ["Content-Length: 4", "Transfer-Encoding: chunked"]).utf8)
                + Array("0\r\n\r\nGET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        case .twoContentLengths:
            return Array(
                head(token: fuzzDeviceToken, extra: ["Content-Length: \(frame.count)", "Content-Length: 0"]).utf8)
                + frame
        case .obsFold:
            return Array(
                head(token: fuzzDeviceToken, extra: ["X-Folded: a", " b", "Content-Length: \(frame.count)"]).utf8)
                + frame
        case .chunkedNotLast:
            return Array(head(token: fuzzDeviceToken, extra: ["Transfer-Encoding: chunked, gzip"]).utf8)
                + Array("0\r\n\r\n".utf8)
        case .badChunkSize:
            return Array(head(token: fuzzDeviceToken, extra: ["Transfer-Encoding: chunked"]).utf8)
                + Array("fffffffffffffffffffff\r\nxx\r\n0\r\n\r\n".utf8)
        case .bareLineFeeds:
            return Array("POST \(ProtocolPath.batches) HTTP/1.1\nHost: x\nContent-Length: 0\n\n".utf8)
        case .deflateBombHonest:
            let bomb = Self.deflateBombFrame(declaredBytes: 64 << 20)
            return Array(
                head(
                    token: fuzzDeviceToken,
                    extra: ["Content-Type: \(FrameHeader.mediaType)", "Content-Length: \(bomb.count)"]
                )
                .utf8) + bomb
        case .deflateBombLying:
            let bomb = Self.deflateBombFrame(declaredBytes: 1024)
            return Array(
                head(
                    token: fuzzDeviceToken,
                    extra: ["Content-Type: \(FrameHeader.mediaType)", "Content-Length: \(bomb.count)"]
                )
                .utf8) + bomb
        case .gzipContentEncoding:
            let body = Self.gzippedZeros
            return Array(
                head(
                    token: fuzzDeviceToken,
                    extra: [
                        "Content-Type: \(FrameHeader.mediaType)", "Content-Encoding: gzip",
                        "Content-Length: \(body.count)",
                    ]
                ).utf8) + body
        case .wrongToken:
            let token = (0..<32).map { _ in String(UInt8.random(in: 0...255, using: &random), radix: 16) }.joined()
            return Array(head(token: token, extra: frameHeaders).utf8) + frame
        case .tokenOfAnotherDevice:
            // The frames are the fuzzing device's; the token is the other device's.
            return Array(head(token: otherDeviceToken, extra: frameHeaders).utf8) + frame
        case .noToken:
            return Array(head(extra: frameHeaders).utf8) + frame
        case .hugeContentLength:
            return Array(
                head(
                    token: fuzzDeviceToken,
                    extra: ["Content-Type: \(FrameHeader.mediaType)", "Content-Length: 9223372036854775807"]
                )
                .utf8)
        case .mutatedFrame:
            let mutated = Self.mutate(frame, random: &random)
            return Array(
                head(
                    token: fuzzDeviceToken,
                    extra: ["Content-Type: \(FrameHeader.mediaType)", "Content-Length: \(mutated.count)"]
                ).utf8) + mutated
        }
    }

    /// Flips, overwrites, inserts, removes or truncates bytes, sometimes fixing the checksum so the
    /// mutation reaches the payload decoder instead of stopping at the CRC.
    static func mutate(_ frame: [UInt8], random: inout SeededRandom) -> [UInt8] {
        var bytes = frame
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            guard !bytes.isEmpty else { break }
            let at = Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<5, using: &random) {
            case 0: bytes[at] ^= 1 << UInt8.random(in: 0..<8, using: &random)
            case 1: bytes[at] = UInt8.random(in: 0...255, using: &random)
            case 2: bytes.insert(UInt8.random(in: 0...255, using: &random), at: at)
            case 3: bytes.remove(at: at)
            default: bytes.removeLast(min(bytes.count, Int.random(in: 1...16, using: &random)))
            }
        }
        if bytes.count > FrameHeader.byteCount + 4, Bool.random(using: &random) {
            let crc = crc32(bytes[..<(bytes.count - 4)])
            for index in 0..<4 { bytes[bytes.count - 4 + index] = UInt8(truncatingIfNeeded: crc >> (8 * index)) }
        }
        return bytes
    }

    /// CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320), bit by bit: the frames are small.
    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// 64 MiB of zeros as a gzip member (about 64 KiB).
    static let gzippedZeros: [UInt8] = Gzip.compress([UInt8](repeating: 0, count: 64 << 20), level: 9)

    /// A deflated frame whose payload inflates to 64 MiB of zeros, declaring `declaredBytes`. The
    /// zlib stream is the gzip member's deflate data between a zlib header and its Adler-32.
    static func deflateBombFrame(declaredBytes: Int) -> [UInt8] {
        let member = gzippedZeros
        // gzip: a 10-byte header (no optional fields: Gzip.compress writes none), then raw
        // deflate, then CRC-32 and size (8 bytes).
        let deflate = member[10..<(member.count - 8)]
        // Adler-32 of n zero bytes: a stays 1, b adds 1 per byte.
        let adler = UInt32((64 << 20) % 65521) << 16 | 1
        var zlib: [UInt8] = [0x78, 0xDA] + deflate
        zlib += [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: adler >> $0) }
        var frame = FrameHeader.magic + [FrameHeader.currentVersion, 1]
        for value in [UInt32(zlib.count), UInt32(declaredBytes)] {
            frame += [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: value >> $0) }
        }
        frame += zlib
        let crc = crc32(frame[...])
        frame += [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: crc >> $0) }
        return frame
    }

    /// Writes `request`, half-closes nothing, reads until the first complete status line or the end;
    /// at most 10 seconds.
    private func exchange(_ request: [UInt8]) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return "socket failed" }
        defer { close(fd) }
        var limit = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return "refused" }
        var offset = 0
        while offset < request.count {
            let sent = request[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 && errno == EINTR { continue }
            // The server may answer (413, 401) and close before the body is all sent: read the answer.
            if sent <= 0 { break }
            offset += sent
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !received.contains(0x0A) {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return "timeout" }
            if count <= 0 { break }
            received += chunk[..<count]
        }
        let line = String(decoding: received.prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3 else { return "closed" }
        return String(parts[1])
    }
}
