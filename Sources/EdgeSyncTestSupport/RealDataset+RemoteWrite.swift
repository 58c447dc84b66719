import PrometheusRemoteWrite

extension RealDataset {
    /// The dataset as a remote write client would send it: requests of at most `samplesPerRequest`
    /// samples, each series named after the dataset with its column as a `column` label and a
    /// `source="shared"` label, samples in file order. Timestamps become milliseconds (the files have
    /// whole seconds).
    ///
    /// - Parameter oneSamplePerSeries: send each sample as its own `TimeSeries` with all its labels,
    ///   plus `job` and `instance`, as Prometheus' queue manager does; otherwise a request holds each
    ///   series once with all its samples (the cheapest shape to decode).
    package func remoteWriteRequests(samplesPerRequest: Int = 2_000, oneSamplePerSeries: Bool = false) -> [WriteRequest]
    {
        precondition(samplesPerRequest > 0)
        let labels = seriesKeys.map { key -> [WriteRequest.Label] in
            let column = key.split(separator: ".", maxSplits: 1).last.map(String.init) ?? key
            let extra =
                oneSamplePerSeries
                ? [WriteRequest.Label("instance", "gateway-1:9100"), WriteRequest.Label("job", "sensors")] : []
            return [WriteRequest.Label("column", column)] + extra + [WriteRequest.Label("source", "shared")]
        }
        var requests: [WriteRequest] = []
        for start in stride(from: 0, to: readings.count, by: samplesPerRequest) {
            var seriesIndex: [Int: Int] = [:]
            var timeseries: [WriteRequest.TimeSeries] = []
            for reading in readings[start..<min(start + samplesPerRequest, readings.count)] {
                let sample = WriteRequest.Sample(value: reading.value, timestamp: reading.timestamp / 1_000_000)
                if !oneSamplePerSeries, let index = seriesIndex[reading.series] {
                    timeseries[index].samples.append(sample)
                } else {
                    seriesIndex[reading.series] = timeseries.count
                    timeseries.append(
                        WriteRequest.TimeSeries(name: name, labels: labels[reading.series], samples: [sample]))
                }
            }
            requests.append(WriteRequest(timeseries: timeseries))
        }
        return requests
    }
}
