/// The `name=value&…` parameters of a request target's query, percent-decoded (`+` is a space).
public struct HTTPQueryParameters: Sendable {
    public private(set) var items: [(name: String, value: String)] = []

    /// Parses `query` (the part after `?`, or nil for none); nil when an escape is malformed or a
    /// name or value is not UTF-8 once decoded.
    public init?(_ query: String?) {
        guard let query, !query.isEmpty else { return }
        for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let equals = pair.firstIndex(of: UInt8(ascii: "="))
            guard let name = Self.decode(pair[..<(equals ?? pair.endIndex)]),
                let value = Self.decode(equals.map { pair[pair.index(after: $0)...] } ?? pair[pair.endIndex...])
            else { return nil }
            items.append((name, value))
        }
    }

    /// The first value of `name`.
    public subscript(name: String) -> String? {
        items.first { $0.name == name }?.value
    }

    public func values(for name: String) -> [String] {
        items.filter { $0.name == name }.map(\.value)
    }

    private static func decode(_ bytes: Substring.UTF8View.SubSequence) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                let high = bytes.index(after: index)
                guard high < bytes.endIndex, bytes.index(after: high) < bytes.endIndex,
                    let upper = hexValue(bytes[high]), let lower = hexValue(bytes[bytes.index(after: high)])
                else { return nil }
                out.append(upper << 4 | lower)
                index = bytes.index(high, offsetBy: 2)
                continue
            }
            out.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            index = bytes.index(after: index)
        }
        return String(validating: out, as: UTF8.self)
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
