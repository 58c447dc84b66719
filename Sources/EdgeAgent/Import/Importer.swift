import EdgeSyncProtocol
import Foundation

/// The input formats `edge-agent import` reads.
package enum ImportFormat: String, Sendable, CaseIterable {
    /// InfluxDB line protocol (`LineProtocolParser`).
    case lineProtocol = "lp"
    /// Wide CSV with a time column (`CSVParser`).
    case csv
}

/// What an import made durable: always a prefix of the input, whole lines only.
package struct ImportResult: Sendable, Hashable {
    /// Lines 1...`durableLines` of the input are fully in the spool (blank and comment lines included).
    package var durableLines = 0
    package var readings: Int64 = 0
    /// Readings parsed from those lines and handed to the sink; more than `readings` when
    /// processing rules dropped or reduced some.
    package var parsedReadings: Int64 = 0
    /// The sequence numbers the imported readings got (contiguous unless another producer wrote at
    /// the same time); `nil` when nothing was imported.
    package var sequences: SequenceRange?

    /// `range` is nil when the processing rules left none of the block's readings to store.
    mutating func add(_ range: SequenceRange?, lastLine: Int, parsed: Int) {
        durableLines = lastLine
        parsedReadings += Int64(parsed)
        guard let range else { return }
        readings += Int64(range.count)
        sequences = SequenceRange(sequences?.first ?? range.first, range.last)
    }

    /// `lines 1-13 (1,200 readings, seq 1-1200)`.
    package var summary: String {
        guard let sequences else { return "no readings (lines 1-\(durableLines) held none)" }
        return "lines 1-\(durableLines) (\(readings) readings, seq \(sequences.first)-\(sequences.last))"
    }
}

/// An import that stopped: why, and exactly what was made durable before it stopped.
package struct ImportFailure: Error, CustomStringConvertible, Sendable {
    package enum Reason: Sendable {
        case badLine(InputError)
        case spool(SpoolError)
        case read(String)
        /// Stopped on request (SIGINT, SIGTERM) at a line boundary.
        case interrupted
    }

    package var reason: Reason
    package var imported: ImportResult

    package var description: String {
        let cause: String
        let from: Int
        switch reason {
        case .badLine(let error):
            cause = error.description
            from = error.line
        case .spool(let error):
            cause = "the spool refused a write: \(error)"
            from = imported.durableLines + 1
        case .read(let message):
            cause = message
            from = imported.durableLines + 1
        case .interrupted:
            cause = "interrupted"
            from = imported.durableLines + 1
        }
        return "\(cause); imported durably: \(imported.summary); nothing from line \(from) on was imported"
    }
}

/// Reads line protocol or CSV from a file descriptor into a spool, in blocks that are each one
/// atomic append, with at most one block in flight while the next is parsed.
///
/// On a bad line, everything before it is appended (and durable) and nothing from it on; the
/// failure says exactly which lines and sequence numbers made it.
package struct Importer: Sendable {
    /// The spool, or the processing rules in front of it (`ProcessingSink`).
    package var sink: any ReadingSink
    package var format: ImportFormat
    /// Readings per append (a whole line never straddles two appends): one spool chunk's worth, so a
    /// bulk load commits few, large transactions. Each commit rewrites a few pages besides its
    /// chunk (the chunk index, the sequence counter, the file header), written twice (WAL and
    /// checkpoint): at 10,000 readings a commit that cost about 3 bytes per reading, at 65,536 half
    /// a byte (`edge-sync-bench lifecycle`).
    package var blockReadings = 65_536
    /// Called with the number of readings each time a block becomes durable.
    package var onDurable: @Sendable (Int64) -> Void = { _ in }
    /// When set and interrupted, the import stops at the next line boundary with everything read so
    /// far made durable (`ImportFailure.Reason.interrupted`).
    package var interruption: ImportInterruption?

    package init(spool: Spool, format: ImportFormat) {
        self.init(sink: spool, format: format)
    }

    package init(sink: any ReadingSink, format: ImportFormat) {
        self.sink = sink
        self.format = format
    }

    package func run(fileDescriptor: Int32) async throws(ImportFailure) -> ImportResult {
        var result = ImportResult()
        var block = ReadingBlock()
        var blockLastLine = 0
        var inFlight: (task: Task<SequenceRange?, any Error>, lastLine: Int, parsed: Int)?
        var lineProtocol = LineProtocolParser()
        var csv = CSVParser()
        let reader = LineReader(
            fileDescriptor: fileDescriptor, maximumLineBytes: LineProtocolParser.maximumLineBytes,
            interruption: interruption)
        let sink = self.sink
        let onDurable = self.onDurable

        func settle() async throws(ImportFailure) {
            guard let current = inFlight else { return }
            inFlight = nil
            do {
                let range = try await current.task.value
                result.add(range, lastLine: current.lastLine, parsed: current.parsed)
                onDurable(Int64(range?.count ?? 0))
            } catch {
                throw ImportFailure(reason: .spool(SpoolError.wrap(error, while: "importing")), imported: result)
            }
        }
        func appendNow(_ block: ReadingBlock, lastLine: Int) async throws(ImportFailure) {
            guard !block.isEmpty else {
                result.durableLines = lastLine
                return
            }
            do {
                let range = try await sink.appendWhole(seriesKeys: block.seriesKeys, readings: block.readings)
                result.add(range, lastLine: lastLine, parsed: block.count)
                onDurable(Int64(range?.count ?? 0))
            } catch {
                throw ImportFailure(reason: .spool(error), imported: result)
            }
        }

        do {
            try await reader.forEachLine { line, number in
                switch format {
                case .lineProtocol:
                    try lineProtocol.parse(line, lineNumber: number, defaultTimestamp: Self.now(), into: &block)
                case .csv:
                    try csv.parse(line, lineNumber: number, into: &block)
                }
                blockLastLine = number
                if block.count >= blockReadings {
                    try await settle()
                    let full = block
                    let task = Task { try await sink.appendWhole(seriesKeys: full.seriesKeys, readings: full.readings) }
                    inFlight = (task, number, full.count)
                    block.removeAll()
                }
            }
        } catch let error as ImportFailure {
            throw error
        } catch is ImportInterruption.Interrupted {
            try await settle()
            try await appendNow(block, lastLine: blockLastLine)
            throw ImportFailure(reason: .interrupted, imported: result)
        } catch let error as InputError {
            try await settle()
            try await appendNow(block, lastLine: error.line - 1)
            result.durableLines = error.line - 1
            throw ImportFailure(reason: .badLine(error), imported: result)
        } catch {
            try await settle()
            try await appendNow(block, lastLine: blockLastLine)
            throw ImportFailure(reason: .read("\(error)"), imported: result)
        }
        try await settle()
        try await appendNow(block, lastLine: blockLastLine)
        return result
    }

    private static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
