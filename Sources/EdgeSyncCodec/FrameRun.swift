/// The leading facts of one frame, read by ``BatchDecoder/summary(of:)`` without decoding its columns.
public struct FrameSummary: Sendable, Hashable {
    public var version: FormatVersion
    public var device: String
    public var stream: UInt64
    public var firstSequence: UInt64
    public var readingCount: Int
    /// The whole frame's size in bytes.
    public var frameBytes: Int

    public init(
        version: FormatVersion, device: String, stream: UInt64, firstSequence: UInt64, readingCount: Int,
        frameBytes: Int
    ) {
        self.version = version
        self.device = device
        self.stream = stream
        self.firstSequence = firstSequence
        self.readingCount = readingCount
        self.frameBytes = frameBytes
    }
}

/// Frames of one stream back to back, each complete with its own header and checksum, covering
/// one contiguous run of sequence numbers: what an agent sends when the chunks its spool stored
/// form a batch, so that they go on the wire as the bytes they are on disk (`Docs/wire-format.md`,
/// "Frame runs").
public enum FrameRun {
    /// Media type of a frame run in an HTTP body. A collector that does not know it answers 415
    /// before reading the body, and the agent falls back to one frame per request.
    public static let mediaType = "application/vnd.edge-sync.frame-run"

    /// The byte ranges of the frames in `run`, found from their headers; each header is checked
    /// against `limits`, and the whole run must not exceed `limits.maximumFrameBytes`.
    public static func frameRanges(in run: UnsafeRawBufferPointer, limits: DecodingLimits = .default)
        throws(CodecError) -> [Range<Int>]
    {
        guard run.count <= limits.maximumFrameBytes else {
            throw CodecError(
                .limitExceeded, "frame run of \(run.count) bytes exceeds the limit of \(limits.maximumFrameBytes) bytes",
                at: 0, in: .frame)
        }
        guard !run.isEmpty else { throw CodecError(.truncated, "a frame run holds at least one frame", at: 0, in: .frame) }
        var ranges: [Range<Int>] = []
        var start = 0
        while start < run.count {
            let rest = UnsafeRawBufferPointer(rebasing: run[start...])
            let header: FrameHeader
            do {
                header = try FrameHeader.parse(rest, limits: limits)
            } catch {
                throw error.shifted(by: start)
            }
            guard header.frameBytes <= rest.count else {
                throw CodecError(
                    .truncated, "frame \(ranges.count + 1) declares \(header.frameBytes) bytes, only \(rest.count) arrived",
                    at: run.count, in: .frame)
            }
            ranges.append(start..<start + header.frameBytes)
            start += header.frameBytes
        }
        return ranges
    }

    /// `frames` back to back: a frame run's body.
    public static func join(_ frames: [[UInt8]]) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(frames.reduce(0) { $0 + $1.count })
        for frame in frames { body += frame }
        return body
    }
}

extension BatchDecoder {
    /// Decodes a frame run into one batch. Every frame must decode, belong to the same device and
    /// stream, hold at least one reading, and start where the one before it ended; the readings
    /// of all frames together must stay within `limits.maximumReadings`. `sentAt` is the first
    /// frame's (0 for version 3: the clock travels in a header).
    public func decodeRun(_ run: [UInt8]) throws(CodecError) -> Batch {
        try run.withUnsafeBytes { raw in Result { () throws(CodecError) in try decodeRun(raw) } }.get()
    }

    public func decodeRun(_ run: UnsafeRawBufferPointer) throws(CodecError) -> Batch {
        let ranges = try FrameRun.frameRanges(in: run, limits: limits)
        var parts: [Batch] = []
        parts.reserveCapacity(ranges.count)
        var total = 0
        for (index, range) in ranges.enumerated() {
            let part: Batch
            do {
                part = try decode(UnsafeRawBufferPointer(rebasing: run[range]))
            } catch {
                throw error.shifted(by: range.lowerBound)
            }
            guard !part.readings.isEmpty else {
                throw CodecError(.malformed, "frame \(index + 1) of the run holds no readings", at: range.lowerBound, in: .frame)
            }
            total += part.readings.count
            guard total <= limits.maximumReadings else {
                throw CodecError(
                    .limitExceeded, "the run holds more than \(limits.maximumReadings) readings", at: range.lowerBound,
                    in: .frame)
            }
            if let previous = parts.last {
                guard part.device.utf8.elementsEqual(previous.device.utf8), part.stream == previous.stream else {
                    throw CodecError(
                        .malformed, "frame \(index + 1) of the run belongs to another device or stream",
                        at: range.lowerBound, in: .frame)
                }
                guard part.firstSequence == previous.sequences.upperBound else {
                    throw CodecError(
                        .malformed,
                        "frame \(index + 1) starts at sequence \(part.firstSequence), not \(previous.sequences.upperBound)",
                        at: range.lowerBound, in: .frame)
                }
            }
            parts.append(part)
        }
        return Batch(joining: parts)
    }
}

extension Batch {
    /// One batch of `parts`, which are of one device and stream and follow each other in sequence
    /// (checked by the caller); series keys are merged byte-wise, `sentAt` is the first part's.
    public init(joining parts: [Batch]) {
        guard let first = parts.first else {
            self.init(device: "", stream: 0, firstSequence: 1, seriesKeys: [], readings: [])
            return
        }
        if parts.count == 1 {
            self = first
            return
        }
        var keys: [String] = []
        var index: [ExactString: Int] = [:]
        var readings: [Reading] = []
        readings.reserveCapacity(parts.reduce(0) { $0 + $1.readings.count })
        for part in parts {
            precondition(part.firstSequence == first.firstSequence + UInt64(readings.count), "parts must be contiguous")
            let map = part.seriesKeys.map { key -> Int in
                if let known = index[ExactString(key)] { return known }
                keys.append(key)
                index[ExactString(key)] = keys.count - 1
                return keys.count - 1
            }
            for reading in part.readings {
                readings.append(Reading(series: map[reading.series], timestamp: reading.timestamp, value: reading.value))
            }
        }
        self.init(
            device: first.device, stream: first.stream, firstSequence: first.firstSequence, seriesKeys: keys,
            readings: readings, sentAt: first.sentAt)
    }
}

extension CodecError {
    /// The same error with a frame-area offset moved by `bytes` (a frame's position in a run).
    func shifted(by bytes: Int) -> CodecError {
        guard bytes != 0, let offset, area == .frame else { return self }
        return CodecError(code, reason, at: offset + bytes, in: .frame)
    }
}
