/// Why a remote write request was refused: what is wrong and where.
///
/// `offset` is a byte offset into the decompressed protobuf message, except for `.compression`,
/// where it is an offset into the Snappy-compressed body. `kind` lets the HTTP layer choose a status:
/// `.limitExceeded` is 413, everything else 400 (Prometheus does not retry a 4xx, which is what a
/// malformed request deserves).
package struct RemoteWriteError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        /// The body is not a valid Snappy block.
        case compression(SnappyError.Kind)
        /// The bytes are not a well-formed protobuf message of the remote write schema.
        case malformedProtobuf
        /// Well-formed, but breaks a rule of remote write 1.0 (labels, UTF-8, `__name__`, timestamps).
        case invalidRequest
        /// A configured limit (`RemoteWriteLimits`) or the spool's series key length is exceeded.
        case limitExceeded
    }

    package var kind: Kind
    package var offset: Int?
    package var reason: String

    package init(_ kind: Kind, at offset: Int?, _ reason: String) {
        self.kind = kind
        self.offset = offset
        self.reason = reason
    }

    package init(_ snappy: SnappyError) {
        self.init(.compression(snappy.kind), at: snappy.offset, snappy.reason)
    }

    package var description: String {
        switch (kind, offset) {
        case (.compression, let offset?): "remote write: snappy body byte \(offset): \(reason)"
        case (_, let offset?): "remote write: protobuf byte \(offset): \(reason)"
        case (_, nil): "remote write: \(reason)"
        }
    }
}
