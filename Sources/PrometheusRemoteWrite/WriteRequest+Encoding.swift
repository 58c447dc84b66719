extension WriteRequest {
    /// The request as protobuf bytes, `__name__` first in each series; for tests and the benchmark.
    package func protobufEncoded() -> [UInt8] {
        var writer = ProtobufWriter()
        for series in timeseries {
            writer.appendMessageField(1) { message in
                for label in [Label(Self.metricNameLabel, series.name)] + series.labels {
                    message.appendMessageField(1) { pair in
                        pair.appendBytesField(1, label.name.utf8)
                        pair.appendBytesField(2, label.value.utf8)
                    }
                }
                for sample in series.samples {
                    message.appendMessageField(2) { encoded in
                        encoded.appendFixed64Field(1, sample.value.bitPattern)
                        encoded.appendVarintField(2, UInt64(bitPattern: sample.timestamp))
                    }
                }
            }
        }
        return writer.bytes
    }

    /// The request as Prometheus sends it: protobuf in one Snappy block.
    package func snappyEncoded() -> [UInt8] { Snappy.compress(protobufEncoded()) }
}
