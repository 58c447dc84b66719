import EdgeSyncCodec
import EdgeSyncProtocol

/// One frame of an upload and the sequence numbers it covers.
package struct UploadFrame: Sendable, Equatable {
    package var range: SequenceRange
    package var bytes: [UInt8]
    /// Whether these are a stored chunk's own bytes; false for a part of a chunk, decoded and
    /// encoded again (a cut at a range boundary, a split, the rest after a partial acknowledgement).
    package var isStored: Bool

    package init(range: SequenceRange, bytes: [UInt8], isStored: Bool) {
        self.range = range
        self.bytes = bytes
        self.isStored = isStored
    }
}

/// What the uploader sends in one request: frames covering one contiguous range of one stream,
/// in sequence order. On the happy path they are the spool's stored chunks, sent as a frame run
/// without being decoded; decoding happens only to cut, split or fall back to one version 2 frame.
package struct UploadBatch: Sendable, Equatable {
    package private(set) var frames: [UploadFrame]
    package let range: SequenceRange

    /// - Precondition: `frames` is not empty and its ranges follow each other.
    package init(frames: [UploadFrame]) {
        precondition(!frames.isEmpty, "an upload holds at least one frame")
        for (previous, next) in zip(frames, frames.dropFirst()) {
            precondition(next.range.first == previous.range.last + 1, "frames of an upload are contiguous")
        }
        self.frames = frames
        self.range = SequenceRange(frames[0].range.first, frames[frames.count - 1].range.last)
    }

    /// `batch` encoded as one frame (an encoded part, not stored bytes).
    /// - Precondition: `batch` holds at least one reading.
    package init(encoding batch: Batch, options: EncodingOptions) throws(CodecError) {
        guard let range = batch.sequenceRange else { preconditionFailure("an upload holds at least one reading") }
        self.init(frames: [UploadFrame(range: range, bytes: try BatchEncoder(options: options).encode(batch), isStored: false)])
    }

    package var byteCount: Int { frames.reduce(0) { $0 + $1.bytes.count } }

    /// Readings that travel in their stored bytes.
    package var storedReadings: Int { frames.reduce(0) { $0 + ($1.isStored ? Int($1.range.count) : 0) } }

    /// The frame run's body: the frames back to back.
    package var runBody: [UInt8] { FrameRun.join(frames.map(\.bytes)) }

    /// All readings as one batch (for the version 2 fallback and for cutting a frame).
    package func decoded(limits: DecodingLimits = .default) throws(CodecError) -> Batch {
        let decoder = BatchDecoder(limits: limits)
        var parts: [Batch] = []
        for frame in frames { parts.append(try decoder.decode(frame.bytes)) }
        return Batch(joining: parts)
    }

    /// The readings of `part` (inside `range`): frames wholly inside stay as they are, frames it
    /// cuts are decoded, sliced and encoded with `options`.
    package func slice(_ part: SequenceRange, options: EncodingOptions) throws(CodecError) -> UploadBatch {
        var kept: [UploadFrame] = []
        for frame in frames where frame.range.last >= part.first && frame.range.first <= part.last {
            let inside = SequenceRange(max(frame.range.first, part.first), min(frame.range.last, part.last))
            if inside == frame.range {
                kept.append(frame)
            } else {
                let batch = try BatchDecoder().decode(frame.bytes).slice(inside)
                kept.append(UploadFrame(range: inside, bytes: try BatchEncoder(options: options).encode(batch), isStored: false))
            }
        }
        return UploadBatch(frames: kept)
    }

    /// Two halves for a batch too large to send (over the byte limit, or 413): at the frame
    /// boundary nearest the middle of the bytes when there are several frames, else the one frame
    /// cut at its middle reading. Needs at least two readings.
    package func halves(options: EncodingOptions) throws(CodecError) -> [UploadBatch] {
        if frames.count > 1 {
            let total = byteCount
            var bytes = 0
            var cut = 1
            for (index, frame) in frames.enumerated().dropLast() {
                bytes += frame.bytes.count
                cut = index + 1
                if bytes * 2 >= total { break }
            }
            return [UploadBatch(frames: Array(frames[..<cut])), UploadBatch(frames: Array(frames[cut...]))]
        }
        let middle = range.first + range.count / 2
        return [
            try slice(SequenceRange(range.first, middle - 1), options: options),
            try slice(SequenceRange(middle, range.last), options: options),
        ]
    }
}
