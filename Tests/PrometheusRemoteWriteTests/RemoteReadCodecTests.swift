import EdgeSyncTestSupport
import PrometheusRemoteWrite
import Testing

/// The remote read messages: requests decoded from hand-built bytes (as Go's protobuf writes them,
/// packed enums included), every truncation and hostile body refused with an error, answers that
/// decode back to what was encoded.
struct RemoteReadCodecTests {
    /// `ReadRequest{queries: [{start: 1000, end: 2000, matchers: [__name__="up", job=~"a.*"]}],
    /// accepted_response_types: [SAMPLES, STREAMED_XOR_CHUNKS] (packed)}`, byte by byte.
    static let handBuilt: [UInt8] = {
        let nameMatcher: [UInt8] = [0x12, 8] + Array("__name__".utf8) + [0x1A, 2] + Array("up".utf8)
        let jobMatcher: [UInt8] = [0x08, 2, 0x12, 3] + Array("job".utf8) + [0x1A, 3] + Array("a.*".utf8)
        var query: [UInt8] = [0x08, 0xE8, 0x07, 0x10, 0xD0, 0x0F]
        query += [0x1A, UInt8(nameMatcher.count)] + nameMatcher
        query += [0x1A, UInt8(jobMatcher.count)] + jobMatcher
        // An unknown field (hints, 4) is read past.
        query += [0x22, 2, 0x08, 1]
        return [0x0A, UInt8(query.count)] + query + [0x12, 2, 0, 1]
    }()

    @Test func handBuiltRequestDecodes() throws {
        let request = try ReadRequest.decode(protobuf: Self.handBuilt)
        #expect(request.acceptedResponseTypes == [.samples, .streamedXORChunks])
        #expect(
            request.queries == [
                ReadRequest.Query(
                    startTimestamp: 1000, endTimestamp: 2000,
                    matchers: [
                        ReadRequest.LabelMatcher("__name__", .equal, "up"),
                        ReadRequest.LabelMatcher("job", .regexMatch, "a.*"),
                    ])
            ])
        // The same through Snappy, as Prometheus sends it.
        #expect(try ReadRequest.decode(snappyBody: Snappy.compress(Self.handBuilt)) == request)
    }

    @Test func unpackedResponseTypesAndNegativeTimesDecode() throws {
        var writer = ProtobufWriter()
        writer.appendMessageField(1) { query in
            query.appendVarintField(1, UInt64(bitPattern: -5))
            query.appendVarintField(2, UInt64(bitPattern: -1))
        }
        writer.appendVarintField(2, 1)
        writer.appendVarintField(2, 0)
        let request = try ReadRequest.decode(protobuf: writer.bytes)
        #expect(request.acceptedResponseTypes == [.streamedXORChunks, .samples])
        #expect(request.queries.first?.startTimestamp == -5)
        #expect(request.queries.first?.endTimestamp == -1)
    }

    @Test func encodedRequestsRoundTrip() throws {
        let request = ReadRequest(
            queries: [
                ReadRequest.Query(
                    startTimestamp: 1_700_000_000_000, endTimestamp: 1_700_000_600_000,
                    matchers: [
                        ReadRequest.LabelMatcher("__name__", .equal, "temperature_celsius"),
                        ReadRequest.LabelMatcher("site", .notEqual, "b"),
                        ReadRequest.LabelMatcher("device", .regexNoMatch, "gw-(1|2)"),
                    ]),
                ReadRequest.Query(startTimestamp: 0, endTimestamp: 0, matchers: [.init("x", .regexMatch, "é.+")]),
            ], acceptedResponseTypes: [.samples])
        #expect(try ReadRequest.decode(snappyBody: request.snappyEncoded()) == request)
    }

    /// Every prefix of a valid request is refused or decodes to less: never a crash, never a read past the end.
    @Test func everyTruncationIsHandled() {
        for length in 0..<Self.handBuilt.count {
            let prefix = Array(Self.handBuilt.prefix(length))
            if let decoded = try? ReadRequest.decode(protobuf: prefix) {
                #expect(decoded.queries.count <= 1)
            }
        }
        // Cut inside the query message: its declared length runs past the end.
        #expect(throws: RemoteWriteError.self) { try ReadRequest.decode(protobuf: Array(Self.handBuilt.prefix(10))) }
    }

    static func kind(_ body: () throws -> Void) -> RemoteWriteError.Kind? {
        do {
            try body()
            return nil
        } catch {
            return (error as? RemoteWriteError)?.kind
        }
    }

    @Test func hostileBodiesAreRefusedWithTheirReason() {
        // Not Snappy at all: a preamble claiming 4 GiB, refused before allocating.
        #expect(
            Self.kind { _ = try ReadRequest.decode(snappyBody: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) }
                == .compression(.tooLarge))
        // A literal running past the end.
        #expect(Self.kind { _ = try ReadRequest.decode(snappyBody: [10, 0x24, 1, 2]) } == .compression(.truncated))
        #expect(Self.kind { _ = try ReadRequest.decode(snappyBody: []) } == .compression(.truncated))
        // A group wire type, an overlong varint, a wrong wire type for queries.
        #expect(Self.kind { _ = try ReadRequest.decode(protobuf: [0x0B]) } == .malformedProtobuf)
        #expect(
            Self.kind { _ = try ReadRequest.decode(protobuf: [0x08] + Array(repeating: 0xFF, count: 11)) }
                == .malformedProtobuf)
        #expect(Self.kind { _ = try ReadRequest.decode(protobuf: [0x08, 1]) } == .malformedProtobuf)
        // Matcher type 7, an empty matcher name, a value that is not UTF-8.
        #expect(Self.kind { _ = try ReadRequest.decode(protobuf: [0x0A, 4, 0x1A, 2, 0x08, 7]) } == .invalidRequest)
        #expect(Self.kind { _ = try ReadRequest.decode(protobuf: [0x0A, 4, 0x1A, 2, 0x1A, 0]) } == .invalidRequest)
        #expect(
            Self.kind { _ = try ReadRequest.decode(protobuf: [0x0A, 8, 0x1A, 6, 0x12, 1, 0x61, 0x1A, 1, 0xFF]) }
                == .invalidRequest)
        // Nested deeper than the reader allows is impossible here, but oversized parts are limits.
        var limits = RemoteReadRequestLimits()
        limits.maximumMatcherBytes = 4
        let long = ReadRequest(queries: [
            .init(startTimestamp: 0, endTimestamp: 1, matchers: [.init("job", .equal, "toolong")])
        ])
        #expect(
            Self.kind { _ = try ReadRequest.decode(protobuf: long.protobufEncoded(), limits: limits) } == .limitExceeded
        )
        let many = ReadRequest(
            queries: Array(repeating: .init(startTimestamp: 0, endTimestamp: 1, matchers: []), count: 17))
        #expect(Self.kind { _ = try ReadRequest.decode(protobuf: many.protobufEncoded()) } == .limitExceeded)
        let big = [UInt8](repeating: 0, count: 70_000)
        #expect(Self.kind { _ = try ReadRequest.decode(snappyBody: Snappy.compress(big)) } == .compression(.tooLarge))
        #expect(Self.kind { _ = try ReadRequest.decode(protobuf: big) } == .limitExceeded)
    }

    /// Random bytes and random corruptions of a valid body: every outcome is a value or a `RemoteWriteError`.
    @Test func randomBodiesNeverCrash() {
        var random = SeededRandom(seed: 22)
        let valid = Snappy.compress(Self.handBuilt)
        for round in 0..<3000 {
            var body: [UInt8]
            if round % 2 == 0 {
                body = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random)
                }
            } else {
                body = valid
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    body[Int.random(in: 0..<body.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
            }
            _ = try? ReadRequest.decode(snappyBody: body)
            _ = try? ReadResponse.decode(protobuf: body)
        }
    }

    @Test func answersRoundTripBitExactly() throws {
        let response = ReadResponse(results: [
            [
                ReadResponse.Series(
                    labels: [.init("__name__", "up"), .init("device", "gw-1"), .init("stream", "43981")],
                    samples: [
                        .init(value: 1.5, timestamp: 1_700_000_000_000),
                        .init(value: Double(bitPattern: 0x7FF8_0000_0000_0123), timestamp: -1),
                        .init(value: -0.0, timestamp: 0),
                        .init(value: .infinity, timestamp: .max),
                    ]),
                ReadResponse.Series(labels: [.init("__name__", "é")], samples: []),
            ],
            [],
        ])
        let bytes = response.protobufEncoded()
        #expect(try ReadResponse.decode(protobuf: bytes) == response)
        // A sample is tag, length, tag, 8 value bytes, tag, varint: 0x12 len 0x09 … 0x10 …
        let empty = ReadResponse(results: [[ReadResponse.Series(labels: [], samples: [.init(value: 0, timestamp: 1)])]])
        #expect(empty.protobufEncoded() == [0x0A, 15, 0x0A, 13, 0x12, 11, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 1])
    }
}
