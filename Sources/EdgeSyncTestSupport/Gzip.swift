import CZlib

/// Reads whole gzip files (the real datasets ship as `.csv.gz`).
public enum Gzip {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Inflates a gzip member; refuses to produce more than `maximumBytes`.
    public static func decompress(_ input: [UInt8], maximumBytes: Int = 1 << 30) throws -> [UInt8] {
        var stream = z_stream()
        // 16 + 15: gzip wrapper, 32 KiB window.
        guard inflateInit2_(&stream, 31, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Failure(description: "inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var status: Int32 = Z_OK
        try input.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = uInt(input.count)
            while status != Z_STREAM_END {
                status = chunk.withUnsafeMutableBufferPointer { chunk in
                    stream.next_out = chunk.baseAddress
                    stream.avail_out = uInt(chunk.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                guard status == Z_OK || status == Z_STREAM_END else {
                    throw Failure(description: "gzip data is invalid (zlib status \(status))")
                }
                output.append(contentsOf: chunk[0..<(chunk.count - Int(stream.avail_out))])
                guard output.count <= maximumBytes else {
                    throw Failure(description: "gzip data inflates to more than \(maximumBytes) bytes")
                }
                if status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0 {
                    throw Failure(description: "gzip data ends early")
                }
            }
        }
        return output
    }
}
