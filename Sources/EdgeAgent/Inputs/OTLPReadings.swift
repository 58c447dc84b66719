import EdgeSyncCodec
import EdgeSyncProtocol
import OpenTelemetryMetrics
import PrometheusRemoteWrite

/// The readings of one OTLP metrics export, and what was left out of them.
///
/// Mapping (`Docs/edge-agent.md`, "OTLP"), the one Prometheus uses for OTLP, so an OTLP series and the
/// same series over remote write or line protocol (`name,tags value`) are one series:
/// - tags: the resource's attributes, then the scope's, then `otel_scope_name` and
///   `otel_scope_version` (when not empty), then the point's; a later one with the same key wins.
///   Attributes with an empty key or value, arrays and key-value lists are left out.
/// - gauge and sum points: `name,tags value`; integers as Double (rounded beyond 2^53, counted).
/// - histogram points: `name_count`, `name_sum` (when sent) and cumulative `name_bucket,le=B` for each
///   bound plus `le=+Inf`, all field `value`.
/// - summary points: `name,quantile=Q`, `name_sum`, `name_count`.
/// - timestamp: `time_unix_nano` (0: the time of arrival).
///
/// Points flagged "no recorded value" and NaN or infinite values are skipped and counted (as remote
/// write's stale markers); exponential histograms, number points without a value and histograms
/// whose bucket counts do not match their bounds are rejected per point and counted, which the
/// answer reports as OTLP's partial success.
package struct OTLPReadings: Sendable {
    package var block = ReadingBlock()
    /// Points not stored because they cannot be (answered as `rejected_data_points`).
    package var rejectedPoints = 0
    /// Why the first rejected point was rejected.
    package var rejection = ""
    /// Points that carry no measurement: "no recorded value" flags, NaN and infinities.
    package var skippedPoints = 0
    /// Integer values stored as the nearest Double.
    package var roundedIntegers = 0

    package init() {}

    /// Maps a decoded request; throws (refusing the whole request) for a metric without a name, a
    /// timestamp beyond 2262 or a series key over the spool's limit.
    package static func make(from request: MetricsRequest, now: Int64) throws(OTLPError) -> OTLPReadings {
        var mapper = Mapper(now: now)
        for resource in request.resources {
            for scope in resource.scopes {
                var context = resource.attributes + scope.attributes
                if !scope.name.isEmpty { context.append(.init("otel_scope_name", scope.name)) }
                if !scope.version.isEmpty { context.append(.init("otel_scope_version", scope.version)) }
                for metric in scope.metrics {
                    try mapper.add(metric, context: context)
                }
            }
        }
        return mapper.result
    }

    private struct Mapper {
        let now: Int64
        var result = OTLPReadings()
        /// Keys built in this request, with the id the block knows them by: exporters repeat the
        /// same attribute sets across metrics.
        var keys: [SeriesIdentity: (key: String, id: Int32)] = [:]
        /// The series of the previous number point of the current metric.
        var lastNumberSeries: (attributes: [MetricsRequest.Attribute], key: String, id: Int32)?

        init(now: Int64) { self.now = now }

        mutating func add(_ metric: MetricsRequest.Metric, context: [MetricsRequest.Attribute]) throws(OTLPError) {
            lastNumberSeries = nil
            guard !metric.name.isEmpty else { throw OTLPError(.invalidRequest, at: nil, "a metric has no name") }
            switch metric.data {
            case .none:
                break
            case .gauge(let points), .sum(let points):
                for point in points {
                    guard point.flags & MetricsRequest.noRecordedValue == 0 else {
                        result.skippedPoints += 1
                        continue
                    }
                    let value: Double
                    switch point.value {
                    case .none:
                        reject("\(metric.name): a number data point has no value")
                        continue
                    case .double(let double):
                        value = double
                    case .integer(let integer):
                        value = Double(integer)
                        if integer.magnitude > 1 << 53, Int64(exactly: value) != integer { result.roundedIntegers += 1 }
                    }
                    guard value.isFinite else {
                        result.skippedPoints += 1
                        continue
                    }
                    // Consecutive points of one series (a batching exporter's usual shape) skip the
                    // label merge and the key lookup.
                    if let last = lastNumberSeries, Self.sameBytes(last.attributes, point.attributes) {
                        try append(id: last.id, key: last.key, name: metric.name, time: point.time, value: value)
                        continue
                    }
                    let labels = Self.labels(context, point.attributes)
                    let (key, id) = try series(metric.name, labels)
                    lastNumberSeries = (point.attributes, key, id)
                    try append(id: id, key: key, name: metric.name, time: point.time, value: value)
                }
            case .histogram(let points):
                for point in points {
                    guard point.flags & MetricsRequest.noRecordedValue == 0 else {
                        result.skippedPoints += 1
                        continue
                    }
                    guard point.bucketCounts.isEmpty || point.bucketCounts.count == point.explicitBounds.count + 1
                    else {
                        reject(
                            "\(metric.name): a histogram point has \(point.bucketCounts.count) bucket counts for \(point.explicitBounds.count) bounds"
                        )
                        continue
                    }
                    let labels = Self.labels(context, point.attributes)
                    try append(metric.name + "_count", labels, time: point.time, value: Double(point.count))
                    if let sum = point.sum, sum.isFinite {
                        try append(metric.name + "_sum", labels, time: point.time, value: sum)
                    }
                    guard !point.bucketCounts.isEmpty else { continue }
                    var cumulative: UInt64 = 0
                    for (index, count) in point.bucketCounts.enumerated() {
                        cumulative &+= count
                        let bound =
                            index < point.explicitBounds.count ? Self.text(point.explicitBounds[index]) : "+Inf"
                        try append(
                            metric.name + "_bucket", labels + [WriteRequest.Label("le", bound)], time: point.time,
                            value: Double(cumulative))
                    }
                }
            case .summary(let points):
                for point in points {
                    guard point.flags & MetricsRequest.noRecordedValue == 0 else {
                        result.skippedPoints += 1
                        continue
                    }
                    let labels = Self.labels(context, point.attributes)
                    for quantile in point.quantiles where quantile.value.isFinite {
                        try append(
                            metric.name, labels + [WriteRequest.Label("quantile", Self.text(quantile.quantile))],
                            time: point.time, value: quantile.value)
                    }
                    if point.sum.isFinite {
                        try append(metric.name + "_sum", labels, time: point.time, value: point.sum)
                    }
                    try append(metric.name + "_count", labels, time: point.time, value: Double(point.count))
                }
            case .exponentialHistogram(let count):
                for _ in 0..<count {
                    reject("\(metric.name): exponential histograms are not stored (send explicit-bucket histograms)")
                }
            }
        }

        mutating func reject(_ reason: String) {
            if result.rejectedPoints == 0 { result.rejection = reason }
            result.rejectedPoints += 1
        }

        mutating func append(_ name: String, _ labels: [WriteRequest.Label], time: UInt64, value: Double)
            throws(OTLPError)
        {
            let (key, id) = try series(name, labels)
            try append(id: id, key: key, name: name, time: time, value: value)
        }

        mutating func append(id: Int32, key: String, name: String, time: UInt64, value: Double) throws(OTLPError) {
            guard let timestamp = time == 0 ? now : Int64(exactly: time) else {
                throw OTLPError(
                    .invalidRequest, at: nil, "\(name): time_unix_nano \(time) is beyond the 64-bit nanosecond range")
            }
            result.block.append(id: id, generation: 0, key: key, timestamp: timestamp, value: value)
        }

        /// The key of a series and its id in this request, built (and checked) the first time.
        mutating func series(_ name: String, _ labels: [WriteRequest.Label]) throws(OTLPError) -> (String, Int32) {
            let identity = SeriesIdentity(
                parts: [ExactString(name)] + labels.flatMap { [ExactString($0.name), ExactString($0.value)] })
            if let known = keys[identity] { return known }
            let key = RemoteWriteSeriesKey.make(name: name, labels: labels)
            let limit = DecodingLimits.default.maximumSeriesKeyBytes
            guard key.utf8.count <= limit else {
                throw OTLPError(
                    .limitExceeded, at: nil, "\(name): its series key is \(key.utf8.count) bytes; at most \(limit)")
            }
            let entry = (key, Int32(keys.count))
            keys[identity] = entry
            return entry
        }

        /// Attribute lists equal byte for byte (String equality would merge canonically equivalent spellings).
        static func sameBytes(_ a: [MetricsRequest.Attribute], _ b: [MetricsRequest.Attribute]) -> Bool {
            a.count == b.count
                && zip(a, b).allSatisfy { x, y in
                    guard x.key.utf8.elementsEqual(y.key.utf8) else { return false }
                    switch (x.value, y.value) {
                    case (nil, nil): return true
                    case (let p?, let q?): return p.utf8.elementsEqual(q.utf8)
                    default: return false
                    }
                }
        }

        /// The context's attributes then the point's, a later key replacing an earlier one, empty ones out.
        static func labels(_ context: [MetricsRequest.Attribute], _ point: [MetricsRequest.Attribute])
            -> [WriteRequest.Label]
        {
            var labels: [WriteRequest.Label] = []
            labels.reserveCapacity(context.count + point.count)
            for attribute in [context, point].joined() {
                guard !attribute.key.isEmpty, let value = attribute.value, !value.isEmpty else { continue }
                if let existing = labels.firstIndex(where: { $0.name.utf8.elementsEqual(attribute.key.utf8) }) {
                    labels[existing].value = value
                } else {
                    labels.append(WriteRequest.Label(attribute.key, value))
                }
            }
            return labels
        }

        /// A bound or quantile as Prometheus spells `le` and `quantile`: `1`, `0.25`, `+Inf`.
        static func text(_ value: Double) -> String {
            if value == .infinity { return "+Inf" }
            if value == -.infinity { return "-Inf" }
            return MetricsRequest.text(of: value)
        }
    }

    /// A series as built: the same name and labels in the same order, byte for byte.
    private struct SeriesIdentity: Hashable {
        var parts: [ExactString]
    }
}
