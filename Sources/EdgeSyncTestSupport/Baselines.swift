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
    public static func zlibSize(_ input: [UInt8]) -> Int {
        var length = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let status = compress2(&output, &length, input, uLong(input.count), 6)
        precondition(status == Z_OK, "zlib compress2 failed with \(status)")
        return Int(length)
    }
}
