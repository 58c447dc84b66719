/// Reads the format's primitive fields from untrusted bytes, checking every access.
///
/// Every failure names the offset of the field that failed, counted from ``origin`` so that errors
/// point into the frame or payload as a whole rather than into a slice of it.
struct ByteReader: ~Copyable {
    private let base: UnsafeRawBufferPointer
    private(set) var position: Int
    let origin: Int
    let area: CodecError.Area

    init(_ base: UnsafeRawBufferPointer, origin: Int = 0, area: CodecError.Area = .payload) {
        self.base = base
        self.position = 0
        self.origin = origin
        self.area = area
    }

    var remaining: Int { base.count - position }
    var isAtEnd: Bool { position == base.count }

    /// The absolute offset of the next byte, for error messages.
    var offset: Int { origin + position }

    func error(_ code: CodecError.Code, _ reason: String, at position: Int? = nil) -> CodecError {
        CodecError(code, reason, at: origin + (position ?? self.position), in: area)
    }

    private func truncated(_ what: String, needing count: Int) -> CodecError {
        error(.truncated, "\(what) needs \(count) byte\(count == 1 ? "" : "s"), \(remaining) left")
    }

    mutating func readByte(_ what: @autoclosure () -> String) throws(CodecError) -> UInt8 {
        guard position < base.count else { throw truncated(what(), needing: 1) }
        defer { position += 1 }
        return base[position]
    }

    mutating func readUInt32(_ what: @autoclosure () -> String) throws(CodecError) -> UInt32 {
        guard remaining >= 4 else { throw truncated(what(), needing: 4) }
        defer { position += 4 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt32.self))
    }

    mutating func readUInt64(_ what: @autoclosure () -> String) throws(CodecError) -> UInt64 {
        guard remaining >= 8 else { throw truncated(what(), needing: 8) }
        defer { position += 8 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt64.self))
    }

    /// Unsigned LEB128 of at most ten bytes; longer or overflowing encodings are malformed.
    mutating func readVarint(_ what: @autoclosure () -> String) throws(CodecError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < base.count else {
                throw error(.truncated, "\(what()): varint runs past the end", at: start)
            }
            let byte = base[position]
            position += 1
            if shift == 63 && byte > 1 {
                throw error(.malformed, "\(what()): varint overflows 64 bits", at: start)
            }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func readSignedVarint(_ what: @autoclosure () -> String) throws(CodecError) -> Int64 {
        ZigZag.decode(try readVarint(what()))
    }

    /// A varint that must not exceed `limit`, returned as `Int`; `code` says whether exceeding it
    /// is a broken field or a configured limit.
    mutating func readCount(
        _ what: @autoclosure () -> String, atMost limit: Int, code: CodecError.Code = .malformed
    ) throws(CodecError) -> Int {
        let start = position
        let value = try readVarint(what())
        guard value <= UInt64(limit) else {
            throw error(code, "\(what()) is \(value), more than the limit of \(limit)", at: start)
        }
        return Int(value)
    }

    /// Returns the next `count` bytes and moves past them.
    mutating func readBytes(
        _ count: Int, _ what: @autoclosure () -> String
    ) throws(CodecError) -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw truncated(what(), needing: count) }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: base[position..<position + count])
    }

    /// A varint byte count followed by that many bytes of valid UTF-8.
    mutating func readString(_ what: @autoclosure () -> String, maxBytes: Int) throws(CodecError) -> String {
        let start = position
        let count = try readCount("\(what()) length", atMost: maxBytes, code: .limitExceeded)
        let raw = try readBytes(count, what())
        guard let string = String(validating: raw, as: UTF8.self) else {
            throw error(.malformed, "\(what()) is not valid UTF-8", at: start)
        }
        return string
    }
}

extension ByteReader {
    /// Moves to a position already read once (to apply a validated list in a second pass).
    mutating func seek(to newPosition: Int) throws(CodecError) {
        guard newPosition >= 0, newPosition <= remaining + position else {
            throw error(.malformed, "internal seek outside the input")
        }
        position = newPosition
    }
}
