/// Bounds on one remote write request, checked while decoding so that memory stays bounded
/// whatever a client sends.
///
/// The defaults are far above what Prometheus sends (its `queue_config.max_samples_per_send` is
/// 2,000 by default) and far below what would hurt a gateway.
package struct RemoteWriteLimits: Sendable, Equatable {
    /// Largest decompressed protobuf message; checked against the Snappy preamble before allocating.
    package var maximumDecodedBytes: Int = 32 << 20
    /// Most time series in one request.
    package var maximumSeries: Int = 100_000
    /// Most samples in one request, summed over all series.
    package var maximumSamples: Int = 1_000_000
    /// Most label bytes in one series: names and values, `__name__` included, summed.
    package var maximumLabelBytesPerSeries: Int = 1024

    package init() {}

    package static let `default` = RemoteWriteLimits()
}
