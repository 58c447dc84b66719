import EdgeSyncTestSupport
import Testing

@testable import HTTPCore

/// Seeded random mutations of valid messages: whatever the parser makes of them, it must make the
/// same of them in every chunking, and it must never accept a head it would reject whole.
@Suite("Parser properties")
struct ParserPropertyTests {
    private static let seeds: [String] = [
        "POST /v1/batches HTTP/1.1\r\nHost: c\r\nContent-Length: 11\r\n\r\nhello world",
        "PUT /up HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: c\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ]

    /// Bytes that matter to the grammar, so mutations hit interesting places often.
    private static let alphabet: [UInt8] = Array("\r\n :;,0aF-\t\u{7F}\u{00}".utf8) + [0x80, 0xFF]

    private static func mutate(_ bytes: [UInt8], using generator: inout SeededRandom) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<Int.random(in: 1...3, using: &generator) {
            let index = Int.random(in: 0..<bytes.count, using: &generator)
            switch Int.random(in: 0..<3, using: &generator) {
            case 0: bytes[index] = alphabet.randomElement(using: &generator) ?? 0
            case 1: bytes.insert(alphabet.randomElement(using: &generator) ?? 0, at: index)
            default: if bytes.count > 1 { bytes.remove(at: index) }
            }
        }
        return bytes
    }

    @Test("mutated messages parse the same in every chunking", arguments: 0..<8)
    func mutationsAreChunkInvariant(round: Int) {
        var generator = SeededRandom(seed: UInt64(1000 + round))
        for _ in 0..<250 {
            let seed = Self.seeds.randomElement(using: &generator) ?? Self.seeds[0]
            let message = Self.mutate(Array(seed.utf8), using: &generator)
            let whole = parse(message)
            let splitSeed = UInt64.random(in: 1...1_000_000, using: &generator)
            #expect(parse(message, chunking: .random(seed: splitSeed)) == whole, "\(message)")
            #expect(parse(message, chunking: .bytewise) == whole, "\(message)")
        }
    }

    /// Found by the HTTP request fuzzer: a line longer than its limit that ends in a bare LF was 400
    /// when the LF came in the same read and 414 when it came later; the status now depends on the
    /// bytes only.
    @Test(
        "an over-long line ending in a bare LF is too long in every chunking",
        arguments: [
            ("GET /\(String(repeating: "a", count: 80)) HTTP/1.1\nHost: c\r\n\r\n", 414),
            ("GET / HTTP/1.1\r\nX: \(String(repeating: "b", count: 300))\n\r\n", 431),
        ])
    func overLongLineWithBareLineFeed(message: String, status: Int) {
        let limits = HTTPRequestParser.Limits(maxRequestLineLength: 64, maxHeaderBytes: 256)
        for chunking in Chunking.all {
            #expect(parse(message, limits: limits, chunking: chunking).error?.status.code == status, "\(chunking)")
        }
    }

    @Test func arbitraryBytesNeverTrapAndAlwaysEndInAStatus() {
        var generator = SeededRandom(seed: 77)
        for _ in 0..<500 {
            let length = Int.random(in: 0..<300, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let outcome = parse(bytes, limits: hostileLimits)
            if let error = outcome.error {
                #expect((400..<600).contains(error.status.code))
            }
        }
    }
}
