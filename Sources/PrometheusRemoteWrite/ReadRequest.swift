/// A decoded Prometheus remote read request (`prometheus.ReadRequest` of prompb `remote.proto`).
///
/// Each query selects series by label matchers and a time range in milliseconds, both ends
/// inclusive. Read hints (field 4 of `Query`) are read past: they are advice for the server and do
/// not change what the answer must hold.
package struct ReadRequest: Sendable, Equatable {
    package var queries: [Query]
    /// `ResponseType` values the client accepts, in its order of preference; empty means samples.
    package var acceptedResponseTypes: [ResponseType]

    package init(queries: [Query], acceptedResponseTypes: [ResponseType] = []) {
        self.queries = queries
        self.acceptedResponseTypes = acceptedResponseTypes
    }

    package enum ResponseType: Sendable, Equatable {
        /// One snappy-compressed `ReadResponse` holding every sample.
        case samples
        /// Streamed `ChunkedReadResponse` frames of XOR-encoded chunks.
        case streamedXORChunks
        /// A value this decoder does not know (kept so the server can say what it got).
        case unknown(UInt64)

        init(_ raw: UInt64) {
            switch raw {
            case 0: self = .samples
            case 1: self = .streamedXORChunks
            default: self = .unknown(raw)
            }
        }

        package var rawValue: UInt64 {
            switch self {
            case .samples: 0
            case .streamedXORChunks: 1
            case .unknown(let raw): raw
            }
        }
    }

    package struct Query: Sendable, Equatable {
        /// Milliseconds since the epoch; the range includes both ends.
        package var startTimestamp: Int64
        package var endTimestamp: Int64
        package var matchers: [LabelMatcher]

        package init(startTimestamp: Int64, endTimestamp: Int64, matchers: [LabelMatcher]) {
            self.startTimestamp = startTimestamp
            self.endTimestamp = endTimestamp
            self.matchers = matchers
        }
    }

    package struct LabelMatcher: Sendable, Hashable {
        package enum Kind: UInt64, Sendable, Hashable {
            case equal = 0
            case notEqual = 1
            case regexMatch = 2
            case regexNoMatch = 3

            package var symbol: String {
                switch self {
                case .equal: "="
                case .notEqual: "!="
                case .regexMatch: "=~"
                case .regexNoMatch: "!~"
                }
            }
        }

        package var kind: Kind
        package var name: String
        package var value: String

        package init(_ name: String, _ kind: Kind, _ value: String) {
            self.kind = kind
            self.name = name
            self.value = value
        }
    }
}

/// Bounds on one remote read request body, checked while decoding.
package struct RemoteReadRequestLimits: Sendable, Equatable {
    /// Largest decompressed request; Prometheus sends one query of a few matchers (well under 1 KiB).
    package var maximumDecodedBytes = 64 * 1024
    /// Most queries in one request (Prometheus sends one).
    package var maximumQueries = 16
    /// Most matchers in one query.
    package var maximumMatchers = 64
    /// Longest matcher name or value, in bytes (a regex included).
    package var maximumMatcherBytes = 4096

    package init() {}
}

extension ReadRequest {
    /// Decodes a request body as Prometheus sends it: a Snappy block holding a `ReadRequest`.
    package static func decode(
        snappyBody: [UInt8], limits: RemoteReadRequestLimits = RemoteReadRequestLimits()
    ) throws(RemoteWriteError) -> ReadRequest {
        let message: [UInt8]
        do {
            message = try Snappy.decompress(snappyBody, maximumDecodedBytes: limits.maximumDecodedBytes)
        } catch {
            throw RemoteWriteError(error)
        }
        return try decode(protobuf: message, limits: limits)
    }

    /// Decodes an uncompressed protobuf `ReadRequest`.
    package static func decode(
        protobuf: [UInt8], limits: RemoteReadRequestLimits = RemoteReadRequestLimits()
    ) throws(RemoteWriteError) -> ReadRequest {
        guard protobuf.count <= limits.maximumDecodedBytes else {
            throw RemoteWriteError(
                .limitExceeded, at: nil,
                "the message is \(protobuf.count) bytes; at most \(limits.maximumDecodedBytes) are accepted")
        }
        var result: Result<ReadRequest, RemoteWriteError> = .success(ReadRequest(queries: []))
        protobuf.withUnsafeBytes { bytes in
            do throws(RemoteWriteError) {
                result = .success(try decodeMessage(ProtobufReader(bytes), limits: limits))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    private static func decodeMessage(
        _ start: ProtobufReader, limits: RemoteReadRequestLimits
    ) throws(RemoteWriteError) -> ReadRequest {
        var reader = start
        var request = ReadRequest(queries: [])
        while !reader.isAtEnd {
            let tagOffset = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.require(wireType, is: .lengthDelimited, for: "ReadRequest.queries", tagAt: tagOffset)
                guard request.queries.count < limits.maximumQueries else {
                    throw RemoteWriteError(
                        .limitExceeded, at: tagOffset, "more than \(limits.maximumQueries) queries in one request")
                }
                var query = try reader.nested(reader.readLengthDelimited())
                request.queries.append(try decodeQuery(&query, limits: limits))
            case 2:
                // A repeated enum: packed (proto3's default) or one varint per element.
                switch wireType {
                case .varint:
                    request.acceptedResponseTypes.append(ResponseType(try reader.readVarint()))
                case .lengthDelimited:
                    var packed = try reader.nested(reader.readLengthDelimited())
                    while !packed.isAtEnd {
                        guard request.acceptedResponseTypes.count < 16 else {
                            throw RemoteWriteError(
                                .limitExceeded, at: packed.position, "more than 16 accepted response types")
                        }
                        request.acceptedResponseTypes.append(ResponseType(try packed.readVarint()))
                    }
                default:
                    try reader.require(
                        wireType, is: .varint, for: "ReadRequest.accepted_response_types", tagAt: tagOffset)
                }
                guard request.acceptedResponseTypes.count <= 16 else {
                    throw RemoteWriteError(.limitExceeded, at: tagOffset, "more than 16 accepted response types")
                }
            default:
                try reader.skip(wireType)
            }
        }
        return request
    }

    private static func decodeQuery(
        _ reader: inout ProtobufReader, limits: RemoteReadRequestLimits
    ) throws(RemoteWriteError) -> Query {
        var query = Query(startTimestamp: 0, endTimestamp: 0, matchers: [])
        while !reader.isAtEnd {
            let tagOffset = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.require(wireType, is: .varint, for: "Query.start_timestamp_ms", tagAt: tagOffset)
                query.startTimestamp = Int64(bitPattern: try reader.readVarint())
            case 2:
                try reader.require(wireType, is: .varint, for: "Query.end_timestamp_ms", tagAt: tagOffset)
                query.endTimestamp = Int64(bitPattern: try reader.readVarint())
            case 3:
                try reader.require(wireType, is: .lengthDelimited, for: "Query.matchers", tagAt: tagOffset)
                guard query.matchers.count < limits.maximumMatchers else {
                    throw RemoteWriteError(
                        .limitExceeded, at: tagOffset, "more than \(limits.maximumMatchers) matchers in one query")
                }
                var matcher = try reader.nested(reader.readLengthDelimited())
                query.matchers.append(try decodeMatcher(&matcher, at: tagOffset, limits: limits))
            default:
                try reader.skip(wireType)
            }
        }
        return query
    }

    private static func decodeMatcher(
        _ reader: inout ProtobufReader, at offset: Int, limits: RemoteReadRequestLimits
    ) throws(RemoteWriteError) -> LabelMatcher {
        var kind = LabelMatcher.Kind.equal
        var name = ""
        var value = ""
        while !reader.isAtEnd {
            let tagOffset = reader.position
            let (field, wireType) = try reader.readTag()
            switch field {
            case 1:
                try reader.require(wireType, is: .varint, for: "LabelMatcher.type", tagAt: tagOffset)
                let raw = try reader.readVarint()
                guard let known = LabelMatcher.Kind(rawValue: raw) else {
                    throw RemoteWriteError(
                        .invalidRequest, at: tagOffset, "matcher type \(raw) is not one of EQ, NEQ, RE, NRE (0-3)")
                }
                kind = known
            case 2, 3:
                try reader.require(wireType, is: .lengthDelimited, for: "LabelMatcher field \(field)", tagAt: tagOffset)
                let text = try reader.readString(field == 2 ? "a matcher's name" : "a matcher's value")
                guard text.utf8.count <= limits.maximumMatcherBytes else {
                    throw RemoteWriteError(
                        .limitExceeded, at: tagOffset,
                        "a matcher's \(field == 2 ? "name" : "value") is \(text.utf8.count) bytes; at most"
                            + " \(limits.maximumMatcherBytes)")
                }
                if field == 2 { name = text } else { value = text }
            default:
                try reader.skip(wireType)
            }
        }
        guard !name.isEmpty else {
            throw RemoteWriteError(.invalidRequest, at: offset, "a matcher has an empty label name")
        }
        return LabelMatcher(name, kind, value)
    }

    /// The request as protobuf bytes; for tests and the benchmark.
    package func protobufEncoded() -> [UInt8] {
        var writer = ProtobufWriter()
        for query in queries {
            writer.appendMessageField(1) { message in
                message.appendVarintField(1, UInt64(bitPattern: query.startTimestamp))
                message.appendVarintField(2, UInt64(bitPattern: query.endTimestamp))
                for matcher in query.matchers {
                    message.appendMessageField(3) { encoded in
                        encoded.appendVarintField(1, matcher.kind.rawValue)
                        encoded.appendBytesField(2, matcher.name.utf8)
                        encoded.appendBytesField(3, matcher.value.utf8)
                    }
                }
            }
        }
        if !acceptedResponseTypes.isEmpty {
            var packed = ProtobufWriter()
            for type in acceptedResponseTypes { packed.appendVarint(type.rawValue) }
            writer.appendBytesField(2, packed.bytes)
        }
        return writer.bytes
    }

    /// The request as Prometheus sends it: protobuf in one Snappy block.
    package func snappyEncoded() -> [UInt8] { Snappy.compress(protobufEncoded()) }
}
