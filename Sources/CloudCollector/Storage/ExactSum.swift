/// The exact sum of any number of doubles, as a fixed-point integer in units of 2^-1074 (the
/// smallest subnormal), rounded to the nearest double only when read.
///
/// Block summaries carry one per block so an aggregate can add whole blocks and single readings in
/// any order and still get one answer: the correctly rounded sum, whatever the blocks and merges
/// were (decision 0027). Digits are 32 bits wide but held in `Int64`, so additions carry lazily;
/// only the digits a sum has touched are kept (a few for sensor values).
package struct ExactSum: Sendable {
    /// Digits 0 ... 66 cover every finite double's bits (2^-1074 ... 2^1024) plus carries.
    static let digitCount = 67
    private static let digitMask: Int64 = 0xFFFF_FFFF
    /// Additions between carry passes: each adds less than 2^32 to a digit.
    private static let additionsBeforeCarry = 1 << 30

    /// Index (0 ... 66) of `digits[0]`; digit `i` weighs 2^(32 (lowest + i) - 1074).
    private var lowest = 0
    private var digits: [Int64] = []
    private var pendingAdditions = 0
    private(set) var hasPositiveInfinity = false
    private(set) var hasNegativeInfinity = false

    package init() {}

    /// Adds a value; NaN is left out (the caller counts it), infinities are remembered by sign.
    package mutating func add(_ value: Double) {
        guard value.isFinite else {
            if value == .infinity { hasPositiveInfinity = true } else if value == -.infinity { hasNegativeInfinity = true }
            return
        }
        if value == 0 { return }
        let bits = value.bitPattern
        let biased = Int((bits >> 52) & 0x7FF)
        var mantissa = bits & ((1 << 52) - 1)
        // value = mantissa * 2^(position - 1074)
        let position: Int
        if biased == 0 {
            position = 0
        } else {
            mantissa |= 1 << 52
            position = biased - 1
        }
        let digit = position >> 5
        let shift = UInt64(position & 31)
        // mantissa << shift, below 2^84, in three 32-bit digits (Swift's >> by 64 gives 0).
        let parts: (UInt64, UInt64, UInt64) = (
            (mantissa << shift) & 0xFFFF_FFFF, (mantissa >> (32 - shift)) & 0xFFFF_FFFF, mantissa >> (64 - shift)
        )
        reserve(digit, digit + 2)
        let base = digit - lowest
        if value < 0 {
            digits[base] -= Int64(parts.0)
            digits[base + 1] -= Int64(parts.1)
            digits[base + 2] -= Int64(parts.2)
        } else {
            digits[base] += Int64(parts.0)
            digits[base + 1] += Int64(parts.1)
            digits[base + 2] += Int64(parts.2)
        }
        pendingAdditions += 1
        if pendingAdditions >= Self.additionsBeforeCarry { carry() }
    }

    /// Adds another sum.
    package mutating func add(_ other: ExactSum) {
        hasPositiveInfinity = hasPositiveInfinity || other.hasPositiveInfinity
        hasNegativeInfinity = hasNegativeInfinity || other.hasNegativeInfinity
        var other = other
        other.carry()
        carry()
        guard !other.digits.isEmpty else { return }
        reserve(other.lowest, other.lowest + other.digits.count - 1)
        for (index, digit) in other.digits.enumerated() { digits[other.lowest - lowest + index] += digit }
        pendingAdditions = 2
    }

    /// Makes room for digits `first ... last` (within 0 ..< digitCount).
    private mutating func reserve(_ first: Int, _ last: Int) {
        if digits.isEmpty {
            lowest = first
            digits = [Int64](repeating: 0, count: last - first + 1)
            return
        }
        if first < lowest {
            digits.insert(contentsOf: repeatElement(0, count: lowest - first), at: 0)
            lowest = first
        }
        let end = lowest + digits.count - 1
        if last > end { digits.append(contentsOf: repeatElement(0, count: last - end)) }
    }

    /// Carries so every digit but the top one is in 0 ..< 2^32 and the top one is small and signed.
    private mutating func carry() {
        guard pendingAdditions > 0 else { return }
        pendingAdditions = 0
        var index = 0
        while index < digits.count - 1 {
            let carried = digits[index] >> 32  // floor division by 2^32
            digits[index] &= Self.digitMask
            digits[index + 1] += carried
            index += 1
        }
        // The top digit may still be 2^32 or more in magnitude: extend, at most to digit 66 + 1.
        while let top = digits.last, top >= 1 << 31 || top < -(1 << 31), lowest + digits.count < Self.digitCount + 1 {
            digits[digits.count - 1] = top & Self.digitMask
            digits.append(top >> 32)
        }
    }

    /// The sum rounded to the nearest double (ties to even): NaN when both infinities were added,
    /// an infinity when one was or when the finite sum is too large, +0 for an empty sum.
    package var value: Double {
        if hasPositiveInfinity && hasNegativeInfinity { return .nan }
        if hasPositiveInfinity { return .infinity }
        if hasNegativeInfinity { return -.infinity }
        var copy = self
        copy.carry()
        copy.pendingAdditions = 1
        copy.carry()
        var magnitude = copy.digits
        guard let top = magnitude.lastIndex(where: { $0 != 0 }) else { return 0 }
        let negative = magnitude[top] < 0
        if negative {
            // Negate, then carry again: lower digits back into 0 ..< 2^32, the top one positive.
            for index in magnitude.indices { magnitude[index] = -magnitude[index] }
            var index = 0
            while index < magnitude.count - 1 {
                let carried = magnitude[index] >> 32
                magnitude[index] &= Self.digitMask
                magnitude[index + 1] += carried
                index += 1
            }
        }
        guard let high = magnitude.lastIndex(where: { $0 != 0 }) else { return 0 }
        func digit(_ index: Int) -> UInt64 { index >= 0 ? UInt64(magnitude[index]) : 0 }
        // The top digit may exceed 32 bits after the final carry only below 2^63; split it.
        var d2 = digit(high)
        var d1 = digit(high - 1)
        var d0 = digit(high - 2)
        var base = lowest + high - 2
        var sticky = (0..<max(0, high - 2)).contains { magnitude[$0] != 0 }
        while d2 >> 32 != 0 {
            sticky = sticky || d0 != 0
            d0 = d1
            d1 = d2 & 0xFFFF_FFFF
            d2 >>= 32
            base += 1
        }
        let leading = UInt64(d2.leadingZeroBitCount - 32)  // 0 ... 31
        let window = (d2 << (32 + leading)) | (d1 << leading) | (d0 >> (32 - leading))
        let dropped = leading == 0 ? d0 : d0 & ((1 << (32 - leading)) - 1)
        sticky = sticky || dropped != 0
        // At least 11 bits below the 53 kept: the sticky bit in bit 0 makes rounding exact.
        let significand = Double(sticky ? window | 1 : window)
        let exponent = 32 * base + 32 - Int(leading) - 1074
        return Double(sign: negative ? .minus : .plus, exponent: exponent, significand: significand)
    }

    // MARK: Stored form

    /// Flags byte (1: +inf added, 2: -inf added), then the index of the lowest stored digit, the
    /// digit count and the digits, as zigzag varints, after carrying (zero digits at either end left out).
    var encoded: [UInt8] {
        var copy = self
        copy.pendingAdditions = 1
        copy.carry()
        var bytes: [UInt8] = [(hasPositiveInfinity ? 1 : 0) | (hasNegativeInfinity ? 2 : 0)]
        let first = copy.digits.firstIndex { $0 != 0 }
        let last = copy.digits.lastIndex { $0 != 0 }
        guard let first, let last else {
            Self.appendVarint(0, to: &bytes)
            Self.appendVarint(0, to: &bytes)
            return bytes
        }
        Self.appendVarint(UInt64(copy.lowest + first), to: &bytes)
        Self.appendVarint(UInt64(last - first + 1), to: &bytes)
        for digit in copy.digits[first...last] {
            Self.appendVarint(UInt64(bitPattern: (digit << 1) ^ (digit >> 63)), to: &bytes)
        }
        return bytes
    }

    /// Reads `encoded`'s bytes, refusing anything it could not have written.
    init(encoded bytes: [UInt8]) throws(CollectorStorageError) {
        var position = 0
        func varint() throws(CollectorStorageError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard position < bytes.count, shift < 64 else {
                    throw CollectorStorageError("block summary sum is truncated or malformed")
                }
                let byte = bytes[position]
                position += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }
        guard let flags = bytes.first, flags & ~3 == 0 else {
            throw CollectorStorageError("block summary sum has unknown flags")
        }
        position = 1
        hasPositiveInfinity = flags & 1 != 0
        hasNegativeInfinity = flags & 2 != 0
        let first = try varint()
        let count = try varint()
        guard first < UInt64(Self.digitCount + 1), count <= UInt64(Self.digitCount + 1) - first else {
            throw CollectorStorageError("block summary sum has digits outside the range of doubles")
        }
        var digits: [Int64] = []
        for _ in 0..<count {
            let raw = try varint()
            let digit = Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
            guard digit >= -(1 << 32), digit < 1 << 32 else {
                throw CollectorStorageError("block summary sum has a digit out of range")
            }
            digits.append(digit)
        }
        guard position == bytes.count else { throw CollectorStorageError("block summary sum has trailing bytes") }
        lowest = Int(first)
        self.digits = digits
        pendingAdditions = digits.isEmpty ? 0 : 1
    }

    private static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }
}
