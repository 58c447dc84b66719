/// A decoded OTLP metrics export (`opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest`,
/// OTLP 1.x), holding what the edge agent stores: metric names, attributes and the numbers of gauges,
/// sums, histograms and summaries. Descriptions, units, exemplars, start times and schema URLs are
/// read past and dropped; exponential histograms are counted, not kept.
package struct MetricsRequest: Sendable, Equatable {
    package var resources: [ResourceMetrics] = []

    package init(resources: [ResourceMetrics] = []) { self.resources = resources }

    package struct ResourceMetrics: Sendable, Equatable {
        package var attributes: [Attribute] = []
        package var scopes: [ScopeMetrics] = []

        package init(attributes: [Attribute] = [], scopes: [ScopeMetrics] = []) {
            self.attributes = attributes
            self.scopes = scopes
        }
    }

    package struct ScopeMetrics: Sendable, Equatable {
        package var name = ""
        package var version = ""
        package var attributes: [Attribute] = []
        package var metrics: [Metric] = []

        package init(name: String = "", version: String = "", attributes: [Attribute] = [], metrics: [Metric] = []) {
            self.name = name
            self.version = version
            self.attributes = attributes
            self.metrics = metrics
        }
    }

    package struct Metric: Sendable, Equatable {
        package var name: String
        package var data: MetricData

        package init(name: String, data: MetricData) {
            self.name = name
            self.data = data
        }
    }

    package enum MetricData: Sendable, Equatable {
        /// A metric without data (no oneof member set).
        case none
        case gauge([NumberPoint])
        /// Cumulative or delta, monotonic or not: each point is stored as sent.
        case sum([NumberPoint])
        case histogram([HistogramPoint])
        case summary([SummaryPoint])
        /// Not stored: the number of points, for the answer's `rejected_data_points`.
        case exponentialHistogram(points: Int)
    }

    /// An attribute with its value as text (`AnyValue`: strings as they are, booleans `true`/`false`,
    /// integers in decimal, doubles in Swift's shortest round-trip spelling, bytes in base64); nil for
    /// arrays, key-value lists and unset values, which do not become tags.
    package struct Attribute: Sendable, Equatable {
        package var key: String
        package var value: String?

        package init(_ key: String, _ value: String?) {
            self.key = key
            self.value = value
        }
    }

    /// DataPointFlags.FLAG_NO_RECORDED_VALUE: the point marks a gap (like a Prometheus stale marker).
    package static let noRecordedValue: UInt32 = 1

    package struct NumberPoint: Sendable, Equatable {
        package var attributes: [Attribute] = []
        package var time: UInt64 = 0
        package var value: NumberValue = .none
        package var flags: UInt32 = 0

        package init(attributes: [Attribute] = [], time: UInt64 = 0, value: NumberValue = .none, flags: UInt32 = 0) {
            self.attributes = attributes
            self.time = time
            self.value = value
            self.flags = flags
        }
    }

    package enum NumberValue: Sendable, Equatable {
        case none
        case double(Double)
        case integer(Int64)

        package static func == (lhs: NumberValue, rhs: NumberValue) -> Bool {
            switch (lhs, rhs) {
            case (.none, .none): true
            case (.double(let a), .double(let b)): a.bitPattern == b.bitPattern
            case (.integer(let a), .integer(let b)): a == b
            default: false
            }
        }
    }

    package struct HistogramPoint: Sendable, Equatable {
        package var attributes: [Attribute] = []
        package var time: UInt64 = 0
        package var count: UInt64 = 0
        package var sum: Double?
        /// One count per bucket (not cumulative): `explicitBounds.count + 1` of them, or none.
        package var bucketCounts: [UInt64] = []
        package var explicitBounds: [Double] = []
        package var flags: UInt32 = 0

        package init() {}
    }

    package struct SummaryPoint: Sendable, Equatable {
        package var attributes: [Attribute] = []
        package var time: UInt64 = 0
        package var count: UInt64 = 0
        package var sum: Double = 0
        package var quantiles: [Quantile] = []
        package var flags: UInt32 = 0

        package init() {}
    }

    package struct Quantile: Sendable, Equatable {
        package var quantile: Double
        package var value: Double

        package init(quantile: Double, value: Double) {
            self.quantile = quantile
            self.value = value
        }
    }
}
