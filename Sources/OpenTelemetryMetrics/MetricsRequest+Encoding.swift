import PrometheusRemoteWrite

extension MetricsRequest {
    /// The protobuf encoding of the request, for tests, fuzz seeds and the benchmark (what an OTLP
    /// exporter sends; exponential histograms are written with empty points).
    package func encoded() -> [UInt8] {
        var writer = ProtobufWriter()
        for resource in resources {
            writer.appendMessageField(1) { out in
                out.appendMessageField(1) { inner in Self.write(resource.attributes, field: 1, to: &inner) }
                for scope in resource.scopes {
                    out.appendMessageField(2) { out in
                        out.appendMessageField(1) { inner in
                            inner.appendBytesField(1, Array(scope.name.utf8))
                            if !scope.version.isEmpty { inner.appendBytesField(2, Array(scope.version.utf8)) }
                            Self.write(scope.attributes, field: 3, to: &inner)
                        }
                        for metric in scope.metrics { out.appendMessageField(2) { Self.write(metric, to: &$0) } }
                    }
                }
            }
        }
        return writer.bytes
    }

    private static func write(_ metric: Metric, to out: inout ProtobufWriter) {
        out.appendBytesField(1, Array(metric.name.utf8))
        switch metric.data {
        case .none:
            break
        case .gauge(let points), .sum(let points):
            let field = if case .gauge = metric.data { 5 } else { 7 }
            out.appendMessageField(field) { data in
                for point in points {
                    data.appendMessageField(1) { out in
                        write(point.attributes, field: 7, to: &out)
                        out.appendFixed64Field(3, point.time)
                        switch point.value {
                        case .none: break
                        case .double(let value): out.appendFixed64Field(4, value.bitPattern)
                        case .integer(let value): out.appendFixed64Field(6, UInt64(bitPattern: value))
                        }
                        if point.flags != 0 { out.appendVarintField(8, UInt64(point.flags)) }
                    }
                }
                if field == 7 { data.appendVarintField(2, 2) }  // cumulative
            }
        case .histogram(let points):
            out.appendMessageField(9) { data in
                for point in points {
                    data.appendMessageField(1) { out in
                        write(point.attributes, field: 9, to: &out)
                        out.appendFixed64Field(3, point.time)
                        out.appendFixed64Field(4, point.count)
                        if let sum = point.sum { out.appendFixed64Field(5, sum.bitPattern) }
                        out.appendBytesField(6, packed(point.bucketCounts))
                        out.appendBytesField(7, packed(point.explicitBounds.map(\.bitPattern)))
                        if point.flags != 0 { out.appendVarintField(10, UInt64(point.flags)) }
                    }
                }
                data.appendVarintField(2, 2)
            }
        case .summary(let points):
            out.appendMessageField(11) { data in
                for point in points {
                    data.appendMessageField(1) { out in
                        write(point.attributes, field: 7, to: &out)
                        out.appendFixed64Field(3, point.time)
                        out.appendFixed64Field(4, point.count)
                        out.appendFixed64Field(5, point.sum.bitPattern)
                        for quantile in point.quantiles {
                            out.appendMessageField(6) { inner in
                                inner.appendFixed64Field(1, quantile.quantile.bitPattern)
                                inner.appendFixed64Field(2, quantile.value.bitPattern)
                            }
                        }
                        if point.flags != 0 { out.appendVarintField(8, UInt64(point.flags)) }
                    }
                }
            }
        case .exponentialHistogram(let count):
            out.appendMessageField(10) { data in
                for _ in 0..<count { data.appendMessageField(1) { $0.appendFixed64Field(4, 1) } }
            }
        }
    }

    private static func write(_ attributes: [Attribute], field: Int, to out: inout ProtobufWriter) {
        for attribute in attributes {
            out.appendMessageField(field) { keyValue in
                keyValue.appendBytesField(1, Array(attribute.key.utf8))
                if let value = attribute.value {
                    keyValue.appendMessageField(2) { $0.appendBytesField(1, Array(value.utf8)) }
                }
            }
        }
    }

    private static func packed(_ values: [UInt64]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 8)
        for value in values {
            for shift in stride(from: 0, to: 64, by: 8) {
                bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            }
        }
        return bytes
    }
}
