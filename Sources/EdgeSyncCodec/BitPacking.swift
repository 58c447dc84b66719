/// Fixed-width bit packing: `count` values of `width` bits, least significant bit first.
///
/// Value `j` occupies bits `j * width ..< (j + 1) * width` of the packed bit string, and bit `i` of
/// that string is bit `i % 8` of byte `i / 8`. The last byte is padded with zero bits.
enum BitPacking {
    @inline(__always) static func byteCount(count: Int, width: Int) -> Int {
        (count * width + 7) >> 3
    }

    @inline(__always) static func mask(_ width: Int) -> UInt64 {
        width >= 64 ? ~0 : (1 << UInt64(width)) &- 1
    }

    /// The number of bits needed to hold `value` as an unsigned number (0 for 0).
    @inline(__always) static func width(of value: UInt64) -> Int {
        64 - value.leadingZeroBitCount
    }

    static func pack(_ values: UnsafeBufferPointer<UInt64>, width: Int, into writer: inout ByteWriter) {
        guard width > 0, !values.isEmpty else { return }
        let mask = mask(width)
        var accumulator: UInt64 = 0
        var filled = 0
        let start = writer.count
        writer.bytes.reserveCapacity(start + byteCount(count: values.count, width: width) + 8)
        for raw in values {
            let value = raw & mask
            accumulator |= value << UInt64(filled)
            filled += width
            if filled >= 64 {
                writer.appendUInt64(accumulator)
                filled -= 64
                // The bits of `value` that did not fit; a shift by 64 or more yields 0 here.
                accumulator = filled == 0 ? 0 : value >> UInt64(width - filled)
            }
        }
        var tail = accumulator
        var left = (filled + 7) >> 3
        while left > 0 {
            writer.append(UInt8(truncatingIfNeeded: tail))
            tail >>= 8
            left -= 1
        }
    }

    /// Unpacks `output.count` values of `width` bits from `packed`, which must hold at least
    /// `byteCount(count: output.count, width: width)` bytes (checked by the caller).
    static func unpack(_ packed: UnsafeRawBufferPointer, width: Int, into output: UnsafeMutableBufferPointer<UInt64>) {
        let count = output.count
        guard width > 0 else {
            output.update(repeating: 0)
            return
        }
        let mask = mask(width)
        let available = packed.count
        var bit = 0
        // Fast path: whole 8-byte loads while a value and its spill byte are inside the buffer.
        var index = 0
        while index < count {
            let byte = bit >> 3
            let shift = bit & 7
            guard byte + 9 <= available else { break }
            var word = UInt64(littleEndian: packed.loadUnaligned(fromByteOffset: byte, as: UInt64.self)) >> UInt64(shift)
            if shift + width > 64 {
                word |= UInt64(packed[byte + 8]) << UInt64(64 - shift)
            }
            output[index] = word & mask
            bit += width
            index += 1
        }
        while index < count {
            output[index] = slowRead(packed, bit: bit, width: width)
            bit += width
            index += 1
        }
    }

    /// Reads one value byte by byte, never touching bytes past the end of `packed`.
    @inline(never)
    private static func slowRead(_ packed: UnsafeRawBufferPointer, bit: Int, width: Int) -> UInt64 {
        var value: UInt64 = 0
        var gathered = 0
        var position = bit
        while gathered < width {
            let byte = UInt64(packed[position >> 3])
            let shift = position & 7
            let take = min(8 - shift, width - gathered)
            value |= ((byte >> UInt64(shift)) & mask(take)) << UInt64(gathered)
            gathered += take
            position += take
        }
        return value
    }
}
