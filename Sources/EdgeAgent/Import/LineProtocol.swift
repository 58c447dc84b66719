import EdgeSyncCodec
import EdgeSyncProtocol

extension UInt8 {
    static let comma = UInt8(ascii: ",")
    static let space = UInt8(ascii: " ")
    static let equals = UInt8(ascii: "=")
    static let backslash = UInt8(ascii: "\\")
    static let quote = UInt8(ascii: "\"")
}

/// A position in one line of bytes, with the parsing steps line protocol and CSV share.
struct Cursor {
    let bytes: ArraySlice<UInt8>
    let lineNumber: Int
    var index: Int
    var end: Int

    init(bytes: ArraySlice<UInt8>, lineNumber: Int) {
        self.bytes = bytes
        self.lineNumber = lineNumber
        self.index = bytes.startIndex
        self.end = bytes.endIndex
    }

    var isAtEnd: Bool { index >= end }
    var peek: UInt8? { index < end ? bytes[index] : nil }
    var column: Int { index - bytes.startIndex + 1 }

    mutating func advance() { index += 1 }

    mutating func skipSpaces() {
        while index < end, bytes[index] == .space || bytes[index] == UInt8(ascii: "\t") { index += 1 }
    }

    mutating func trimTrailingWhitespace() {
        while end > index, [UInt8.space, UInt8(ascii: "\t"), UInt8(ascii: "\r")].contains(bytes[end - 1]) { end -= 1 }
    }

    func error(_ reason: String) -> InputError { InputError(line: lineNumber, column: column, reason) }

    func requireUTF8() throws(InputError) {
        guard String(validating: bytes[index..<end], as: UTF8.self) != nil else {
            throw InputError(line: lineNumber, "the line is not valid UTF-8")
        }
    }

    mutating func takeWhile(_ keep: (UInt8) -> Bool) -> String {
        let start = index
        while index < end, keep(bytes[index]) { index += 1 }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// An escaped name up to one of `stops`, which must not be empty.
    mutating func component(stoppingAt stops: [UInt8], what: String) throws(InputError) -> String {
        let start = column
        var out: [UInt8] = []
        while index < end {
            let byte = bytes[index]
            if byte == .backslash, index + 1 < end,
                [UInt8.comma, .equals, .space, .backslash].contains(bytes[index + 1])
            {
                out.append(bytes[index + 1])
                index += 2
                continue
            }
            if stops.contains(byte) { break }
            out.append(byte)
            index += 1
        }
        guard !out.isEmpty else { throw InputError(line: lineNumber, column: start, "\(what) is empty") }
        return String(decoding: out, as: UTF8.self)
    }

    /// A finite decimal number (`-1.5`, `2e-3`); no hex, NaN or infinity spellings.
    static func decimal<S: StringProtocol>(_ text: S) -> Double? {
        guard !text.isEmpty,
            text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 || $0 == 43 || $0 == 101 || $0 == 69 }
            ),
            let value = Double(text), value.isFinite
        else { return nil }
        return value
    }
}
