import PrometheusRemoteWrite
import Testing

/// Hand-built protobuf for the remote write schema; field numbers from prompb `types.proto`.
enum Protobuf {
    static func label(_ name: String, _ value: String) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.appendBytesField(1, name.utf8)
        writer.appendBytesField(2, value.utf8)
        return writer.bytes
    }

    static func sample(_ value: Double, _ timestamp: Int64) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.appendFixed64Field(1, value.bitPattern)
        writer.appendVarintField(2, UInt64(bitPattern: timestamp))
        return writer.bytes
    }

    static func series(labels: [[UInt8]], samples: [[UInt8]], extra: [UInt8] = []) -> [UInt8] {
        var writer = ProtobufWriter()
        for label in labels { writer.appendBytesField(1, label) }
        for sample in samples { writer.appendBytesField(2, sample) }
        return writer.bytes + extra
    }

    static func request(_ series: [[UInt8]]) -> [UInt8] {
        var writer = ProtobufWriter()
        for one in series { writer.appendBytesField(1, one) }
        return writer.bytes
    }

    /// A request with one series `up{job="api"}` whose series message ends with `extra` bytes.
    static func up(extra: [UInt8] = [], label: [UInt8]? = nil, sample: [UInt8]? = nil) -> [UInt8] {
        request([
            series(
                labels: [self.label("__name__", "up"), label ?? self.label("job", "api")],
                samples: [sample ?? self.sample(1, 1_700_000_000_000)], extra: extra)
        ])
    }
}

struct WriteRequestDecodingTests {
    func decode(_ bytes: [UInt8], limits: RemoteWriteLimits = .default) throws(RemoteWriteError) -> WriteRequest {
        try WriteRequest.decode(protobuf: bytes, limits: limits)
    }

    func failure(_ bytes: [UInt8], limits: RemoteWriteLimits = .default) -> RemoteWriteError? {
        do {
            _ = try decode(bytes, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    static let up = WriteRequest(timeseries: [
        .init(name: "up", labels: [.init("job", "api")], samples: [.init(value: 1, timestamp: 1_700_000_000_000)])
    ])

    @Test func literalBytes() throws {
        // Written out byte by byte, as protoc would encode `up{job="api"} 1 @1700000000000`.
        let bytes: [UInt8] =
            [0x0A, 0x2E]  // timeseries, 46 bytes
            + [0x0A, 0x0E, 0x0A, 0x08] + Array("__name__".utf8) + [0x12, 0x02] + Array("up".utf8)
            + [0x0A, 0x0A, 0x0A, 0x03] + Array("job".utf8) + [0x12, 0x03] + Array("api".utf8)
            + [0x12, 0x10, 0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x10, 0x80, 0xD0, 0x95, 0xFF, 0xBC, 0x31]
        #expect(try decode(bytes) == Self.up)
        #expect(Protobuf.up() == bytes)
        #expect(Self.up.protobufEncoded() == bytes)
    }

    @Test func emptyRequestAndDefaults() throws {
        #expect(try decode([]) == WriteRequest(timeseries: []))
        // A sample with neither field is value 0 at time 0 (proto3 defaults).
        let request = try decode(Protobuf.up(sample: []))
        #expect(request.timeseries[0].samples == [.init(value: 0, timestamp: 0)])
    }

    @Test func roundTripsThroughTheEncoder() throws {
        let request = WriteRequest(timeseries: [
            .init(
                name: "température_°C", labels: [.init("site", "a b,c=d\\e"), .init("zone", "北")],
                samples: [
                    .init(value: -0.0, timestamp: -1), .init(value: .nan, timestamp: Int64.min),
                    .init(value: .greatestFiniteMagnitude, timestamp: Int64.max),
                    .init(value: Double(bitPattern: WriteRequest.Sample.staleMarkerBitPattern), timestamp: 5),
                ]),
            .init(name: "x", labels: [], samples: []),
        ])
        #expect(try decode(request.protobufEncoded()) == request)
        #expect(try WriteRequest.decode(snappyBody: request.snappyEncoded()) == request)
    }

    @Test func skipsUnknownFieldsMetadataExemplarsAndHistograms() throws {
        var unknown = ProtobufWriter()
        unknown.appendVarintField(15, 300)
        unknown.appendFixed64Field(16, 7)
        unknown.appendTag(field: 17, wireType: .fixed32)
        unknown.appendVarint(0)
        unknown.appendVarint(0)  // four bytes of fixed32 payload, written as zero varints…
        unknown.appendVarint(0)
        unknown.appendVarint(0)
        unknown.appendBytesField(18, [1, 2, 3])
        var skipped = ProtobufWriter()
        skipped.appendBytesField(3, [0x0A, 0x01, 0x78])  // exemplar
        skipped.appendBytesField(4, [0x08, 0x01])  // histogram
        let series = Protobuf.series(
            labels: [Protobuf.label("__name__", "up") + unknown.bytes, Protobuf.label("job", "api")],
            samples: [Protobuf.sample(1, 1_700_000_000_000) + unknown.bytes],
            extra: unknown.bytes + skipped.bytes)
        var metadata = ProtobufWriter()
        metadata.appendBytesField(3, [0x08, 0x01, 0x12, 0x02, 0x75, 0x70])
        let bytes = unknown.bytes + metadata.bytes + Protobuf.request([series]) + metadata.bytes
        #expect(try decode(bytes) == Self.up)
    }

    @Test func truncatedAndOverlongVarints() {
        // Tag of a timeseries, then a length varint that never ends.
        #expect(
            failure([0x0A, 0x80]) == RemoteWriteError(.malformedProtobuf, at: 1, "the message ends inside a varint"))
        #expect(failure([0x0A]) == RemoteWriteError(.malformedProtobuf, at: 1, "the message ends inside a varint"))
        let overlong: [UInt8] = [0x10] + [UInt8](repeating: 0x80, count: 10) + [0x00]
        #expect(failure(overlong) == RemoteWriteError(.malformedProtobuf, at: 1, "a varint is longer than 10 bytes"))
        let overflowing: [UInt8] = [0x10] + [UInt8](repeating: 0xFF, count: 9) + [0x02]
        #expect(failure(overflowing) == RemoteWriteError(.malformedProtobuf, at: 1, "a varint overflows 64 bits"))
        // The largest 10-byte varint is fine (an unknown field, skipped).
        #expect(failure([0x10] + [UInt8](repeating: 0xFF, count: 9) + [0x01]) == nil)
        // A truncated timestamp inside a sample.
        #expect(failure(Protobuf.up(sample: [0x10, 0x80]))?.kind == .malformedProtobuf)
        #expect(failure(Protobuf.up(sample: [0x09, 1, 2, 3]))?.kind == .malformedProtobuf)
    }

    @Test func lengthsPastTheEnd() {
        #expect(
            failure([0x0A, 0x05, 0x0A, 0x00])
                == RemoteWriteError(
                    .malformedProtobuf, at: 1, "a length of 5 bytes runs past the end of the message (2 left)"))
        // A label whose length runs past its series, though not past the whole buffer.
        let inner: [UInt8] = [0x0A, 0x09, 0x0A, 0x01, 0x61]
        #expect(failure([0x0A, 0x05] + inner.prefix(5) + [0, 0, 0, 0, 0, 0])?.kind == .malformedProtobuf)
        #expect(failure([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])?.kind == .malformedProtobuf)
    }

    @Test func wrongWireTypes() {
        #expect(
            failure([0x08, 0x01])
                == RemoteWriteError(
                    .malformedProtobuf, at: 0, "WriteRequest.timeseries has wire type varint; expected length-delimited"
                ))
        #expect(
            failure(Protobuf.up(sample: [0x08, 0x01]))?.reason == "Sample.value has wire type varint; expected 64-bit")
        #expect(
            failure(Protobuf.up(sample: [0x11, 0, 0, 0, 0, 0, 0, 0, 0]))?.reason
                == "Sample.timestamp has wire type 64-bit; expected varint")
        #expect(
            failure(Protobuf.up(label: [0x08, 0x01]))?.reason
                == "Label.name has wire type varint; expected length-delimited")
        #expect(
            failure(Protobuf.up(extra: [0x10, 0x01]))?.reason
                == "TimeSeries.samples has wire type varint; expected length-delimited")
        #expect(
            failure([0x19, 0, 0, 0, 0, 0, 0, 0, 0])?.reason
                == "WriteRequest.metadata has wire type 64-bit; expected length-delimited")
    }

    @Test(arguments: [UInt8(0x0B), 0x0C, 0x0E, 0x0F, 0x1B, 0x24])
    func groupsAndInvalidWireTypes(tag: UInt8) {
        let error = failure([tag, 0x00])
        #expect(error?.kind == .malformedProtobuf)
        #expect(error?.offset == 0)
        // And nested inside a series.
        #expect(failure(Protobuf.up(extra: [tag, 0x00]))?.kind == .malformedProtobuf)
    }

    @Test func fieldNumberZero() {
        #expect(failure([0x02, 0x00])?.reason == "invalid field number 0")
    }

    @Test func invalidUTF8() {
        let badName = Protobuf.up(label: [0x0A, 0x02, 0xC3, 0x28, 0x12, 0x01, 0x61])
        #expect(failure(badName)?.kind == .invalidRequest)
        #expect(failure(badName)?.reason == "series 0: a label name is not valid UTF-8")
        let badValue = Protobuf.up(label: [0x0A, 0x01, 0x61, 0x12, 0x03, 0xED, 0xA0, 0x80])  // a lone surrogate
        #expect(failure(badValue)?.reason == "series 0: the value of label \"a\" is not valid UTF-8")
    }

    @Test func metricNameRules() {
        let missing = Protobuf.request([Protobuf.series(labels: [Protobuf.label("job", "api")], samples: [])])
        #expect(
            failure(missing)
                == RemoteWriteError(.invalidRequest, at: 2, "series 0: no metric name (label \"__name__\")"))
        let empty = Protobuf.request([Protobuf.series(labels: [Protobuf.label("__name__", "")], samples: [])])
        #expect(failure(empty)?.kind == .invalidRequest)
        let twice = Protobuf.request([
            Protobuf.series(labels: [Protobuf.label("__name__", "a"), Protobuf.label("__name__", "b")], samples: [])
        ])
        #expect(failure(twice)?.reason == "series 0: label \"__name__\" appears twice")
    }

    @Test func labelRules() {
        let duplicate = Protobuf.request([
            Protobuf.series(labels: [Protobuf.label("__name__", "up")], samples: []),
            Protobuf.series(
                labels: [
                    Protobuf.label("job", "a"), Protobuf.label("__name__", "up"), Protobuf.label("zone", "z"),
                    Protobuf.label("job", "b"),
                ], samples: []),
        ])
        #expect(failure(duplicate)?.reason == "series 1 (up): label \"job\" appears twice")
        #expect(failure(Protobuf.up(label: Protobuf.label("", "x")))?.reason == "series 0: a label has an empty name")
        // An empty value is allowed (Prometheus: the same as no label).
        #expect(failure(Protobuf.up(label: Protobuf.label("job", ""))) == nil)
    }

    @Test func limits() {
        var limits = RemoteWriteLimits()
        limits.maximumSeries = 2
        let three = Protobuf.request(
            [[UInt8]](repeating: Protobuf.series(labels: [Protobuf.label("__name__", "a")], samples: []), count: 3))
        #expect(failure(three, limits: limits)?.kind == .limitExceeded)
        #expect(
            failure(
                Array(
                    Protobuf.request(
                        Array(
                            repeating: Protobuf.series(labels: [Protobuf.label("__name__", "a")], samples: []), count: 2
                        ))), limits: limits) == nil)

        limits = RemoteWriteLimits()
        limits.maximumSamples = 3
        let twoByTwo = Protobuf.request(
            [[UInt8]](
                repeating: Protobuf.series(
                    labels: [Protobuf.label("__name__", "a")], samples: [Protobuf.sample(1, 1), Protobuf.sample(2, 2)]),
                count: 2))
        #expect(failure(twoByTwo, limits: limits)?.reason == "more than 3 samples in one request")

        limits = RemoteWriteLimits()
        limits.maximumLabelBytesPerSeries = 16
        // "__name__" + "up" + "job" + "api" = 16 bytes: fits; one more byte does not.
        #expect(failure(Protobuf.up(), limits: limits) == nil)
        #expect(failure(Protobuf.up(label: Protobuf.label("job", "apis")), limits: limits)?.kind == .limitExceeded)

        limits = RemoteWriteLimits()
        limits.maximumDecodedBytes = 10
        #expect(failure(Protobuf.up(), limits: limits)?.kind == .limitExceeded)
        let body = Snappy.compress(Protobuf.up())
        do {
            _ = try WriteRequest.decode(snappyBody: body, limits: limits)
            Issue.record("a body over the decoded limit was accepted")
        } catch {
            #expect(error.kind == .compression(.tooLarge))
            #expect(error.description.hasPrefix("remote write: snappy body byte 0: the preamble declares"))
        }
    }

    @Test func nestingDepthIsBounded() throws {
        // Remote write never nests beyond 2; the reader refuses to go past its maximum for anyone.
        var bytes: [UInt8] = []
        for _ in 0...ProtobufReader.maximumDepth {
            var writer = ProtobufWriter()
            writer.appendBytesField(1, bytes)
            bytes = writer.bytes
        }
        let depth: Int? = bytes.withUnsafeBytes { buffer in
            var reader = ProtobufReader(buffer)
            do throws(RemoteWriteError) {
                while true {
                    _ = try reader.readTag()
                    reader = try reader.nested(reader.readLengthDelimited())
                }
            } catch {
                #expect(error.reason.contains("nested more than"))
                return reader.depth
            }
        }
        #expect(depth == ProtobufReader.maximumDepth)
    }

    @Test func snappyErrorsBecomeRemoteWriteErrors() {
        do {
            _ = try WriteRequest.decode(snappyBody: [5, 0x04, 1, 2, 0b01, 0])
            Issue.record("accepted")
        } catch {
            #expect(error == RemoteWriteError(.compression(.invalidOffset), at: 4, "a copy has offset 0"))
            #expect(error.description == "remote write: snappy body byte 4: a copy has offset 0")
        }
    }
}
