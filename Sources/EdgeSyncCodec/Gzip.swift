import CZlib

/// Gzip (RFC 1952) with a hard bound on what inflating may produce: HTTP request bodies sent with
/// `Content-Encoding: gzip` and the `.csv.gz` datasets.
public enum Gzip {
    /// Why a gzip body was refused.
    public struct Failure: Error, CustomStringConvertible, Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            /// Not gzip, a damaged stream, a bad checksum or garbage after the end.
            case malformed
            /// The stream ends before its end marker.
            case truncated
            /// Inflating would produce more than the limit (a decompression bomb, or just too big).
            case tooLarge
        }

        public var kind: Kind
        public var description: String

        public init(_ kind: Kind, _ description: String) {
            self.kind = kind
            self.description = description
        }
    }

    /// Inflates one or more concatenated gzip members; refuses to produce more than `maximumBytes`
    /// (checked as it goes, so memory stays within the limit plus one 64 KiB step).
    public static func decompress(_ input: [UInt8], maximumBytes: Int) throws(Failure) -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var offset = 0
        repeat {
            var stream = z_stream()
            // 16 + 15: gzip wrapper, 32 KiB window.
            guard inflateInit2_(&stream, 31, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw Failure(.malformed, "inflateInit2 failed")
            }
            defer { inflateEnd(&stream) }
            var status: Int32 = Z_OK
            let consumed = try input.withUnsafeBufferPointer { input throws(Failure) -> Int in
                let remaining = input.count - offset
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0 + offset })
                stream.avail_in = uInt(remaining)
                while status != Z_STREAM_END {
                    status = chunk.withUnsafeMutableBufferPointer { chunk in
                        stream.next_out = chunk.baseAddress
                        stream.avail_out = uInt(chunk.count)
                        return inflate(&stream, Z_NO_FLUSH)
                    }
                    let produced = chunk.count - Int(stream.avail_out)
                    switch status {
                    case Z_OK, Z_STREAM_END:
                        break
                    case Z_BUF_ERROR where stream.avail_in == 0:
                        throw Failure(.truncated, "the gzip body ends early, after \(remaining) bytes")
                    default:
                        let detail = stream.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                        throw Failure(.malformed, "the body is not valid gzip: \(detail)")
                    }
                    guard produced <= maximumBytes - output.count else {
                        throw Failure(.tooLarge, "the gzip body inflates to more than \(maximumBytes) bytes")
                    }
                    output.append(contentsOf: chunk[0..<produced])
                    if status == Z_OK, stream.avail_in == 0, produced == 0 {
                        throw Failure(.truncated, "the gzip body ends early, after \(remaining) bytes")
                    }
                }
                return remaining - Int(stream.avail_in)
            }
            offset += consumed
        } while offset < input.count
        return output
    }

    /// Compresses `input` as one gzip member (tests and clients).
    public static func compress(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
        (try? Deflate.compress(input, level: Int(level), windowBits: 31)) ?? []
    }
}
