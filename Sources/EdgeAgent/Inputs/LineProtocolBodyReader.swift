import EdgeSyncCodec
import HTTPCore
import Synchronization

/// Reads a line protocol request body piece by piece, inflating gzip as it goes, and parses each
/// complete line as soon as it is there.
///
/// Neither the body nor its inflated text is ever held whole: memory is one received piece, one
/// 64 KiB inflated piece, one partial line (at most `LineProtocolParser.maximumLineBytes`) and the
/// readings parsed so far. A decompression bomb therefore costs the zlib state and a piece until
/// `maximumInflatedBytes` refuses it.
///
/// The answers are those of reading the whole body first. A bad line is skipped and recorded with
/// its number (InfluxDB's partial write: the good lines are stored), and a line longer than
/// `LineProtocolParser.maximumLineBytes` is skipped up to its newline without being kept.
struct LineProtocolBodyReader {
    let configuration: InputEndpoints.Configuration
    let defaultTimestamp: Int64

    /// Bytes of text handed to the parser (not those of an over-long line skipped to its end).
    private(set) var parsedBytes = 0
    /// The lines that did not parse; the others are in the block.
    private(set) var badLines = BadLines()
    private var lineNumber = 1
    /// Inside a line that passed the length limit: everything up to its newline is dropped.
    private var isSkippingLongLine = false
    /// The start of a line whose newline has not arrived yet.
    private var partialLine: [UInt8] = []

    init(configuration: InputEndpoints.Configuration, defaultTimestamp: Int64) {
        self.configuration = configuration
        self.defaultTimestamp = defaultTimestamp
    }

    /// Parses `request`'s body (gzip when `isGzip`) into `block` with `parser`.
    ///
    /// - Throws: `InputFailure` 413 for a body over `maximumBodyBytes`, inflated text over
    ///   `maximumInflatedBytes` or more readings than `maximumReadingsPerRequest`; 400 for bad gzip
    ///   or a body that could not be read.
    /// A gzip body inflates each received piece under a permit of `inflations`, so that at most its
    /// limit of pieces are being inflated at once across connections, while no permit is held
    /// waiting for the network (a slow client cannot keep one).
    mutating func read(
        _ request: HTTPRequest, isGzip: Bool, inflations: InflationGate, parser: inout LineProtocolParser,
        into block: inout ReadingBlock, statistics: InputStatistics
    ) async throws(InputFailure) -> BadLines {
        let bodyLimit = configuration.maximumBodyBytes
        let textLimit = configuration.maximumInflatedBytes
        let inflater = isGzip ? GzipInflater(maximumBytes: textLimit) : nil
        var received = 0
        do {
            for try await piece in request.body {
                received += piece.count
                statistics.bytesReceived.add(piece.count, ordering: .relaxed)
                guard received <= bodyLimit else {
                    throw InputFailure(
                        .contentTooLarge, "too_large", "the body exceeds the limit of \(bodyLimit) bytes")
                }
                if let inflater {
                    try await inflations.withPermit { () async throws(InputFailure) in
                        try inflate(piece, with: inflater, parser: &parser, block: &block)
                    }
                } else {
                    guard received <= textLimit else {
                        throw InputFailure(
                            .contentTooLarge, "too_large", "the body exceeds the limit of \(textLimit) bytes")
                    }
                    try feed(piece, parser: &parser, block: &block)
                }
            }
            if let inflater {
                try await inflations.withPermit { () async throws(InputFailure) in
                    try inflate([], with: inflater, parser: &parser, block: &block)
                    do throws(Gzip.Failure) { try inflater.finish() } catch { throw InputFailure.gzip(error) }
                }
            }
        } catch let failure as InputFailure {
            throw failure
        } catch {
            throw InputFailure.unreadableBody(error, limit: bodyLimit)
        }
        if !partialLine.isEmpty {
            let last = partialLine
            partialLine = []
            try parse(last[...], parser: &parser, block: &block)
        }
        return badLines
    }

    /// Inflates `compressed` and parses what it gives.
    private mutating func inflate(
        _ compressed: [UInt8], with inflater: GzipInflater, parser: inout LineProtocolParser, block: inout ReadingBlock
    ) throws(InputFailure) {
        inflater.append(compressed)
        while true {
            let text: [UInt8]?
            do throws(Gzip.Failure) { text = try inflater.next() } catch { throw InputFailure.gzip(error) }
            guard let text else { return }
            try feed(text, parser: &parser, block: &block)
        }
    }

    /// Parses the complete lines in `piece` (with the partial line before it) and keeps the rest.
    private mutating func feed(_ whole: [UInt8], parser: inout LineProtocolParser, block: inout ReadingBlock)
        throws(InputFailure)
    {
        var piece = whole[...]
        if isSkippingLongLine {
            guard let newline = piece.firstIndex(of: 0x0A) else { return }
            isSkippingLongLine = false
            lineNumber += 1
            piece = piece[(newline + 1)...]
        }
        parsedBytes += piece.count
        guard let lastNewline = piece.lastIndex(of: 0x0A) else {
            partialLine += piece
            checkPartialLine()
            return
        }
        if partialLine.isEmpty {
            try parse(piece[...lastNewline], parser: &parser, block: &block)
        } else {
            partialLine += piece[...lastNewline]
            let lines = partialLine
            partialLine = []
            try parse(lines[...], parser: &parser, block: &block)
        }
        partialLine = Array(piece[(lastNewline + 1)...])
        checkPartialLine()
    }

    /// A line past the length limit is recorded as bad and dropped up to its newline.
    private mutating func checkPartialLine() {
        guard partialLine.count > LineProtocolParser.maximumLineBytes else { return }
        let error = InputError(
            line: lineNumber, "the line is longer than \(LineProtocolParser.maximumLineBytes) bytes")
        partialLine.withUnsafeBufferPointer { badLines.record(error, line: $0) }
        partialLine = []
        isSkippingLongLine = true
    }

    private mutating func parse(_ lines: ArraySlice<UInt8>, parser: inout LineProtocolParser, block: inout ReadingBlock)
        throws(InputFailure)
    {
        let first = lineNumber
        let result = lines.withUnsafeBufferPointer { buffer in
            Result { () throws(InputError) in
                try parser.parseLines(
                    buffer, firstLineNumber: first, defaultTimestamp: defaultTimestamp,
                    maximumReadings: configuration.maximumReadingsPerRequest, into: &block,
                    skippingBadLines: &badLines)
            }
        }
        switch result {
        case .success(let count):
            lineNumber += count
            // Checked per piece: a request of 100,000 new series stops after one piece past the limit.
            if let failure = InputFailure.tooManySeries(block.seriesKeys.count, configuration: configuration) {
                throw failure
            }
        case .failure(let error):  // only the readings limit throws; bad lines are in `badLines`
            throw InputFailure(.contentTooLarge, "too_many_readings", "\(error.reason); nothing was stored")
        }
    }
}

/// At most `limit` request bodies being inflated at once, across every connection; the others wait
/// their turn in arrival order.
///
/// Each inflation holds zlib's state, a piece of text and the readings parsed so far, and keeps a
/// core busy; without a bound, a thousand connections sending gzip at once would each hold theirs.
package final class InflationGate: Sendable {
    private struct State {
        var running = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    package let limit: Int
    private let state = Mutex(State())

    package init(limit: Int) { self.limit = max(1, limit) }

    /// Runs `body` once fewer than `limit` others run.
    package func withPermit<T>(_ body: () async throws(InputFailure) -> T) async throws(InputFailure) -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let admitted = state.withLock { state in
                if state.running < limit {
                    state.running += 1
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if admitted { continuation.resume() }
        }
    }

    private func release() {
        // The permit passes straight to the first waiter, so `running` stays as it is.
        let next = state.withLock { state in
            if state.waiting.isEmpty {
                state.running -= 1
                return nil as CheckedContinuation<Void, Never>?
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}

extension InputFailure {
    /// A 413 naming `inputs.http.max_series_per_request` when `count` series are over it, else nil.
    static func tooManySeries(_ count: Int, configuration: InputEndpoints.Configuration) -> InputFailure? {
        let limit = configuration.maximumSeriesPerRequest
        guard count > limit else { return nil }
        return InputFailure(
            .contentTooLarge, "too_many_series",
            "more than \(limit) distinct series in one request (inputs.http.max_series_per_request); "
                + "nothing was stored: split the write or raise the limit")
    }

    /// A body the server could not hand over whole: too large (413), cut or malformed framing (its status).
    static func unreadableBody(_ error: any Error, limit: Int) -> InputFailure {
        if let error = error as? HTTPError, error == .bodyTooLarge {
            return InputFailure(.contentTooLarge, "too_large", "the body exceeds the limit of \(limit) bytes")
        }
        if let error = error as? any HTTPResponseError {
            return InputFailure(error.status, "bad_body", error.responseMessage ?? "the body could not be read")
        }
        return InputFailure(.badRequest, "bad_body", "the body could not be read: \(error)")
    }

    /// A gzip body refused: 413 when it inflates past the limit, 400 when it is not valid gzip.
    static func gzip(_ failure: Gzip.Failure) -> InputFailure {
        failure.kind == .tooLarge
            ? InputFailure(.contentTooLarge, "too_large", failure.description)
            : InputFailure(.badRequest, "invalid_gzip", failure.description)
    }
}
