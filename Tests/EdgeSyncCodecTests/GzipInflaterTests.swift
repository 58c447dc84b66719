import EdgeSyncCodec
import EdgeSyncTestSupport
import Testing

/// `GzipInflater` against `Gzip.decompress`, on every way the compressed bytes can be cut.
@Suite struct GzipInflaterTests {
    private static let text = Array((0..<4000).map { "sensor,id=\($0 % 37) value=\($0)\n" }.joined().utf8)

    /// Feeds `input` in pieces of `pieceLength` (0: byte by byte for the first 300 bytes, then
    /// whole) and collects the output, or the error.
    private static func inflate(
        _ input: [UInt8], pieces pieceLength: Int, maximumBytes: Int = 1 << 30, outputPiece: Int = 1000
    )
        -> Result<[UInt8], Gzip.Failure>
    {
        let inflater = GzipInflater(maximumBytes: maximumBytes, pieceBytes: outputPiece)
        var output: [UInt8] = []
        var index = 0
        do throws(Gzip.Failure) {
            while index < input.count {
                let length = pieceLength == 0 ? (index < 300 ? 1 : input.count - index) : pieceLength
                let end = min(input.count, index + length)
                inflater.append(input[index..<end])
                index = end
                while let piece = try inflater.next() {
                    #expect(piece.count <= outputPiece)
                    output += piece
                }
            }
            try inflater.finish()
            return .success(output)
        } catch {
            return .failure(error)
        }
    }

    @Test("every cut gives the same text", arguments: [0, 1, 7, 512, 1 << 20])
    func chunkInvariance(pieceLength: Int) throws {
        let compressed = Gzip.compress(Self.text)
        #expect(try Self.inflate(compressed, pieces: pieceLength).get() == Self.text)
    }

    @Test func concatenatedMembersInflateInOrder() throws {
        let compressed = Gzip.compress(Array("a\n".utf8)) + Gzip.compress(Self.text) + Gzip.compress([])
        #expect(try Self.inflate(compressed, pieces: 5).get() == Array("a\n".utf8) + Self.text)
    }

    @Test func aBombIsRefusedAtTheLimitHoweverItIsCut() {
        let bomb = Gzip.compress([UInt8](repeating: 0, count: 4 << 20), level: 9)
        for pieceLength in [1, 100, bomb.count] {
            let result = Self.inflate(bomb, pieces: pieceLength, maximumBytes: 1 << 20, outputPiece: 64 << 10)
            #expect(throws: Gzip.Failure.self) { try result.get() }
            if case .failure(let error) = result { #expect(error.kind == .tooLarge) }
        }
    }

    @Test func exactlyTheLimitIsAccepted() throws {
        let compressed = Gzip.compress(Self.text)
        #expect(try Self.inflate(compressed, pieces: 9, maximumBytes: Self.text.count).get() == Self.text)
    }

    @Test(
        "truncated, malformed, empty and trailing garbage are refused",
        arguments: [
            ("truncated", Gzip.Failure.Kind.truncated), ("empty", .truncated), ("not gzip", .malformed),
            ("garbage after the end", .malformed), ("bad checksum", .malformed),
        ])
    func hostile(name: String, kind: Gzip.Failure.Kind) {
        var input = Gzip.compress(Self.text)
        switch name {
        case "truncated": input.removeLast(20)
        case "empty": input = []
        case "not gzip": input = Array("plain text, not gzip\n".utf8)
        case "garbage after the end": input += [0x00, 0x01, 0x02]
        default: input[input.count - 6] ^= 0xFF  // the CRC-32 in the trailer
        }
        for pieceLength in [1, 13, max(1, input.count)] {
            let result = Self.inflate(input, pieces: pieceLength)
            guard case .failure(let error) = result else {
                Issue.record("\(name) inflated")
                continue
            }
            #expect(error.kind == kind, "\(name), pieces of \(pieceLength): \(error)")
            // The same as the whole-body decoder says.
            #expect(throws: Gzip.Failure.self) { try Gzip.decompress(input, maximumBytes: 1 << 30) }
        }
    }

    @Test func theErrorIsSticky() {
        let inflater = GzipInflater(maximumBytes: 1 << 20)
        inflater.append(Array("not gzip".utf8))
        #expect(throws: Gzip.Failure.self) { try inflater.next() }
        inflater.append(Gzip.compress(Self.text))
        #expect(throws: Gzip.Failure.self) { try inflater.next() }
        #expect(throws: Gzip.Failure.self) { try inflater.finish() }
    }
}
