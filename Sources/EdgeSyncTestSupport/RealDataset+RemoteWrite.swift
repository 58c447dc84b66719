import PrometheusRemoteWrite

extension RealDataset {
    /// The dataset as Prometheus would send it: requests of at most `samplesPerRequest` samples, each
    /// series named after the dataset with its column as a `column` label and a `source="shared"`
    /// label, samples in file order. Timestamps become milliseconds (the files have whole seconds).
    package func remoteWriteRequests(samplesPerRequest: Int = 2_000) -> [WriteRequest] {
        precondition(samplesPerRequest > 0)
        let labels = seriesKeys.map { key -> [WriteRequest.Label] in
            let column = key.split(separator: ".", maxSplits: 1).last.map(String.init) ?? key
            return [WriteRequest.Label("column", column), WriteRequest.Label("source", "shared")]
        }
        var requests: [WriteRequest] = []
        for start in stride(from: 0, to: readings.count, by: samplesPerRequest) {
            var seriesIndex: [Int: Int] = [:]
            var timeseries: [WriteRequest.TimeSeries] = []
            for reading in readings[start..<min(start + samplesPerRequest, readings.count)] {
                let sample = WriteRequest.Sample(value: reading.value, timestamp: reading.timestamp / 1_000_000)
                if let index = seriesIndex[reading.series] {
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
