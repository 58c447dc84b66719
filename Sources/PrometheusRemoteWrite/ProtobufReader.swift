/// A strict reader of the protobuf wire format over a borrowed buffer.
///
/// Supports the wire types proto3 messages use (varint, 64-bit, length-delimited, 32-bit) and refuses
/// the deprecated groups (3 and 4), wire types 6 and 7, field number 0, varints longer than 10 bytes
/// or wider than 64 bits, lengths past the end of the enclosing message, and messages nested deeper
/// than `maximumDepth`. Offsets in errors are absolute in the outermost buffer.
///
/// The reader borrows `bytes`: use it only inside the `withUnsafeBytes` closure that produced them.
package struct ProtobufReader {
    package enum WireType: UInt8, Sendable {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case startGroup = 3
        case endGroup = 4
        case fixed32 = 5

        var name: String {
            switch self {
            case .varint: "varint"
            case .fixed64: "64-bit"
            case .lengthDelimited: "length-delimited"
            case .startGroup: "start-group"
            case .endGroup: "end-group"
            case .fixed32: "32-bit"
            }
        }
    }

    /// Deepest nesting `nested(_:)` allows; remote write needs 2 (request → series → label).
    package static let maximumDepth = 8

    private let bytes: UnsafeRawBufferPointer
    /// Offset of the next unread byte.
    package private(set) var position: Int
    /// Offset just past the current message.
    package let end: Int
    /// How many messages enclose this one.
    package let depth: Int

    package init(_ bytes: UnsafeRawBufferPointer) {
        self.init(bytes, range: 0..<bytes.count, depth: 0)
    }

    private init(_ bytes: UnsafeRawBufferPointer, range: Range<Int>, depth: Int) {
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
        self.depth = depth
    }

    package var isAtEnd: Bool { position >= end }

    private func error(at offset: Int, _ reason: String) -> RemoteWriteError {
        RemoteWriteError(.malformedProtobuf, at: offset, reason)
    }

    /// Reads a field key; returns the field number and wire type, refusing groups and unknown types.
    package mutating func readTag() throws(RemoteWriteError) -> (field: Int, wireType: WireType) {
        let start = position
        let key = try readVarint()
        guard let wireType = WireType(rawValue: UInt8(key & 7)) else {
            throw error(at: start, "invalid wire type \(key & 7)")
        }
        let field = key >> 3
        guard field != 0, field <= 0x1FFF_FFFF else { throw error(at: start, "invalid field number \(field)") }
        if wireType == .startGroup || wireType == .endGroup {
            throw error(at: start, "field \(field) uses the deprecated group wire type \(wireType.rawValue)")
        }
        return (Int(field), wireType)
    }

    /// Reads a base-128 varint of at most 10 bytes whose value fits in 64 bits.
    package mutating func readVarint() throws(RemoteWriteError) -> UInt64 {
        let start = position
        var value: UInt64 = 0
        for index in 0..<10 {
            guard position < end else { throw error(at: start, "the message ends inside a varint") }
            let byte = bytes[position]
            position += 1
            if index == 9, byte & 0x80 != 0 { throw error(at: start, "a varint is longer than 10 bytes") }
            if index == 9, byte > 1 { throw error(at: start, "a varint overflows 64 bits") }
            value |= UInt64(byte & 0x7F) << (7 * UInt64(index))
            if byte & 0x80 == 0 { return value }
        }
        // Not reached: the tenth byte either ends the varint or throws above.
        throw error(at: start, "a varint is longer than 10 bytes")
    }

    /// Reads a little-endian 64-bit value.
    package mutating func readFixed64() throws(RemoteWriteError) -> UInt64 {
        guard end - position >= 8 else { throw error(at: position, "the message ends inside a 64-bit value") }
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[position + index]) << (8 * UInt64(index)) }
        position += 8
        return value
    }

    /// Reads a little-endian 32-bit value.
    package mutating func readFixed32() throws(RemoteWriteError) -> UInt32 {
        guard end - position >= 4 else { throw error(at: position, "the message ends inside a 32-bit value") }
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(bytes[position + index]) << (8 * UInt32(index)) }
        position += 4
        return value
    }

    /// Reads a length prefix and returns the range of the bytes it covers, which it skips.
    package mutating func readLengthDelimited() throws(RemoteWriteError) -> Range<Int> {
        let start = position
        let length = try readVarint()
        guard length <= UInt64(end - position) else {
            throw error(
                at: start, "a length of \(length) bytes runs past the end of the message (\(end - position) left)")
        }
        let range = position..<position + Int(length)
        position = range.upperBound
        return range
    }

    /// Reads a length-delimited field as UTF-8 text; `what` names it in the error.
    package mutating func readString(_ what: @autoclosure () -> String) throws(RemoteWriteError) -> String {
        let range = try readLengthDelimited()
        let text = UnsafeRawBufferPointer(rebasing: bytes[range])
        // Label names and most values are ASCII; decoding those needs no validation and is several
        // times faster than the generic validating initializer.
        if !text.contains(where: { $0 >= 0x80 }) { return String(decoding: text, as: UTF8.self) }
        guard let validated = String(validating: text, as: UTF8.self) else {
            throw RemoteWriteError(.invalidRequest, at: range.lowerBound, "\(what()) is not valid UTF-8")
        }
        return validated
    }

    /// A reader for an embedded message in `range` (from `readLengthDelimited`), one level deeper.
    package func nested(_ range: Range<Int>) throws(RemoteWriteError) -> ProtobufReader {
        guard depth < Self.maximumDepth else {
            throw error(at: range.lowerBound, "messages are nested more than \(Self.maximumDepth) deep")
        }
        precondition(range.lowerBound >= 0 && range.upperBound <= end, "nested range outside the message")
        return ProtobufReader(bytes, range: range, depth: depth + 1)
    }

    /// Skips the value of a field this decoder does not use.
    package mutating func skip(_ wireType: WireType) throws(RemoteWriteError) {
        switch wireType {
        case .varint: _ = try readVarint()
        case .fixed64: _ = try readFixed64()
        case .lengthDelimited: _ = try readLengthDelimited()
        case .fixed32: _ = try readFixed32()
        case .startGroup, .endGroup:
            throw error(at: position, "the deprecated group wire type \(wireType.rawValue) is not supported")
        }
    }

    /// Throws unless `wireType` is `expected`; `what` names the field.
    package func require(
        _ wireType: WireType, is expected: WireType, for what: @autoclosure () -> String, tagAt offset: Int
    ) throws(RemoteWriteError) {
        guard wireType == expected else {
            throw error(at: offset, "\(what()) has wire type \(wireType.name); expected \(expected.name)")
        }
    }
}
