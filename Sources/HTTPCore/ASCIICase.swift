/// Case-insensitive handling of protocol tokens, byte by byte and for ASCII letters only.
///
/// HTTP tokens (field names, transfer codings, connection options, media types, auth schemes) are
/// case-insensitive for ASCII letters and nothing else. Swift's `lowercased()` applies Unicode case
/// mapping: U+212A KELVIN SIGN becomes ASCII `k`, so `chun\u{212A}ed` would read as `chunked` here
/// while a proxy in front reads it as an unknown coding, which is a request-smuggling desync.
/// Every comparison of protocol bytes goes through these functions instead.
public enum ASCIICase {
    /// Whether `a` and `b` are the same bytes, ignoring the case of ASCII letters only.
    public static func equal(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        let a = a.utf8
        let b = b.utf8
        guard a.count == b.count else { return false }
        // Index by index rather than through `zip`: this runs for every header field of every request.
        var i = a.startIndex
        var j = b.startIndex
        while i != a.endIndex {
            let x = a[i]
            let y = b[j]
            if x != y && lower(x) != lower(y) { return false }
            a.formIndex(after: &i)
            b.formIndex(after: &j)
        }
        return true
    }

    /// `text` with ASCII `A`–`Z` turned into `a`–`z` and every other byte left as it is.
    public static func lowercased(_ text: some StringProtocol) -> String {
        String(decoding: text.utf8.map(lower), as: UTF8.self)
    }

    /// `text` with ASCII `a`–`z` turned into `A`–`Z` and every other byte left as it is.
    public static func uppercased(_ text: some StringProtocol) -> String {
        String(decoding: text.utf8.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
    }

    /// Whether `text` starts with `prefix`, ignoring the case of ASCII letters only.
    public static func hasPrefix(_ text: some StringProtocol, _ prefix: some StringProtocol) -> Bool {
        var bytes = text.utf8.makeIterator()
        for expected in prefix.utf8 {
            guard let byte = bytes.next(), lower(byte) == lower(expected) else { return false }
        }
        return true
    }

    /// Whether `text` is a non-empty RFC 9110 `token` (only `tchar`: letters, digits, ``!#$%&'*+-.^_`|~``).
    public static func isToken(_ text: some StringProtocol) -> Bool {
        !text.utf8.isEmpty && text.utf8.allSatisfy(isTokenByte)
    }

    static func isTokenByte(_ byte: UInt8) -> Bool { tokenBytes[Int(byte)] }

    @inline(__always)
    static func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }

    /// RFC 9110 `tchar`.
    private static let tokenBytes: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in UInt8(0x30)...0x39 { table[Int(byte)] = true }
        for byte in UInt8(0x41)...0x5A { table[Int(byte)] = true }
        for byte in UInt8(0x61)...0x7A { table[Int(byte)] = true }
        for byte in "!#$%&'*+-.^_`|~".utf8 { table[Int(byte)] = true }
        return table
    }()
}
