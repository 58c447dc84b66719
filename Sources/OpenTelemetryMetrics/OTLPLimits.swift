/// Bounds on one OTLP request, checked while decoding so memory stays bounded whatever a client sends.
package struct OTLPLimits: Sendable, Equatable {
    /// Largest protobuf or JSON message (after gzip inflation, which the HTTP layer bounds first).
    package var maximumMessageBytes = 32 << 20
    /// Most data points in one request, over all metrics (each becomes at least one reading).
    package var maximumPoints = 1_000_000
    /// Most attributes on one resource, scope or point.
    package var maximumAttributes = 128
    /// Longest attribute key or value, metric name or scope name, in bytes.
    package var maximumStringBytes = 1024
    /// Most buckets in one histogram point, and most quantiles in one summary point.
    package var maximumBuckets = 1024

    package init() {}

    package static let `default` = OTLPLimits()
}
