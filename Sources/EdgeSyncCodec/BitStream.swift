/// Appends variable-width bit fields, least significant bit first (the same bit order as
/// ``BitPacking``).
struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var accumulator: UInt64 = 0
    private var filled = 0

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    /// Writes the low `width` bits of `value` (0...64).
    @inline(__always) mutating func write(_ value: UInt64, width: Int) {
        guard width > 0 else { return }
        let bits = value & BitPacking.mask(width)
        accumulator |= bits << UInt64(filled)
        filled += width
        if filled >= 64 {
            withUnsafeBytes(of: accumulator.littleEndian) { bytes.append(contentsOf: $0) }
            filled -= 64
            accumulator = filled == 0 ? 0 : bits >> UInt64(width - filled)
        }
    }

    /// Flushes the partial last byte and returns everything written.
    mutating func finish() -> [UInt8] {
        var tail = accumulator
        var left = (filled + 7) >> 3
        while left > 0 {
            bytes.append(UInt8(truncatingIfNeeded: tail))
            tail >>= 8
            left -= 1
        }
        accumulator = 0
        filled = 0
        return bytes
    }
}

/// Reads variable-width bit fields from an untrusted byte range, failing instead of reading past it.
struct BitReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var bit = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var bitsLeft: Int { bytes.count * 8 - bit }

    /// Reads `width` bits (0...64), or returns nil when fewer are left.
    @inline(__always) mutating func read(_ width: Int) -> UInt64? {
        guard width <= bitsLeft else { return nil }
        var value: UInt64 = 0
        var gathered = 0
        while gathered < width {
            let byte = UInt64(bytes[bit >> 3])
            let shift = bit & 7
            let take = min(8 - shift, width - gathered)
            value |= ((byte >> UInt64(shift)) & BitPacking.mask(take)) << UInt64(gathered)
            gathered += take
            bit += take
        }
        return value
    }
}
