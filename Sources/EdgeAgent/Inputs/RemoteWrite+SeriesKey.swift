import EdgeSyncProtocol
import EdgeSyncCodec
import PrometheusRemoteWrite

/// The readings of one Prometheus remote write request, and what was left out of them.
package struct RemoteWriteReadings: Sendable, Equatable {
    package var readings: [IncomingReading]
    /// Prometheus stale markers (`StaleNaN`) dropped: they say "this series ended", not a measurement.
    package var droppedStaleMarkers: Int
    /// Other NaN and ±infinity samples dropped, as InfluxDB's remote write endpoint does.
    package var droppedNonFinite: Int

    package init(readings: [IncomingReading], droppedStaleMarkers: Int, droppedNonFinite: Int) {
        self.readings = readings
        self.droppedStaleMarkers = droppedStaleMarkers
        self.droppedNonFinite = droppedNonFinite
    }

    /// Decodes a remote write request body (Snappy-compressed protobuf) into spool readings.
    ///
    /// All or nothing: any error refuses the whole request. Each float sample becomes one reading
    /// (see `RemoteWriteSeriesKey`), its timestamp converted from milliseconds to nanoseconds.
    /// Stale markers and other non-finite values are skipped and counted, not errors: Prometheus
    /// drops a request refused with a 4xx, so refusing would lose its good samples too. Map
    /// `RemoteWriteError.Kind.limitExceeded` to 413 and the other kinds to 400.
    package static func decode(
        snappyBody: [UInt8], limits: RemoteWriteLimits = .default
    ) throws(RemoteWriteError) -> RemoteWriteReadings {
        try make(from: WriteRequest.decode(snappyBody: snappyBody, limits: limits))
    }

    /// Maps a decoded request to readings; see `decode(snappyBody:limits:)`.
    package static func make(from request: WriteRequest) throws(RemoteWriteError) -> RemoteWriteReadings {
        var result = RemoteWriteReadings(readings: [], droppedStaleMarkers: 0, droppedNonFinite: 0)
        // Bounded by the request's own sample count, itself bounded by RemoteWriteLimits.
        result.readings.reserveCapacity(request.timeseries.reduce(0) { $0 + $1.samples.count })
        let maximumKeyBytes = DecodingLimits.default.maximumSeriesKeyBytes
        // Prometheus sends every sample as its own series entry, so one request names the same series
        // many times; building its key (sort, escape, join) once per distinct series halves the cost.
        var keys: [SeriesIdentity: String] = [:]
        for (index, series) in request.timeseries.enumerated() {
            let identity = SeriesIdentity(name: series.name, labels: series.labels)
            let key: String
            if let known = keys[identity] {
                key = known
            } else {
                key = RemoteWriteSeriesKey.make(name: series.name, labels: series.labels)
                keys[identity] = key
            }
            guard key.utf8.count <= maximumKeyBytes else {
                throw RemoteWriteError(
                    .limitExceeded, at: nil,
                    "series \(index) (\(series.name)): its series key is \(key.utf8.count) bytes; at most \(maximumKeyBytes)"
                )
            }
            for sample in series.samples {
                guard sample.value.isFinite else {
                    if sample.isStaleMarker {
                        result.droppedStaleMarkers += 1
                    } else {
                        result.droppedNonFinite += 1
                    }
                    continue
                }
                let (nanoseconds, overflow) = sample.timestamp.multipliedReportingOverflow(by: 1_000_000)
                guard !overflow else {
                    throw RemoteWriteError(
                        .invalidRequest, at: nil,
                        "series \(index) (\(series.name)): timestamp \(sample.timestamp) ms is out of range for nanoseconds"
                    )
                }
                result.readings.append(IncomingReading(seriesKey: key, timestamp: nanoseconds, value: sample.value))
            }
        }
        return result
    }
}

/// A series as sent: the same name and labels in the same order. (The same labels in another order
/// also make the same key, just without the cache.)
private struct SeriesIdentity: Hashable {
    var name: String
    var labels: [WriteRequest.Label]
}

/// How a Prometheus series becomes a spool series key, and back.
///
/// `name{l1="v1",…}` is stored as the line protocol key of measurement `name`, tags `l1=v1,…` (sorted
/// by name) and field `value`: `name,l1=v1,l2=v2 value`. This is the mapping InfluxDB uses for remote
/// write, so a series written by line protocol as `name,l1=v1 value=…` is the same series.
///
/// Labels with an empty value are left out: in Prometheus an empty label is the same as no label, and
/// line protocol keys have no empty parts. With that, `parse(make(n, ls)) == (n, ls sorted)`.
package enum RemoteWriteSeriesKey {
    /// The field every remote write sample is stored under.
    package static let field = "value"

    package static func make(name: String, labels: [WriteRequest.Label]) -> String {
        LineProtocolSeriesKey.make(
            measurement: name,
            tags: labels.filter { !$0.value.isEmpty }.map { ($0.name, $0.value) },
            field: field)
    }

    /// The metric name and labels (sorted by name) of a key made by `make`; `nil` for any other key,
    /// such as a line protocol field not named `value`.
    package static func parse(_ key: String) -> (name: String, labels: [WriteRequest.Label])? {
        guard let parts = LineProtocolSeriesKey.parse(key), parts.field == field else { return nil }
        return (parts.measurement, parts.tags.map { WriteRequest.Label($0.0, $0.1) })
    }
}
