/// A string compared and hashed by its UTF-8 bytes.
///
/// Swift's `String` equality is Unicode canonical equivalence: `"e\u{301}" == "\u{e9}"`. Series keys
/// and device ids are identifiers a producer chose byte for byte, and SQL `UNIQUE` constraints, the
/// wire format and the query API all treat them as bytes; a `String`-keyed dictionary or set would
/// merge two distinct series into one. Every table of keys uses this type instead. Its order is
/// byte order, the same in every process (what lock ordering needs).
package struct ExactString: Hashable, Comparable, Sendable, CustomStringConvertible {
    package var value: String

    @inline(__always)
    package init(_ value: String) { self.value = value }

    package static func == (lhs: ExactString, rhs: ExactString) -> Bool {
        lhs.value.utf8.elementsEqual(rhs.value.utf8)
    }

    package static func < (lhs: ExactString, rhs: ExactString) -> Bool {
        lhs.value.utf8.lexicographicallyPrecedes(rhs.value.utf8)
    }

    package func hash(into hasher: inout Hasher) {
        var value = value
        value.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    package var description: String { value }
}
