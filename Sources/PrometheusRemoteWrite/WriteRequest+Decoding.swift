extension WriteRequest {
    /// Decodes a request body as Prometheus sends it: a Snappy block holding a `WriteRequest`.
    ///
    /// The Snappy preamble is checked against `limits.maximumDecodedBytes` before allocating.
    package static func decode(
        snappyBody: [UInt8], limits: RemoteWriteLimits = .default
    ) throws(RemoteWriteError) -> WriteRequest {
        let message: [UInt8]
        do {
            message = try Snappy.decompress(snappyBody, maximumDecodedBytes: limits.maximumDecodedBytes)
        } catch {
            throw RemoteWriteError(error)
        }
        return try decode(protobuf: message, limits: limits)
    }

    /// Decodes an uncompressed protobuf `WriteRequest`.
    package static func decode(
        protobuf: [UInt8], limits: RemoteWriteLimits = .default
    ) throws(RemoteWriteError) -> WriteRequest {
        var result: Result<WriteRequest, RemoteWriteError> = .success(WriteRequest(timeseries: []))
        protobuf.withUnsafeBytes { bytes in
            do throws(RemoteWriteError) {
                result = .success(try decode(protobuf: bytes, limits: limits))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    /// Decodes an uncompressed protobuf `WriteRequest` held in `protobuf`.
    package static func decode(
        protobuf: UnsafeRawBufferPointer, limits: RemoteWriteLimits = .default
    ) throws(RemoteWriteError) -> WriteRequest {
        guard protobuf.count <= limits.maximumDecodedBytes else {
            throw RemoteWriteError(
                .limitExceeded, at: nil,
                "the message is \(protobuf.count) bytes; at most \(limits.maximumDecodedBytes) are accepted")
        }
        var reader = ProtobufReader(protobuf)
        var decoder = Decoder(limits: limits)
        var timeseries: [TimeSeries] = []
        while !reader.isAtEnd {
            let tagOffset = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.require(wireType, is: .lengthDelimited, for: "WriteRequest.timeseries", tagAt: tagOffset)
                guard timeseries.count < limits.maximumSeries else {
                    throw RemoteWriteError(
                        .limitExceeded, at: tagOffset, "more than \(limits.maximumSeries) time series in one request")
                }
                var series = try reader.nested(reader.readLengthDelimited())
                timeseries.append(try decoder.timeSeries(&series, index: timeseries.count))
            case 3:
                try reader.require(wireType, is: .lengthDelimited, for: "WriteRequest.metadata", tagAt: tagOffset)
                _ = try reader.readLengthDelimited()
            default:
                try reader.skip(wireType)
            }
        }
        return WriteRequest(timeseries: timeseries)
    }

    /// Per-request decoding state: the running totals the limits apply to.
    private struct Decoder {
        let limits: RemoteWriteLimits
        var samples = 0

        init(limits: RemoteWriteLimits) { self.limits = limits }

        mutating func timeSeries(_ reader: inout ProtobufReader, index: Int) throws(RemoteWriteError) -> TimeSeries {
            let start = reader.position
            var name: String?
            var labels: [Label] = []
            var labelBytes = 0
            var series: [Sample] = []
            while !reader.isAtEnd {
                let tagOffset = reader.position
                let (field, wireType) = try reader.readTag()
                switch field {
                case 1:
                    try reader.require(wireType, is: .lengthDelimited, for: "TimeSeries.labels", tagAt: tagOffset)
                    var labelReader = try reader.nested(reader.readLengthDelimited())
                    let label = try self.label(&labelReader, series: index)
                    labelBytes += label.name.utf8.count + label.value.utf8.count
                    guard labelBytes <= limits.maximumLabelBytesPerSeries else {
                        throw RemoteWriteError(
                            .limitExceeded, at: tagOffset,
                            "series \(index): labels exceed \(limits.maximumLabelBytesPerSeries) bytes")
                    }
                    if label.name == WriteRequest.metricNameLabel {
                        guard name == nil else {
                            throw RemoteWriteError(
                                .invalidRequest, at: tagOffset, "series \(index): label \"__name__\" appears twice")
                        }
                        name = label.value
                    } else {
                        labels.append(label)
                    }
                case 2:
                    try reader.require(wireType, is: .lengthDelimited, for: "TimeSeries.samples", tagAt: tagOffset)
                    guard samples < limits.maximumSamples else {
                        throw RemoteWriteError(
                            .limitExceeded, at: tagOffset, "more than \(limits.maximumSamples) samples in one request")
                    }
                    var sampleReader = try reader.nested(reader.readLengthDelimited())
                    series.append(try sample(&sampleReader))
                    samples += 1
                case 3, 4:
                    let what = field == 3 ? "TimeSeries.exemplars" : "TimeSeries.histograms"
                    try reader.require(wireType, is: .lengthDelimited, for: what, tagAt: tagOffset)
                    _ = try reader.readLengthDelimited()
                default:
                    try reader.skip(wireType)
                }
            }
            guard let name, !name.isEmpty else {
                throw RemoteWriteError(
                    .invalidRequest, at: start, "series \(index): no metric name (label \"__name__\")")
            }
            if let duplicate = Self.duplicateName(in: labels) {
                throw RemoteWriteError(
                    .invalidRequest, at: start, "series \(index) (\(name)): label \"\(duplicate)\" appears twice")
            }
            return TimeSeries(name: name, labels: labels, samples: series)
        }

        /// A label name that occurs twice, if any. Series have a handful of labels: compare pairs
        /// without allocating up to 16, sort beyond.
        static func duplicateName(in labels: [Label]) -> String? {
            guard labels.count > 1 else { return nil }
            if labels.count <= 16 {
                for second in 1..<labels.count {
                    for first in 0..<second where labels[first].name == labels[second].name {
                        return labels[second].name
                    }
                }
                return nil
            }
            let sorted = labels.map(\.name).sorted()
            for position in 1..<sorted.count where sorted[position] == sorted[position - 1] { return sorted[position] }
            return nil
        }

        func label(_ reader: inout ProtobufReader, series index: Int) throws(RemoteWriteError) -> Label {
            let start = reader.position
            var name = ""
            var value = ""
            while !reader.isAtEnd {
                let tagOffset = reader.position
                let (field, wireType) = try reader.readTag()
                switch field {
                case 1:
                    try reader.require(wireType, is: .lengthDelimited, for: "Label.name", tagAt: tagOffset)
                    name = try reader.readString("series \(index): a label name")
                case 2:
                    try reader.require(wireType, is: .lengthDelimited, for: "Label.value", tagAt: tagOffset)
                    value = try reader.readString("series \(index): the value of label \"\(name)\"")
                default:
                    try reader.skip(wireType)
                }
            }
            guard !name.isEmpty else {
                throw RemoteWriteError(.invalidRequest, at: start, "series \(index): a label has an empty name")
            }
            return Label(name, value)
        }

        func sample(_ reader: inout ProtobufReader) throws(RemoteWriteError) -> Sample {
            var sample = Sample(value: 0, timestamp: 0)
            while !reader.isAtEnd {
                let tagOffset = reader.position
                let (field, wireType) = try reader.readTag()
                switch field {
                case 1:
                    try reader.require(wireType, is: .fixed64, for: "Sample.value", tagAt: tagOffset)
                    sample.value = Double(bitPattern: try reader.readFixed64())
                case 2:
                    try reader.require(wireType, is: .varint, for: "Sample.timestamp", tagAt: tagOffset)
                    sample.timestamp = Int64(bitPattern: try reader.readVarint())
                default:
                    try reader.skip(wireType)
                }
            }
            return sample
        }
    }
}
