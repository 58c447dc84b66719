import EdgeSyncCodec
import EdgeSyncProtocol
import Foundation

/// The body collectd's `write_http` plugin posts with `Format "JSON"`: an array of value lists.
///
/// ```json
/// [{"values":[0.25,0.3,0.31],"dstypes":["gauge","gauge","gauge"],"dsnames":["shortterm","midterm","longterm"],
///   "time":1700000000.123,"interval":10.000,"host":"gw-17","plugin":"load","plugin_instance":"",
///   "type":"load","type_instance":""}]
/// ```
///
/// Each value becomes one reading, with InfluxDB's collectd mapping: measurement `PLUGIN_DSNAME`
/// (`load_shortterm`, `cpu_value`), tags `host`, `instance` (the plugin instance), `type` and
/// `type_instance` (empty ones left out), field `value`. `time` is seconds since the epoch as
/// collectd writes it (three decimals): stored at millisecond precision. Values are stored as sent
/// (counters and derives raw, not as rates); `null` values (collectd's NaN) are skipped and counted.
package enum CollectdJSON {
    /// Decodes `body`, appending to `block`; returns the number of null values skipped.
    package static func decode(_ body: [UInt8], into block: inout ReadingBlock) throws(InputFailure) -> Int {
        let lists: [ValueList]
        do {
            lists = try JSONDecoder().decode([ValueList].self, from: Data(body))
        } catch let error as DecodingError {
            throw InputFailure(.badRequest, "invalid_json", JSONReadings.describe(error))
        } catch {
            throw InputFailure(.badRequest, "invalid_json", "the body is not valid JSON: \(error)")
        }
        var skipped = 0
        for (index, list) in lists.enumerated() {
            guard list.values.count == list.dsnames.count else {
                throw InputFailure(
                    .badRequest, "invalid_collectd",
                    "[\(index)]: \(list.values.count) values for \(list.dsnames.count) dsnames")
            }
            guard list.time.isFinite, list.time >= 0, list.time < 9_223_372_036 else {
                throw InputFailure(.badRequest, "invalid_collectd", "[\(index)].time: \(list.time) is not a time")
            }
            // collectd writes three decimals; going through milliseconds keeps them exact.
            let timestamp = Int64((list.time * 1000).rounded()) * 1_000_000
            var tags: [(String, String)] = [("host", list.host), ("type", list.type)]
            if let instance = list.plugin_instance, !instance.isEmpty { tags.append(("instance", instance)) }
            if let instance = list.type_instance, !instance.isEmpty { tags.append(("type_instance", instance)) }
            for (position, value) in list.values.enumerated() {
                guard let value, value.isFinite else {
                    skipped += 1
                    continue
                }
                let key = LineProtocolSeriesKey.make(
                    measurement: list.plugin + "_" + list.dsnames[position], tags: tags.filter { !$0.1.isEmpty },
                    field: "value")
                let limit = DecodingLimits.default.maximumSeriesKeyBytes
                guard !list.plugin.isEmpty, !list.dsnames[position].isEmpty, key.utf8.count <= limit else {
                    throw InputFailure(
                        .badRequest, "invalid_collectd",
                        "[\(index)]: plugin and dsname must not be empty and the series key at most \(limit) bytes")
                }
                block.append(IncomingReading(seriesKey: key, timestamp: timestamp, value: value))
            }
        }
        return skipped
    }

    /// One value list, as collectd's `format_json` writes it.
    private struct ValueList: Decodable {
        var values: [Double?]
        var dsnames: [String]
        var time: Double
        var host: String
        var plugin: String
        // The JSON keys collectd writes.
        // swift-format-ignore: AlwaysUseLowerCamelCase
        var plugin_instance: String?
        var type: String
        // swift-format-ignore: AlwaysUseLowerCamelCase
        var type_instance: String?
    }
}
