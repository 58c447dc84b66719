import Foundation
import PrometheusRemoteWrite

extension MetricsRequest {
    /// Decodes a protobuf `ExportMetricsServiceRequest` (the body of `POST /v1/metrics` with
    /// `Content-Type: application/x-protobuf`, after gzip inflation).
    ///
    /// Strict in the style of the remote write decoder (`ProtobufReader`): every length is checked
    /// against the enclosing message, groups and unknown wire types are refused, a known field with
    /// the wrong wire type is an error, unknown fields are skipped, and every `OTLPLimits` bound is
    /// checked before the element it bounds is decoded.
    package static func decode(protobuf: [UInt8], limits: OTLPLimits = .default) throws(OTLPError) -> MetricsRequest {
        var result: Result<MetricsRequest, OTLPError> = .success(MetricsRequest())
        protobuf.withUnsafeBytes { bytes in
            do throws(OTLPError) {
                result = .success(try decode(protobuf: bytes, limits: limits))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    /// The same over borrowed bytes.
    package static func decode(protobuf: UnsafeRawBufferPointer, limits: OTLPLimits = .default) throws(OTLPError)
        -> MetricsRequest
    {
        guard protobuf.count <= limits.maximumMessageBytes else {
            throw OTLPError(
                .limitExceeded, at: nil,
                "the message is \(protobuf.count) bytes; at most \(limits.maximumMessageBytes) are accepted")
        }
        var decoder = ProtobufMetricsDecoder(bytes: protobuf, limits: limits)
        do {
            return try decoder.request()
        } catch {
            let kind: OTLPError.Kind =
                switch error.kind {
                case .limitExceeded: .limitExceeded
                case .invalidRequest: .invalidRequest
                default: .malformed
                }
            throw OTLPError(kind, at: error.offset, error.reason)
        }
    }
}

/// One request's decoding: the buffer (for bytes values), the limits and the running point count.
/// Errors are `RemoteWriteError`s of the shared protobuf reader, turned into `OTLPError` at the top.
private struct ProtobufMetricsDecoder {
    typealias Failure = RemoteWriteError
    let bytes: UnsafeRawBufferPointer
    let limits: OTLPLimits
    var points = 0

    init(bytes: UnsafeRawBufferPointer, limits: OTLPLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    mutating func request() throws(Failure) -> MetricsRequest {
        var reader = ProtobufReader(bytes)
        var request = MetricsRequest()
        while !reader.isAtEnd {
            let tag = reader.position
            let (field, wireType) = try reader.readTag()
            if field == 1 {
                try reader.require(wireType, is: .lengthDelimited, for: "resource_metrics", tagAt: tag)
                var nested = try reader.nested(reader.readLengthDelimited())
                request.resources.append(try resourceMetrics(&nested))
            } else {
                try reader.skip(wireType)
            }
        }
        return request
    }

    mutating func resourceMetrics(_ reader: inout ProtobufReader) throws(Failure) -> MetricsRequest.ResourceMetrics {
        var resource = MetricsRequest.ResourceMetrics()
        while !reader.isAtEnd {
            let tag = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.require(wireType, is: .lengthDelimited, for: "ResourceMetrics.resource", tagAt: tag)
                var nested = try reader.nested(reader.readLengthDelimited())
                while !nested.isAtEnd {
                    let inner = nested.position
                    let (resourceField, resourceWire) = try nested.readTag()
                    if resourceField == 1 {
                        try nested.require(resourceWire, is: .lengthDelimited, for: "Resource.attributes", tagAt: inner)
                        try attribute(&nested, into: &resource.attributes, tag: inner)
                    } else {
                        try nested.skip(resourceWire)
                    }
                }
            case 2:
                try reader.require(wireType, is: .lengthDelimited, for: "ResourceMetrics.scope_metrics", tagAt: tag)
                var nested = try reader.nested(reader.readLengthDelimited())
                resource.scopes.append(try scopeMetrics(&nested))
            default:
                try reader.skip(wireType)
            }
        }
        return resource
    }

    mutating func scopeMetrics(_ reader: inout ProtobufReader) throws(Failure) -> MetricsRequest.ScopeMetrics {
        var scope = MetricsRequest.ScopeMetrics()
        while !reader.isAtEnd {
            let tag = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.require(wireType, is: .lengthDelimited, for: "ScopeMetrics.scope", tagAt: tag)
                var nested = try reader.nested(reader.readLengthDelimited())
                while !nested.isAtEnd {
                    let inner = nested.position
                    let (scopeField, scopeWire) = try nested.readTag()
                    switch scopeField {
                    case 1:
                        try nested.require(
                            scopeWire, is: .lengthDelimited, for: "InstrumentationScope.name", tagAt: inner)
                        scope.name = try string(&nested, "the scope name", tag: inner)
                    case 2:
                        try nested.require(
                            scopeWire, is: .lengthDelimited, for: "InstrumentationScope.version", tagAt: inner)
                        scope.version = try string(&nested, "the scope version", tag: inner)
                    case 3:
                        try nested.require(
                            scopeWire, is: .lengthDelimited, for: "InstrumentationScope.attributes", tagAt: inner)
                        try attribute(&nested, into: &scope.attributes, tag: inner)
                    default:
                        try nested.skip(scopeWire)
                    }
                }
            case 2:
                try reader.require(wireType, is: .lengthDelimited, for: "ScopeMetrics.metrics", tagAt: tag)
                var nested = try reader.nested(reader.readLengthDelimited())
                scope.metrics.append(try metric(&nested))
            default:
                try reader.skip(wireType)
            }
        }
        return scope
    }

    mutating func metric(_ reader: inout ProtobufReader) throws(Failure) -> MetricsRequest.Metric {
        var metric = MetricsRequest.Metric(name: "", data: .none)
        // The running count, apart from `self` so the point decoders' closures may read `self`.
        var pointCount = points
        defer { points = pointCount }
        while !reader.isAtEnd {
            let tag = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.require(wireType, is: .lengthDelimited, for: "Metric.name", tagAt: tag)
                metric.name = try string(&reader, "the metric name", tag: tag)
            case 5, 7:
                let what = field == 5 ? "Metric.gauge" : "Metric.sum"
                try reader.require(wireType, is: .lengthDelimited, for: what, tagAt: tag)
                var nested = try reader.nested(reader.readLengthDelimited())
                var points: [MetricsRequest.NumberPoint] = []
                try Self.dataPoints(&nested, what: what, limits: limits, points: &pointCount) {
                    (reader: inout ProtobufReader) throws(Failure) in
                    points.append(try numberPoint(&reader))
                }
                metric.data = field == 5 ? .gauge(points) : .sum(points)
            case 9:
                try reader.require(wireType, is: .lengthDelimited, for: "Metric.histogram", tagAt: tag)
                var nested = try reader.nested(reader.readLengthDelimited())
                var points: [MetricsRequest.HistogramPoint] = []
                try Self.dataPoints(&nested, what: "Metric.histogram", limits: limits, points: &pointCount) {
                    (reader: inout ProtobufReader) throws(Failure) in
                    points.append(try histogramPoint(&reader))
                }
                metric.data = .histogram(points)
            case 10:
                try reader.require(wireType, is: .lengthDelimited, for: "Metric.exponential_histogram", tagAt: tag)
                var nested = try reader.nested(reader.readLengthDelimited())
                var count = 0
                try Self.dataPoints(&nested, what: "Metric.exponential_histogram", limits: limits, points: &pointCount)
                {
                    (reader: inout ProtobufReader) throws(Failure) in
                    while !reader.isAtEnd { try reader.skip(reader.readTag().wireType) }
                    count += 1
                }
                metric.data = .exponentialHistogram(points: count)
            case 11:
                try reader.require(wireType, is: .lengthDelimited, for: "Metric.summary", tagAt: tag)
                var nested = try reader.nested(reader.readLengthDelimited())
                var points: [MetricsRequest.SummaryPoint] = []
                try Self.dataPoints(&nested, what: "Metric.summary", limits: limits, points: &pointCount) {
                    (reader: inout ProtobufReader) throws(Failure) in
                    points.append(try summaryPoint(&reader))
                }
                metric.data = .summary(points)
            default:
                try reader.skip(wireType)
            }
        }
        return metric
    }

    /// The `data_points` (field 1) of a Gauge, Sum, Histogram, ExponentialHistogram or Summary, each
    /// counted against `maximumPoints` before `body` decodes it; the other fields are skipped.
    static func dataPoints(
        _ reader: inout ProtobufReader, what: String, limits: OTLPLimits, points: inout Int,
        _ body: (inout ProtobufReader) throws(Failure) -> Void
    ) throws(Failure) {
        while !reader.isAtEnd {
            let tag = reader.position
            let (field, wireType) = try reader.readTag()
            guard field == 1 else {
                try reader.skip(wireType)
                continue
            }
            try reader.require(wireType, is: .lengthDelimited, for: "\(what).data_points", tagAt: tag)
            guard points < limits.maximumPoints else {
                throw Failure(.limitExceeded, at: tag, "more than \(limits.maximumPoints) data points in one request")
            }
            points += 1
            var nested = try reader.nested(reader.readLengthDelimited())
            try body(&nested)
        }
    }

    func numberPoint(_ reader: inout ProtobufReader) throws(Failure) -> MetricsRequest.NumberPoint {
        var point = MetricsRequest.NumberPoint()
        while !reader.isAtEnd {
            let tag = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 3:
                try reader.require(wireType, is: .fixed64, for: "NumberDataPoint.time_unix_nano", tagAt: tag)
                point.time = try reader.readFixed64()
            case 4:
                try reader.require(wireType, is: .fixed64, for: "NumberDataPoint.as_double", tagAt: tag)
                point.value = .double(Double(bitPattern: try reader.readFixed64()))
            case 6:
                try reader.require(wireType, is: .fixed64, for: "NumberDataPoint.as_int", tagAt: tag)
                point.value = .integer(Int64(bitPattern: try reader.readFixed64()))
            case 7:
                try reader.require(wireType, is: .lengthDelimited, for: "NumberDataPoint.attributes", tagAt: tag)
                try attribute(&reader, into: &point.attributes, tag: tag)
            case 8:
                try reader.require(wireType, is: .varint, for: "NumberDataPoint.flags", tagAt: tag)
                point.flags = UInt32(truncatingIfNeeded: try reader.readVarint())
            default:
                try reader.skip(wireType)
            }
        }
        return point
    }

    func histogramPoint(_ reader: inout ProtobufReader) throws(Failure) -> MetricsRequest.HistogramPoint {
        var point = MetricsRequest.HistogramPoint()
        while !reader.isAtEnd {
            let tag = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 3:
                try reader.require(wireType, is: .fixed64, for: "HistogramDataPoint.time_unix_nano", tagAt: tag)
                point.time = try reader.readFixed64()
            case 4:
                try reader.require(wireType, is: .fixed64, for: "HistogramDataPoint.count", tagAt: tag)
                point.count = try reader.readFixed64()
            case 5:
                try reader.require(wireType, is: .fixed64, for: "HistogramDataPoint.sum", tagAt: tag)
                point.sum = Double(bitPattern: try reader.readFixed64())
            case 6:
                try repeatedFixed64(&reader, wireType, "HistogramDataPoint.bucket_counts", tag: tag) {
                    point.bucketCounts.append($0)
                }
            case 7:
                try repeatedFixed64(&reader, wireType, "HistogramDataPoint.explicit_bounds", tag: tag) {
                    point.explicitBounds.append(Double(bitPattern: $0))
                }
            case 9:
                try reader.require(wireType, is: .lengthDelimited, for: "HistogramDataPoint.attributes", tagAt: tag)
                try attribute(&reader, into: &point.attributes, tag: tag)
            case 10:
                try reader.require(wireType, is: .varint, for: "HistogramDataPoint.flags", tagAt: tag)
                point.flags = UInt32(truncatingIfNeeded: try reader.readVarint())
            default:
                try reader.skip(wireType)
            }
            guard point.bucketCounts.count <= limits.maximumBuckets + 1,
                point.explicitBounds.count <= limits.maximumBuckets
            else {
                throw Failure(
                    .limitExceeded, at: tag, "a histogram point has more than \(limits.maximumBuckets) buckets")
            }
        }
        return point
    }

    func summaryPoint(_ reader: inout ProtobufReader) throws(Failure) -> MetricsRequest.SummaryPoint {
        var point = MetricsRequest.SummaryPoint()
        while !reader.isAtEnd {
            let tag = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 3:
                try reader.require(wireType, is: .fixed64, for: "SummaryDataPoint.time_unix_nano", tagAt: tag)
                point.time = try reader.readFixed64()
            case 4:
                try reader.require(wireType, is: .fixed64, for: "SummaryDataPoint.count", tagAt: tag)
                point.count = try reader.readFixed64()
            case 5:
                try reader.require(wireType, is: .fixed64, for: "SummaryDataPoint.sum", tagAt: tag)
                point.sum = Double(bitPattern: try reader.readFixed64())
            case 6:
                try reader.require(wireType, is: .lengthDelimited, for: "SummaryDataPoint.quantile_values", tagAt: tag)
                guard point.quantiles.count < limits.maximumBuckets else {
                    throw Failure(
                        .limitExceeded, at: tag, "a summary point has more than \(limits.maximumBuckets) quantiles")
                }
                var nested = try reader.nested(reader.readLengthDelimited())
                var quantile = MetricsRequest.Quantile(quantile: 0, value: 0)
                while !nested.isAtEnd {
                    let inner = nested.position
                    let (quantileField, quantileWire) = try nested.readTag()
                    switch quantileField {
                    case 1:
                        try nested.require(quantileWire, is: .fixed64, for: "ValueAtQuantile.quantile", tagAt: inner)
                        quantile.quantile = Double(bitPattern: try nested.readFixed64())
                    case 2:
                        try nested.require(quantileWire, is: .fixed64, for: "ValueAtQuantile.value", tagAt: inner)
                        quantile.value = Double(bitPattern: try nested.readFixed64())
                    default:
                        try nested.skip(quantileWire)
                    }
                }
                point.quantiles.append(quantile)
            case 7:
                try reader.require(wireType, is: .lengthDelimited, for: "SummaryDataPoint.attributes", tagAt: tag)
                try attribute(&reader, into: &point.attributes, tag: tag)
            case 8:
                try reader.require(wireType, is: .varint, for: "SummaryDataPoint.flags", tagAt: tag)
                point.flags = UInt32(truncatingIfNeeded: try reader.readVarint())
            default:
                try reader.skip(wireType)
            }
        }
        return point
    }

    /// A repeated fixed64/double field, packed (one length-delimited run) or not (one value per tag).
    func repeatedFixed64(
        _ reader: inout ProtobufReader, _ wireType: ProtobufReader.WireType, _ what: String, tag: Int,
        _ append: (UInt64) -> Void
    ) throws(Failure) {
        if wireType == .fixed64 {
            append(try reader.readFixed64())
            return
        }
        try reader.require(wireType, is: .lengthDelimited, for: what, tagAt: tag)
        let range = try reader.readLengthDelimited()
        guard range.count % 8 == 0 else {
            throw Failure(
                .malformedProtobuf, at: tag, "\(what): a packed run of \(range.count) bytes is not 8-byte values")
        }
        guard range.count / 8 <= limits.maximumBuckets + 1 else {
            throw Failure(.limitExceeded, at: tag, "\(what): more than \(limits.maximumBuckets) buckets")
        }
        var packed = try reader.nested(range)
        while !packed.isAtEnd { append(try packed.readFixed64()) }
    }

    /// A length-delimited UTF-8 string within `maximumStringBytes`.
    func string(_ reader: inout ProtobufReader, _ what: String, tag: Int) throws(Failure) -> String {
        let text = try reader.readString(what)
        guard text.utf8.count <= limits.maximumStringBytes else {
            throw Failure(
                .limitExceeded, at: tag, "\(what) is \(text.utf8.count) bytes; at most \(limits.maximumStringBytes)")
        }
        return text
    }

    /// A `KeyValue` message, appended to `attributes` within `maximumAttributes`.
    func attribute(
        _ reader: inout ProtobufReader, into attributes: inout [MetricsRequest.Attribute], tag: Int
    ) throws(Failure) {
        guard attributes.count < limits.maximumAttributes else {
            throw Failure(.limitExceeded, at: tag, "more than \(limits.maximumAttributes) attributes on one element")
        }
        var nested = try reader.nested(reader.readLengthDelimited())
        var attribute = MetricsRequest.Attribute("", nil)
        while !nested.isAtEnd {
            let inner = nested.position
            let (field, wireType) = try nested.readTag()
            switch field {
            case 1:
                try nested.require(wireType, is: .lengthDelimited, for: "KeyValue.key", tagAt: inner)
                attribute.key = try string(&nested, "an attribute key", tag: inner)
            case 2:
                try nested.require(wireType, is: .lengthDelimited, for: "KeyValue.value", tagAt: inner)
                var value = try nested.nested(nested.readLengthDelimited())
                attribute.value = try anyValue(&value, key: attribute.key)
            default:
                try nested.skip(wireType)
            }
        }
        attributes.append(attribute)
    }

    /// An `AnyValue` as text; nil for arrays, key-value lists and no value (read past, not decoded).
    func anyValue(_ reader: inout ProtobufReader, key: String) throws(Failure) -> String? {
        var text: String?
        while !reader.isAtEnd {
            let tag = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.require(wireType, is: .lengthDelimited, for: "AnyValue.string_value", tagAt: tag)
                text = try string(&reader, "the value of attribute \"\(key)\"", tag: tag)
            case 2:
                try reader.require(wireType, is: .varint, for: "AnyValue.bool_value", tagAt: tag)
                text = try reader.readVarint() != 0 ? "true" : "false"
            case 3:
                try reader.require(wireType, is: .varint, for: "AnyValue.int_value", tagAt: tag)
                text = String(Int64(bitPattern: try reader.readVarint()))
            case 4:
                try reader.require(wireType, is: .fixed64, for: "AnyValue.double_value", tagAt: tag)
                text = MetricsRequest.text(of: Double(bitPattern: try reader.readFixed64()))
            case 5, 6:
                try reader.require(wireType, is: .lengthDelimited, for: "AnyValue array or kvlist", tagAt: tag)
                _ = try reader.readLengthDelimited()
                text = nil
            case 7:
                try reader.require(wireType, is: .lengthDelimited, for: "AnyValue.bytes_value", tagAt: tag)
                let range = try reader.readLengthDelimited()
                guard range.count <= limits.maximumStringBytes else {
                    throw Failure(
                        .limitExceeded, at: tag, "the bytes of attribute \"\(key)\" exceed \(limits.maximumStringBytes)"
                    )
                }
                text = Data(UnsafeRawBufferPointer(rebasing: bytes[range])).base64EncodedString()
            default:
                try reader.skip(wireType)
            }
        }
        return text
    }
}

extension MetricsRequest {
    /// A double attribute's text: integral values without a fraction (`2`, not `2.0`), as
    /// Prometheus spells label values; others in the shortest spelling that reads back exactly.
    package static func text(of value: Double) -> String {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
