/// A decoded Prometheus remote write 1.0 request (`prometheus.WriteRequest` of prompb `remote.proto`).
///
/// Only what the edge agent stores is kept: each series' metric name, its other labels and its float
/// samples. Metadata (field 3), exemplars and native histograms are read past and dropped.
package struct WriteRequest: Sendable, Equatable {
    package var timeseries: [TimeSeries]

    package init(timeseries: [TimeSeries]) { self.timeseries = timeseries }

    /// One series: the value of `__name__` apart, the remaining labels in the order they were sent.
    package struct TimeSeries: Sendable, Equatable {
        /// The `__name__` label: present and non-empty, checked by the decoder.
        package var name: String
        /// The other labels, `__name__` excluded, in request order; names are unique and non-empty.
        package var labels: [Label]
        package var samples: [Sample]

        package init(name: String, labels: [Label], samples: [Sample]) {
            self.name = name
            self.labels = labels
            self.samples = samples
        }
    }

    package struct Label: Sendable, Hashable {
        package var name: String
        package var value: String

        package init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// A float sample. Equality compares the value's bits, so NaN payloads (stale markers) compare.
    package struct Sample: Sendable, Equatable {
        package var value: Double
        /// Milliseconds since the Unix epoch, as Prometheus sends them.
        package var timestamp: Int64

        package init(value: Double, timestamp: Int64) {
            self.value = value
            self.timestamp = timestamp
        }

        package static func == (lhs: Sample, rhs: Sample) -> Bool {
            lhs.value.bitPattern == rhs.value.bitPattern && lhs.timestamp == rhs.timestamp
        }

        /// Prometheus marks a series that disappeared with this NaN (`value.StaleNaN`).
        package static let staleMarkerBitPattern: UInt64 = 0x7FF0_0000_0000_0002

        package var isStaleMarker: Bool { value.bitPattern == Self.staleMarkerBitPattern }
    }

    /// The label that holds the metric name.
    package static let metricNameLabel = "__name__"
}
