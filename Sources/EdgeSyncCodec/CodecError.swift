/// A frame that could not be encoded or decoded, with what is wrong and where.
///
/// Matching is by ``code`` (a small open set, so cases can be added without breaking callers);
/// the ``description`` is for people and names the byte offset when there is one.
public struct CodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The family of a codec error, stable across releases; the collector maps these to HTTP statuses.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case truncated, badMagic, unsupportedVersion, unsupportedFlags, checksumMismatch
            case limitExceeded, malformed, invalidBatch, compressionFailed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The input ended before a field it declared.
        public static let truncated = Code(.truncated)
        /// The first four bytes are not the frame magic.
        public static let badMagic = Code(.badMagic)
        /// The frame's format version is not one this decoder knows.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// The frame sets flag bits this decoder does not know.
        public static let unsupportedFlags = Code(.unsupportedFlags)
        /// The CRC-32 does not match the frame's bytes.
        public static let checksumMismatch = Code(.checksumMismatch)
        /// A declared size or count is larger than the decoder's configured limits.
        public static let limitExceeded = Code(.limitExceeded)
        /// A field holds a value the format does not allow.
        public static let malformed = Code(.malformed)
        /// A batch handed to the encoder breaks the batch rules (bad sequence, unknown series...).
        public static let invalidBatch = Code(.invalidBatch)
        /// zlib failed while deflating or inflating.
        public static let compressionFailed = Code(.compressionFailed)

        public var description: String {
            switch base {
            case .truncated: "truncated"
            case .badMagic: "bad magic"
            case .unsupportedVersion: "unsupported version"
            case .unsupportedFlags: "unsupported flags"
            case .checksumMismatch: "checksum mismatch"
            case .limitExceeded: "limit exceeded"
            case .malformed: "malformed"
            case .invalidBatch: "invalid batch"
            case .compressionFailed: "compression failed"
            }
        }
    }

    /// Which bytes an ``offset`` counts in.
    public enum Area: Hashable, Sendable {
        /// Offsets from the first byte of the frame.
        case frame
        /// Offsets from the first byte of the payload after inflating (equal to the frame area
        /// shifted by the header size when the payload is not deflated).
        case payload
    }

    public let code: Code
    /// Byte offset of the offending field, when the error is about a position in the input.
    public let offset: Int?
    public let area: Area
    /// What is wrong, in words.
    public let reason: String

    init(_ code: Code, _ reason: String, at offset: Int? = nil, in area: Area = .payload) {
        self.code = code
        self.reason = reason
        self.offset = offset
        self.area = area
    }

    public var description: String {
        guard let offset else { return "\(code): \(reason)" }
        return "\(code) at \(area == .frame ? "frame" : "payload") byte \(offset): \(reason)"
    }
}
