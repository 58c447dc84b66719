import EdgeSyncTestSupport

@testable import HTTPCore

/// One parsed request, with its body pieces joined so that outcomes compare across chunkings.
struct ParsedRequest: Equatable {
    var head: HTTPRequestHead
    var body: [UInt8] = []
    var trailers = HTTPHeaders()
    var isComplete = false

    var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Everything a parser made of a byte stream: the requests and the error that stopped it, if any.
struct ParseOutcome: Equatable {
    var requests: [ParsedRequest] = []
    var error: HTTPError?
}

/// How a message is cut into the pieces handed to `append`.
enum Chunking: Sendable, CustomStringConvertible {
    case whole
    case bytewise
    case random(seed: UInt64)

    static let all: [Chunking] = [.whole, .bytewise] + (1...16).map { .random(seed: $0) }

    var description: String {
        switch self {
        case .whole: "whole"
        case .bytewise: "byte by byte"
        case .random(let seed): "random splits #\(seed)"
        }
    }

    func pieces(of bytes: [UInt8]) -> [[UInt8]] {
        switch self {
        case .whole:
            return [bytes]
        case .bytewise:
            return bytes.map { [$0] }
        case .random(let seed):
            var generator = SeededRandom(seed: seed)
            var pieces: [[UInt8]] = []
            var index = 0
            while index < bytes.count {
                let length = Int.random(in: 1...max(1, min(40, bytes.count - index)), using: &generator)
                pieces.append(Array(bytes[index..<index + length]))
                index += length
            }
            return pieces
        }
    }
}

func parse(_ text: String, limits: HTTPRequestParser.Limits = .init(), chunking: Chunking = .whole) -> ParseOutcome {
    parse(Array(text.utf8), limits: limits, chunking: chunking)
}

/// Feeds `bytes` in the given chunking and drains events after every piece, as the server does.
func parse(_ bytes: [UInt8], limits: HTTPRequestParser.Limits = .init(), chunking: Chunking = .whole) -> ParseOutcome {
    var parser = HTTPRequestParser(limits: limits)
    var outcome = ParseOutcome()
    for piece in chunking.pieces(of: bytes) {
        parser.append(piece)
        do {
            while let event = try parser.next() {
                switch event {
                case .head(let head):
                    outcome.requests.append(ParsedRequest(head: head))
                case .body(let bytes):
                    outcome.requests[outcome.requests.count - 1].body += bytes
                case .end(let trailers):
                    outcome.requests[outcome.requests.count - 1].trailers = trailers
                    outcome.requests[outcome.requests.count - 1].isComplete = true
                }
            }
        } catch {
            outcome.error = error
            return outcome
        }
    }
    return outcome
}
