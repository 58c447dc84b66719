/// Why an OTLP metrics request was refused: what is wrong and where.
///
/// `offset` is a byte offset into the (inflated) protobuf message, or nil (JSON, whole-request
/// checks). The HTTP layer answers `.limitExceeded` with 413 and the other kinds with 400, which
/// OTLP exporters do not retry.
package struct OTLPError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        /// Not a well-formed protobuf message of the OTLP metrics schema, or not OTLP JSON.
        case malformed
        /// Well formed, but breaks a rule of OTLP (UTF-8, timestamps, bucket counts).
        case invalidRequest
        /// An `OTLPLimits` bound, or the spool's series key length, is exceeded.
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

    package var description: String {
        if let offset { return "OTLP: protobuf byte \(offset): \(reason)" }
        return "OTLP: \(reason)"
    }
}
