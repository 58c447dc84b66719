import CZlib

/// Incremental gzip (RFC 1952) inflation: compressed bytes in as they arrive, output out in pieces
/// of at most `pieceBytes`, the total capped at `maximumBytes`.
///
/// The decoder contract of `HTTPRequestParser`: `append(_:)` the compressed bytes in any chunking,
/// call `next()` until it returns `nil` ("need more input"), call `finish()` when the input has
/// ended. The first error is sticky. Memory is the zlib state (about 40 KiB with its 32 KiB window),
/// the compressed bytes not yet inflated and one piece, however large the stream inflates: a 1 GiB
/// decompression bomb costs the same as a small body until the cap refuses it.
///
/// Not Sendable: zlib's stream points into itself and lives at one address for its lifetime;
/// one request owns one inflater.
public final class GzipInflater {
    public let maximumBytes: Int
    public let pieceBytes: Int
    /// Output produced so far.
    public private(set) var producedBytes = 0

    private let stream: UnsafeMutablePointer<z_stream>
    private var input: [UInt8] = []
    private var inputIndex = 0
    private var consumedBytes = 0
    /// Between members: the last one ended and the next has not started (also before the first).
    private var isAtMemberBoundary = true
    private var isInitialized = false
    private var failure: Gzip.Failure?

    public init(maximumBytes: Int, pieceBytes: Int = 64 << 10) {
        self.maximumBytes = maximumBytes
        self.pieceBytes = max(1, pieceBytes)
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
    }

    deinit {
        if isInitialized { inflateEnd(stream) }
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Adds compressed bytes; call `next()` afterwards.
    public func append(_ bytes: some Sequence<UInt8>) {
        if inputIndex > 0 && inputIndex == input.count {
            input.removeAll(keepingCapacity: input.capacity <= 256 << 10)
            inputIndex = 0
        } else if inputIndex >= 64 << 10 {
            input.removeSubrange(0..<inputIndex)
            inputIndex = 0
        }
        input.append(contentsOf: bytes)
    }

    /// The next piece of output, or `nil` when every appended byte has been inflated.
    ///
    /// - Throws: `Gzip.Failure` `.tooLarge` once the output would pass `maximumBytes`, `.malformed`
    ///   for a damaged stream; the same error on every later call.
    public func next() throws(Gzip.Failure) -> [UInt8]? {
        if let failure { throw failure }
        do {
            return try step()
        } catch {
            failure = error
            throw error
        }
    }

    /// Checks that the input ended where a gzip member ends.
    ///
    /// - Throws: `Gzip.Failure` `.truncated` when it stopped inside a member (or there was none).
    public func finish() throws(Gzip.Failure) {
        if let failure { throw failure }
        while try next() != nil {}
        guard isAtMemberBoundary, consumedBytes > 0 else {
            let error = Gzip.Failure(.truncated, "the gzip body ends early, after \(consumedBytes) bytes")
            failure = error
            throw error
        }
    }

    private func step() throws(Gzip.Failure) -> [UInt8]? {
        while inputIndex < input.count {
            if isAtMemberBoundary {
                // 16 + 15: gzip wrapper, 32 KiB window; a reset keeps the allocated state.
                let status =
                    isInitialized
                    ? inflateReset(stream) : inflateInit2_(stream, 31, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
                guard status == Z_OK else { throw Gzip.Failure(.malformed, "inflateInit2 failed") }
                isInitialized = true
                isAtMemberBoundary = false
            }
            var piece = [UInt8](repeating: 0, count: pieceBytes)
            let available = input.count - inputIndex
            let (status, used, produced) = input.withUnsafeMutableBufferPointer { input in
                piece.withUnsafeMutableBufferPointer { piece in
                    stream.pointee.next_in = input.baseAddress.map { $0 + inputIndex }
                    stream.pointee.avail_in = uInt(available)
                    stream.pointee.next_out = piece.baseAddress
                    stream.pointee.avail_out = uInt(piece.count)
                    let status = inflate(stream, Z_NO_FLUSH)
                    return (
                        status, available - Int(stream.pointee.avail_in), piece.count - Int(stream.pointee.avail_out)
                    )
                }
            }
            inputIndex += used
            consumedBytes += used
            switch status {
            case Z_OK, Z_BUF_ERROR:
                break
            case Z_STREAM_END:
                isAtMemberBoundary = true
            default:
                let detail = stream.pointee.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                throw Gzip.Failure(.malformed, "the body is not valid gzip: \(detail)")
            }
            guard produced <= maximumBytes - producedBytes else {
                throw Gzip.Failure(.tooLarge, "the gzip body inflates to more than \(maximumBytes) bytes")
            }
            producedBytes += produced
            if produced > 0 {
                piece.removeSubrange(produced...)
                return piece
            }
            if used == 0 && !isAtMemberBoundary { return nil }  // zlib needs more input
        }
        return nil
    }
}
