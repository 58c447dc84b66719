/// A remote read answer of the samples response type (`prometheus.ReadResponse`): one result per
/// query of the request, in the same order, each a list of series with all their labels
/// (`__name__` included) and float samples in time order.
package struct ReadResponse: Sendable, Equatable {
    package var results: [[Series]]

    package init(results: [[Series]]) { self.results = results }

    package struct Series: Sendable, Equatable {
        /// Every label, `__name__` included, sorted by name.
        package var labels: [WriteRequest.Label]
        package var samples: [WriteRequest.Sample]

        package init(labels: [WriteRequest.Label], samples: [WriteRequest.Sample]) {
            self.labels = labels
            self.samples = samples
        }
    }

    /// The answer as protobuf bytes.
    package func protobufEncoded() -> [UInt8] {
        var encoder = ReadResponseEncoder()
        for result in results {
            for series in result {
                encoder.beginSeries(labels: series.labels.map { ($0.name, $0.value) })
                for sample in series.samples { encoder.append(value: sample.value, timestamp: sample.timestamp) }
                encoder.endSeries()
            }
            encoder.endResult()
        }
        return encoder.finish()
    }

    /// Decodes an uncompressed `ReadResponse`; for tests and the benchmark, which read what the
    /// collector answered. Refuses what `ProtobufReader` refuses; label rules are not checked.
    package static func decode(protobuf: [UInt8]) throws(RemoteWriteError) -> ReadResponse {
        var result: Result<ReadResponse, RemoteWriteError> = .success(ReadResponse(results: []))
        protobuf.withUnsafeBytes { bytes in
            do throws(RemoteWriteError) {
                var reader = ProtobufReader(bytes)
                var response = ReadResponse(results: [])
                while !reader.isAtEnd {
                    let (field, wireType) = try reader.readTag()
                    guard field == 1, wireType == .lengthDelimited else {
                        try reader.skip(wireType)
                        continue
                    }
                    var queryResult = try reader.nested(reader.readLengthDelimited())
                    var series: [Series] = []
                    while !queryResult.isAtEnd {
                        let (field, wireType) = try queryResult.readTag()
                        guard field == 1, wireType == .lengthDelimited else {
                            try queryResult.skip(wireType)
                            continue
                        }
                        var timeSeries = try queryResult.nested(queryResult.readLengthDelimited())
                        series.append(try decodeSeries(&timeSeries))
                    }
                    response.results.append(series)
                }
                result = .success(response)
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    private static func decodeSeries(_ reader: inout ProtobufReader) throws(RemoteWriteError) -> Series {
        var series = Series(labels: [], samples: [])
        while !reader.isAtEnd {
            let (field, wireType) = try reader.readTag()
            switch (field, wireType) {
            case (1, .lengthDelimited):
                var pair = try reader.nested(reader.readLengthDelimited())
                var label = WriteRequest.Label("", "")
                while !pair.isAtEnd {
                    let (field, wireType) = try pair.readTag()
                    switch (field, wireType) {
                    case (1, .lengthDelimited): label.name = try pair.readString("a label name")
                    case (2, .lengthDelimited): label.value = try pair.readString("a label value")
                    default: try pair.skip(wireType)
                    }
                }
                series.labels.append(label)
            case (2, .lengthDelimited):
                var encoded = try reader.nested(reader.readLengthDelimited())
                var sample = WriteRequest.Sample(value: 0, timestamp: 0)
                while !encoded.isAtEnd {
                    let (field, wireType) = try encoded.readTag()
                    switch (field, wireType) {
                    case (1, .fixed64): sample.value = Double(bitPattern: try encoded.readFixed64())
                    case (2, .varint): sample.timestamp = Int64(bitPattern: try encoded.readVarint())
                    default: try encoded.skip(wireType)
                    }
                }
                series.samples.append(sample)
            default:
                try reader.skip(wireType)
            }
        }
        return series
    }
}

/// Builds a `ReadResponse` series by series without holding the series as values: samples go
/// straight into protobuf bytes, so an answer costs its encoded size plus one series' worth.
///
/// Call `beginSeries`, `append` per sample, `endSeries`; `endResult` after each query's series;
/// `finish` once. Protobuf needs each message's length before its bytes, so a series is built in
/// a scratch buffer and copied into its result, and each result into the answer.
package struct ReadResponseEncoder: Sendable {
    private var answer: [UInt8] = []
    private var result: [UInt8] = []
    private var series: [UInt8] = []

    package init() {}

    /// Bytes encoded so far, for limits on the answer's size.
    package var encodedBytes: Int { answer.count + result.count + series.count }

    package mutating func beginSeries(labels: [(name: String, value: String)]) {
        series.removeAll(keepingCapacity: true)
        for (name, value) in labels {
            let nameLength = name.utf8.count
            let valueLength = value.utf8.count
            let pairLength =
                1 + Self.varintSize(UInt64(nameLength)) + nameLength + 1
                + Self.varintSize(UInt64(valueLength)) + valueLength
            series.append(0x0A)  // TimeSeries.labels, field 1, length-delimited
            Self.appendVarint(UInt64(pairLength), to: &series)
            series.append(0x0A)  // Label.name
            Self.appendVarint(UInt64(nameLength), to: &series)
            series.append(contentsOf: name.utf8)
            series.append(0x12)  // Label.value
            Self.appendVarint(UInt64(valueLength), to: &series)
            series.append(contentsOf: value.utf8)
        }
    }

    /// One sample of the current series; `timestamp` in milliseconds.
    @inline(__always)
    package mutating func append(value: Double, timestamp: Int64) {
        let stamp = UInt64(bitPattern: timestamp)
        // Sample { double value = 1; int64 timestamp = 2; }: 1 + 8 + 1 + varint bytes.
        let sampleLength = 10 + Self.varintSize(stamp)
        series.append(0x12)  // TimeSeries.samples, field 2
        series.append(UInt8(sampleLength))  // at most 20, one byte
        series.append(0x09)  // Sample.value, fixed64
        let bits = value.bitPattern
        for shift in stride(from: 0, to: 64, by: 8) { series.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        series.append(0x10)  // Sample.timestamp, varint
        Self.appendVarint(stamp, to: &series)
    }

    /// A whole series at once, written straight into its result: its length is computed first, so
    /// the samples are not copied through the scratch buffer. `samples` are (milliseconds, value).
    package mutating func appendSeries(labels: [(name: String, value: String)], samples: [(Int64, Double)]) {
        beginSeries(labels: labels)
        var length = series.count
        for (timestamp, _) in samples { length += 12 + Self.varintSize(UInt64(bitPattern: timestamp)) }
        result.append(0x0A)  // QueryResult.timeseries
        Self.appendVarint(UInt64(length), to: &result)
        result.append(contentsOf: series)
        series.removeAll(keepingCapacity: true)
        result.reserveCapacity(result.count + length)
        for (timestamp, value) in samples {
            let stamp = UInt64(bitPattern: timestamp)
            result.append(0x12)
            result.append(UInt8(10 + Self.varintSize(stamp)))
            result.append(0x09)
            let bits = value.bitPattern
            for shift in stride(from: 0, to: 64, by: 8) {
                result.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift)))
            }
            result.append(0x10)
            Self.appendVarint(stamp, to: &result)
        }
    }

    package mutating func endSeries() {
        result.append(0x0A)  // QueryResult.timeseries
        Self.appendVarint(UInt64(series.count), to: &result)
        result.append(contentsOf: series)
        series.removeAll(keepingCapacity: true)
    }

    package mutating func endResult() {
        answer.append(0x0A)  // ReadResponse.results
        Self.appendVarint(UInt64(result.count), to: &answer)
        answer.append(contentsOf: result)
        result.removeAll(keepingCapacity: true)
    }

    /// The encoded `ReadResponse`.
    package mutating func finish() -> [UInt8] {
        let bytes = answer
        answer = []
        return bytes
    }

    @inline(__always)
    static func varintSize(_ value: UInt64) -> Int {
        // 1 byte per started 7 bits, at least one.
        (63 - (value | 1).leadingZeroBitCount) / 7 + 1
    }

    @inline(__always)
    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }
}
