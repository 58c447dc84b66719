import CZlib
import EdgeSyncCodec

/// The formats the codec is measured against, shared by the benchmark (which reports the ratio)
/// and the tests (which hold the codec to issue 2's "5× smaller than zlib'd line protocol").
public enum Baselines {
    /// InfluxDB line protocol as Telegraf-style clients send it: one line per measurement and
    /// timestamp, the row's fields together.
    public static func lineProtocol(_ batch: Batch) -> [UInt8] {
        var text = ""
        var index = 0
        let readings = batch.readings
        while index < readings.count {
            let key = batch.seriesKeys[readings[index].series]
            // Keys already in `measurement,tags field` form are one line per reading, as written.
            if key.contains(" ") {
                text += "\(key)=\(readings[index].value) \(readings[index].timestamp)\n"
                index += 1
                continue
            }
            let measurement = key.split(separator: ".").first.map(String.init) ?? key
            var fields: [String] = []
            let timestamp = readings[index].timestamp
            while index < readings.count, readings[index].timestamp == timestamp {
                let fieldKey = batch.seriesKeys[readings[index].series]
                let field = fieldKey.split(separator: ".", maxSplits: 1).last.map(String.init) ?? fieldKey
                if fields.contains(where: { $0.hasPrefix(field + "=") }) { break }
                fields.append("\(field)=\(readings[index].value)")
                index += 1
            }
            text += "\(measurement),device=\(batch.device) \(fields.joined(separator: ",")) \(timestamp)\n"
        }
        return Array(text.utf8)
    }

    /// Bytes of `input` compressed by zlib at level 6 (its default), as a client would send it.
    public static func zlibSize(_ input: [UInt8], level: Int32 = 6) -> Int {
        var length = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let status = compress2(&output, &length, input, uLong(input.count), level)
        precondition(status == Z_OK, "zlib compress2 failed with \(status)")
        return Int(length)
    }

    /// The naive columnar baseline of issue 18: per series, timestamps as zigzag varints of their
    /// second differences, values scaled to integers by their decimal digits (the most any value of
    /// the series has, from its shortest decimal form) and stored as zigzag varints of their first
    /// differences, the series keys in full, everything deflated at zlib level 9. A series with a
    /// value that does not scale exactly (NaN, infinities, -0) stores raw bits instead.
    public static func naiveColumnarSize(_ batch: Batch) -> Int {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(batch.readings.count * 4)
        func varint(_ value: UInt64) {
            var rest = value
            while rest >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
                rest >>= 7
            }
            bytes.append(UInt8(rest))
        }
        func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value &<< 1) ^ (value >> 63)) }
        var perSeries = [[Reading]](repeating: [], count: batch.seriesKeys.count)
        for reading in batch.readings { perSeries[reading.series].append(reading) }
        for (series, readings) in perSeries.enumerated() {
            bytes.append(contentsOf: batch.seriesKeys[series].utf8)
            bytes.append(0x0A)
            varint(UInt64(readings.count))
            var previous: Int64 = 0
            var previousDelta: Int64 = 0
            for reading in readings {
                let delta = reading.timestamp &- previous
                varint(zigzag(delta &- previousDelta))
                previous = reading.timestamp
                previousDelta = delta
            }
            let each = readings.map { decimalDigits($0.value) }
            let digits: Int? = each.contains(nil) ? nil : each.compactMap { $0 }.max() ?? 0
            var scale = 1.0
            for _ in 0..<min(digits ?? 0, 18) { scale *= 10 }
            let exact = digits != nil && readings.allSatisfy { reading in
                let scaled = (reading.value * scale).rounded()
                return scaled.magnitude < 9e18 && (Double(Int64(scaled)) / scale).bitPattern == reading.value.bitPattern
            }
            bytes.append(exact ? UInt8(min(digits ?? 0, 18)) : 0xFF)
            var last: Int64 = 0
            for reading in readings {
                if exact {
                    let mantissa = Int64((reading.value * scale).rounded())
                    varint(zigzag(mantissa &- last))
                    last = mantissa
                } else {
                    withUnsafeBytes(of: reading.value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
                }
            }
        }
        return zlibSize(bytes, level: 9)
    }

    /// Digits after the decimal point in the shortest form of `value` (`8.6429e-05` has 9), nil for
    /// non-finite values and -0.
    static func decimalDigits(_ value: Double) -> Int? {
        guard value.isFinite, !(value == 0 && value.sign == .minus) else { return nil }
        let text = "\(value)"
        let parts = text.split(separator: "e")
        var fraction = 0
        if let dot = parts[0].firstIndex(of: ".") {
            let digits = parts[0][parts[0].index(after: dot)...]
            fraction = digits == "0" ? 0 : digits.count
        }
        let exponent = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        return max(0, fraction - exponent)
    }
}
