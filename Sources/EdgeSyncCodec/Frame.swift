import CZlib

/// The fixed header in front of every batch payload, readable from the first
/// ``FrameHeader/byteCount`` bytes so a receiver can refuse an oversized body before reading it.
///
/// Layout (little-endian), normative in `Docs/wire-format.md`:
/// `magic "ESYB" | version u8 | flags u8 | stored payload bytes u32 | payload bytes u32`,
/// then the payload, then a CRC-32 of everything before it.
public struct FrameHeader: Sendable, Hashable {
    public static let magic: [UInt8] = Array("ESYB".utf8)
    /// The version encoders write by default.
    public static let currentVersion: UInt8 = FormatVersion.v3.rawValue
    /// Every version decoders read.
    public static let supportedVersions: [UInt8] = FormatVersion.allCases.map(\.rawValue)
    public static let byteCount = 14
    public static let trailerByteCount = 4
    /// Media type of a frame in an HTTP body.
    public static let mediaType = "application/vnd.edge-sync.batch"

    struct Flags: OptionSet {
        let rawValue: UInt8
        static let deflated = Flags(rawValue: 1)
        static let known: Flags = [.deflated]
    }

    public var version: UInt8
    /// The version as a ``FormatVersion`` (``parse(_:limits:)`` accepts only known versions).
    public var formatVersion: FormatVersion { FormatVersion(rawValue: version) ?? .v3 }
    /// Whether the payload is deflated (zlib format, RFC 1950).
    public var isDeflated: Bool
    /// Bytes of payload as stored in the frame.
    public var storedPayloadBytes: Int
    /// Bytes of payload after inflating (equal to ``storedPayloadBytes`` when not deflated).
    public var payloadBytes: Int

    /// The whole frame's size: header, stored payload and checksum.
    public var frameBytes: Int { Self.byteCount + storedPayloadBytes + Self.trailerByteCount }

    /// Reads and checks a header from the start of `prefix`, which needs at least
    /// ``byteCount`` bytes. Checks the magic, version, flags and both sizes against `limits`.
    public static func parse(_ prefix: UnsafeRawBufferPointer, limits: DecodingLimits = .default) throws(CodecError) -> FrameHeader {
        var reader = ByteReader(prefix, area: .frame)
        guard prefix.count >= byteCount else {
            throw CodecError(.truncated, "a frame needs at least \(byteCount + trailerByteCount) bytes, got \(prefix.count)", at: 0, in: .frame)
        }
        let magicBytes = try reader.readBytes(4, "magic")
        guard magicBytes.elementsEqual(magic) else {
            throw CodecError(.badMagic, "expected the magic \"ESYB\" (45 53 59 42)", at: 0, in: .frame)
        }
        let version = try reader.readByte("version")
        guard FormatVersion(rawValue: version) != nil else {
            throw CodecError(.unsupportedVersion, "format version \(version) is not supported; this decoder reads versions 2 and 3", at: 4, in: .frame)
        }
        let flags = Flags(rawValue: try reader.readByte("flags"))
        guard flags.isSubset(of: .known) else {
            throw CodecError(.unsupportedFlags, "flags 0x\(String(flags.rawValue, radix: 16)) include unknown bits", at: 5, in: .frame)
        }
        let stored = Int(try reader.readUInt32("stored payload length"))
        let payload = Int(try reader.readUInt32("payload length"))
        guard stored <= limits.maximumFrameBytes - byteCount - trailerByteCount else {
            throw CodecError(.limitExceeded, "stored payload of \(stored) bytes exceeds the frame limit of \(limits.maximumFrameBytes) bytes", at: 6, in: .frame)
        }
        guard payload <= limits.maximumPayloadBytes else {
            throw CodecError(.limitExceeded, "payload inflates to \(payload) bytes, more than the limit of \(limits.maximumPayloadBytes)", at: 10, in: .frame)
        }
        if !flags.contains(.deflated) && stored != payload {
            throw CodecError(.malformed, "payload is not deflated but its lengths differ (\(stored) stored, \(payload) declared)", at: 10, in: .frame)
        }
        return FrameHeader(version: version, isDeflated: flags.contains(.deflated), storedPayloadBytes: stored, payloadBytes: payload)
    }
}

/// CRC-32 (ISO-HDLC, as in zlib and gzip).
enum Checksum {
    static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress else { return 0 }
        return UInt32(CZlib.crc32(0, base.assumingMemoryBound(to: Bytef.self), uInt(bytes.count)))
    }
}

/// One-shot zlib deflate and bounded inflate.
enum Deflate {
    /// `windowBits` 15 writes a zlib stream (the frame payload), 31 a gzip member (`Gzip.compress`).
    static func compress(_ input: [UInt8], level: Int, windowBits: Int32 = 15) throws(CodecError) -> [UInt8] {
        var stream = z_stream()
        guard
            deflateInit2_(
                &stream, Int32(level), Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else {
            throw CodecError(.compressionFailed, "deflateInit failed for level \(level)")
        }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let status = input.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { output in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = output.baseAddress
                stream.avail_out = uInt(output.count)
                return CZlib.deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else {
            throw CodecError(.compressionFailed, "deflate returned \(status)")
        }
        output.removeLast(Int(stream.avail_out))
        return output
    }

    /// Inflates `input` into exactly `outputCount` bytes; more or fewer is an error, and nothing
    /// beyond `outputCount` is ever allocated.
    static func decompress(_ input: UnsafeRawBufferPointer, outputCount: Int, inputOffset: Int) throws(CodecError) -> [UInt8] {
        var stream = z_stream()
        guard czlib_inflate_init(&stream) == Z_OK else {
            throw CodecError(.compressionFailed, "inflateInit failed")
        }
        defer { inflateEnd(&stream) }
        // One spare byte lets inflate prove that the stream is longer than declared.
        var output = [UInt8](repeating: 0, count: outputCount + 1)
        let (status, produced) = output.withUnsafeMutableBufferPointer { output in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(input.count)
            stream.next_out = output.baseAddress
            stream.avail_out = uInt(output.count)
            let status = CZlib.inflate(&stream, Z_FINISH)
            return (status, output.count - Int(stream.avail_out))
        }
        let consumed = input.count - Int(stream.avail_in)
        switch status {
        case Z_STREAM_END:
            guard produced == outputCount else {
                throw CodecError(.malformed, "payload inflates to \(produced) bytes, the header declares \(outputCount)", at: 10, in: .frame)
            }
            guard consumed == input.count else {
                throw CodecError(.malformed, "\(input.count - consumed) bytes follow the end of the deflate stream", at: inputOffset + consumed, in: .frame)
            }
        case Z_DATA_ERROR:
            let detail = stream.msg.map { String(cString: $0) } ?? "invalid data"
            throw CodecError(.malformed, "deflate stream is invalid: \(detail)", at: inputOffset + consumed, in: .frame)
        case Z_BUF_ERROR where produced > outputCount:
            throw CodecError(.malformed, "payload inflates to more than the \(outputCount) bytes the header declares", at: 10, in: .frame)
        case Z_BUF_ERROR:
            throw CodecError(.truncated, "deflate stream ends early after \(produced) of \(outputCount) bytes", at: inputOffset + consumed, in: .frame)
        default:
            throw CodecError(.compressionFailed, "inflate returned \(status)")
        }
        output.removeLast()
        return output
    }
}
