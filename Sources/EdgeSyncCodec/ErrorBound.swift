/// The codec's lossy mode for one value at a time: the quantization `EncodingOptions.errorBounds`
/// applies inside the encoder, exposed so that a producer (the edge agent's `error_bound` rule) can
/// apply it before the values are stored. A quantized value is a short decimal, which the lossless
/// decimal scheme then stores in few bits, so the saving is the same and every later encode of it
/// (spool chunk, wire frame, collector block) stays exact.
public enum ErrorBound {
    /// The decimal exponent the lossy encoder uses for `bound`: the coarsest step `10^-exponent`
    /// whose half is within `bound`.
    public static func exponent(for bound: Double) -> Int { ValueColumn.lossyExponent(for: bound) }

    /// `value` rounded to the decimal step of `exponent` when that stays within `bound` of it;
    /// otherwise (non-finite values, magnitudes past 2^62 steps, a rounding that would exceed the
    /// bound) `value` itself. The result never differs from `value` by more than `bound`.
    @inline(__always)
    public static func quantize(_ value: Double, exponent: Int, bound: Double) -> Double {
        guard let mantissa = ValueColumn.scaled(value, exponent: exponent) else { return value }
        let quantized = ValueColumn.decimalValue(mantissa, exponent: exponent)
        return (quantized - value).magnitude <= bound ? quantized : value
    }
}
