/// A device's bearer token: 32 random bytes from the system's cryptographic generator, written as
/// `est_` followed by 64 lowercase hex digits.
///
/// Only ``hash`` is ever stored. The token itself carries 256 bits of entropy, so an unsalted
/// SHA-256 is enough: there is nothing to brute-force that is cheaper than guessing the token.
package struct DeviceToken: Sendable, Hashable, CustomStringConvertible {
    package static let prefix = "est_"
    package let text: String

    package init(text: String) { self.text = text }

    /// A fresh random token.
    package static func generate() -> DeviceToken {
        var generator = SystemRandomNumberGenerator()  // getrandom(2) on Linux
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for _ in 0..<4 {
            let word = generator.next()
            for shift in stride(from: 0, to: 64, by: 8) {
                bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        return DeviceToken(text: prefix + hexString(bytes))
    }

    /// What the database keeps: SHA-256 of the token's UTF-8 text.
    package var hash: [UInt8] { SHA256.hash(text.utf8) }

    /// The token never appears in logs or descriptions.
    package var description: String { "DeviceToken(…)" }

    /// Compares two digests in time that depends only on their lengths, so a mismatch position
    /// cannot be measured.
    package static func digestsMatch(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}
