/// The `name=value&…` parameters of a request target's query, percent-decoded (`+` is a space).
public struct HTTPQueryParameters: Sendable {
    public private(set) var items: [(name: String, value: String)] = []

    /// Parses `query` (the part after `?`, or nil for none); nil when an escape is malformed or a
    /// name or value is not UTF-8 once decoded.
    public init?(_ query: String?) {
        guard let query, !query.isEmpty else { return }
        for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let equals = pair.firstIndex(of: UInt8(ascii: "="))
            guard let name = try? Self.decodeComponent(pair[..<(equals ?? pair.endIndex)]),
                let value = try? Self.decodeComponent(
                    equals.map { pair[pair.index(after: $0)...] } ?? pair[pair.endIndex...])
            else { return nil }
            items.append((name, value))
        }
    }

    /// The first value of `name`, compared byte for byte (String `==` would take a name spelled with
    /// U+212A KELVIN SIGN for one with `K`: canonical equivalence).
    public subscript(name: String) -> String? {
        items.first { $0.name.utf8.elementsEqual(name.utf8) }?.value
    }

    public func values(for name: String) -> [String] {
        items.filter { $0.name.utf8.elementsEqual(name.utf8) }.map(\.value)
    }

    /// Why a query component does not decode.
    public enum DecodingFailure: Error, Sendable, Equatable {
        /// A `%` not followed by two hex digits.
        case malformedEscape
        /// The decoded bytes are not UTF-8.
        case notUTF8
    }

    /// One percent-encoded name or value (`+` is a space) as text.
    public static func decodeComponent(_ bytes: some Sequence<UInt8>) throws(DecodingFailure) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount)
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                out.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let upper = iterator.next().flatMap(hexValue), let lower = iterator.next().flatMap(hexValue)
                else { throw .malformedEscape }
                out.append(upper << 4 | lower)
            default:
                out.append(byte)
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else { throw .notUTF8 }
        return text
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
