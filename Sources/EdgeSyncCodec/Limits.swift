/// What a decoder will accept before it allocates or inflates anything; every count, length and
/// size in a frame is checked against these first.
public struct DecodingLimits: Sendable, Hashable {
    /// Largest whole frame, in bytes.
    public var maximumFrameBytes: Int = 64 << 20
    /// Largest payload after inflating, in bytes: a decompression bomb is refused from its header.
    public var maximumPayloadBytes: Int = 64 << 20
    /// Most readings in one batch.
    public var maximumReadings: Int = 1_000_000
    /// Most series keys in one batch.
    public var maximumSeries: Int = 100_000
    /// Longest series key, in UTF-8 bytes.
    public var maximumSeriesKeyBytes: Int = 1024
    /// Longest device id, in UTF-8 bytes.
    public var maximumDeviceBytes: Int = 256
    /// Most bytes of all series keys of one batch together. Version 3 front-codes keys (a key
    /// shares its first and last bytes with the key before it), so a small payload could otherwise
    /// declare 100,000 keys of 1 KiB each.
    public var maximumTotalSeriesKeyBytes: Int = 16 << 20

    public init() {}

    /// The defaults, which a receiver on the internet can afford for each request in flight.
    public static let `default` = DecodingLimits()
}

/// A version of the frame format (`Docs/wire-format.md`). Decoders read every version listed
/// here; encoders write ``v3`` unless told otherwise.
public enum FormatVersion: UInt8, Sendable, Hashable, CaseIterable, Comparable {
    /// Per-series columns with the sender's clock (`sentAt`) inside the payload.
    case v2 = 2
    /// Front-coded series keys, values of many short series coded together, no `sentAt`.
    case v3 = 3

    public static func < (lhs: FormatVersion, rhs: FormatVersion) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// How the encoder builds a frame.
public struct EncodingOptions: Sendable, Hashable {
    /// The format version to write; ``FormatVersion/v3`` by default. An agent falls back to
    /// ``FormatVersion/v2`` for a collector that answers 415 (unsupported version). Version 3 does
    /// not carry ``Batch/sentAt``; version 2 does.
    public var version: FormatVersion
    /// Whether to deflate the payload, and at which zlib level (1...9). The payload is already
    /// column-compressed; deflate usually gains a few percent for its cost (see Docs/performance.md).
    public var deflateLevel: Int?
    /// Series keys encoded lossily, each with its absolute error bound: every decoded value is
    /// within the bound of the original, and every reading is still kept. Empty by default
    /// (lossless).
    public var errorBounds: [String: Double]

    public init(deflateLevel: Int? = nil, errorBounds: [String: Double] = [:], version: FormatVersion = .v3) {
        self.deflateLevel = deflateLevel
        self.errorBounds = errorBounds
        self.version = version
    }
}
