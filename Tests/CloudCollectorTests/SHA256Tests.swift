import Testing

@testable import CloudCollector

struct SHA256Tests {
    /// The examples of FIPS 180-4 (NIST "SHA256.pdf", "SHA2_Additional.pdf") and the empty message.
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
        (
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
        ),
    ])
    func nistVectors(message: String, digest: String) {
        #expect(hexString(SHA256.hash(message.utf8)) == digest)
    }

    @Test func oneMillionAs() {
        let digest = SHA256.hash([UInt8](repeating: 0x61, count: 1_000_000))
        #expect(hexString(digest) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Messages whose padding falls on each side of the 56-byte boundary, fed in pieces.
    @Test func incrementalUpdatesMatchOneShot() {
        for length in [55, 56, 57, 63, 64, 65, 119, 120] {
            let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            var hasher = SHA256()
            hasher.update(message.prefix(length / 3))
            hasher.update(message.dropFirst(length / 3))
            #expect(hasher.finalize() == SHA256.hash(message))
        }
    }

    @Test func tokensAreRandomAndOnlyTheirHashIsComparable() {
        let first = DeviceToken.generate()
        let second = DeviceToken.generate()
        #expect(first != second)
        #expect(first.text.hasPrefix(DeviceToken.prefix) && first.text.count == DeviceToken.prefix.count + 64)
        #expect(first.hash.count == 32)
        #expect(DeviceToken.digestsMatch(first.hash, first.hash))
        #expect(!DeviceToken.digestsMatch(first.hash, second.hash))
        #expect(!DeviceToken.digestsMatch(first.hash, Array(first.hash.dropLast())))
        #expect(!"\(first)".contains(first.text))
    }
}
