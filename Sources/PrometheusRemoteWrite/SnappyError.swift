/// Why a Snappy block could not be decompressed, and at which byte of the compressed input.
package struct SnappyError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        /// The input ends inside the preamble, a tag or a literal.
        case truncated
        /// The length preamble is not a valid 32-bit varint.
        case invalidPreamble
        /// The preamble declares more bytes than the caller allows; nothing was allocated.
        case tooLarge
        /// A copy's offset is 0 or reaches before the start of the output.
        case invalidOffset
        /// The elements produce more or fewer bytes than the preamble declares.
        case lengthMismatch
        /// Bytes follow the element that completed the declared length.
        case trailingBytes
    }

    package var kind: Kind
    /// Offset in the compressed input of the element (or preamble byte) that is wrong.
    package var offset: Int
    package var reason: String

    package init(_ kind: Kind, at offset: Int, _ reason: String) {
        self.kind = kind
        self.offset = offset
        self.reason = reason
    }

    package var description: String { "snappy: byte \(offset): \(reason)" }
}
