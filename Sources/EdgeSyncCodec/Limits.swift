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

    public init() {}

    /// The defaults, which a receiver on the internet can afford for each request in flight.
    public static let `default` = DecodingLimits()
}

/// How the encoder builds a frame.
public struct EncodingOptions: Sendable, Hashable {
    /// Whether to deflate the payload, and at which zlib level (1...9). The payload is already
    /// column-compressed; deflate usually gains a few percent for its cost (see Docs/performance.md).
    public var deflateLevel: Int?
    /// Series keys encoded lossily, each with its absolute error bound: every decoded value is
    /// within the bound of the original, and every reading is still kept. Empty by default
    /// (lossless).
    public var errorBounds: [String: Double]

    public init(deflateLevel: Int? = nil, errorBounds: [String: Double] = [:]) {
        self.deflateLevel = deflateLevel
        self.errorBounds = errorBounds
    }
}
