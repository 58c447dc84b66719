/// Writes the protobuf wire format; the counterpart of `ProtobufReader` for tests, fixtures and the
/// benchmark.
package struct ProtobufWriter: Sendable {
    package private(set) var bytes: [UInt8] = []

    package init() {}

    package mutating func appendVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    package mutating func appendTag(field: Int, wireType: ProtobufReader.WireType) {
        appendVarint(UInt64(field) << 3 | UInt64(wireType.rawValue))
    }

    package mutating func appendVarintField(_ field: Int, _ value: UInt64) {
        appendTag(field: field, wireType: .varint)
        appendVarint(value)
    }

    package mutating func appendFixed64Field(_ field: Int, _ value: UInt64) {
        appendTag(field: field, wireType: .fixed64)
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    package mutating func appendBytesField(_ field: Int, _ value: some Collection<UInt8>) {
        appendTag(field: field, wireType: .lengthDelimited)
        appendVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    package mutating func appendMessageField(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
        var nested = ProtobufWriter()
        build(&nested)
        appendBytesField(field, nested.bytes)
    }
}
