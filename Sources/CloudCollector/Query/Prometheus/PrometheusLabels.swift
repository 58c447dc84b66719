import EdgeSyncProtocol

/// How a stored series appears to Prometheus: its labels, derived from the device, the series key
/// and the stream, the way the remote write input maps Prometheus series in.
///
/// - `__name__` is the measurement when the field is `value` (what remote write stores), else
///   `measurement_field` (InfluxDB's Prometheus mapping), so `name{l="v"}` written by remote write
///   reads back as exactly `name{l="v"}`.
/// - Every tag is a label.
/// - `device` is the collector's device name and `stream` the stream's id in decimal. A tag that is
///   named like one of these (or `__name__`, or starts with `__`) is renamed `exported_<name>`, as
///   Prometheus renames scraped labels that clash with target labels.
/// - Characters Prometheus does not allow in metric and label names become `_` (`temp-c` →
///   `temp_c`), and a leading digit gets a `_` in front. Should two tags of one series end up with
///   the same label name, the first by tag name wins and the others are left out.
/// - A key that is not line protocol shaped becomes `__name__` as a whole, sanitized the same way.
package enum PrometheusLabels {
    package static let deviceLabel = "device"
    package static let streamLabel = "stream"
    package static let nameLabel = "__name__"

    /// The labels of `key` of `device` without `stream`, sorted by name.
    package static func labels(device: String, key: String) -> [(name: String, value: String)] {
        var labels: [(name: String, value: String)] = []
        var seen: Set<String> = [deviceLabel, streamLabel, nameLabel]
        if let parts = LineProtocolSeriesKey.parse(key) {
            let name = parts.field == "value" ? parts.measurement : parts.measurement + "_" + parts.field
            labels.append((nameLabel, metricName(name)))
            for (tag, value) in parts.tags {
                var label = labelName(tag)
                if label.hasPrefix("__") || label == deviceLabel || label == streamLabel {
                    label = "exported_" + label
                }
                guard seen.insert(label).inserted else { continue }
                labels.append((label, value))
            }
        } else {
            labels.append((nameLabel, metricName(key)))
        }
        labels.append((deviceLabel, device))
        labels.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        return labels
    }

    /// `labels` with `stream` added in its sorted place.
    package static func adding(stream: UInt64, to labels: [(name: String, value: String)])
        -> [(name: String, value: String)]
    {
        var result = labels
        let index = result.firstIndex { !$0.name.utf8.lexicographicallyPrecedes(streamLabel.utf8) } ?? result.count
        result.insert((streamLabel, String(stream)), at: index)
        return result
    }

    /// The value of `name` in `labels`; `""` when absent, which is Prometheus' meaning of absent.
    static func value(of name: String, in labels: [(name: String, value: String)]) -> String {
        labels.first { $0.name.utf8.elementsEqual(name.utf8) }?.value ?? ""
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, other bytes replaced by `_`.
    static func metricName(_ text: String) -> String { sanitize(text, colon: true) }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, other bytes replaced by `_`.
    static func labelName(_ text: String) -> String { sanitize(text, colon: false) }

    private static func sanitize(_ text: String, colon: Bool) -> String {
        let utf8 = text.utf8
        func allowed(_ byte: UInt8) -> Bool {
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x5F || (colon && byte == 0x3A)
        }
        let startsWithDigit = utf8.first.map { $0 >= 0x30 && $0 <= 0x39 } ?? true
        if !startsWithDigit, utf8.allSatisfy(allowed) { return text }
        var out: [UInt8] = startsWithDigit ? [0x5F] : []
        // Per scalar, not per byte: é becomes one `_`, not two.
        for scalar in text.unicodeScalars {
            if scalar.isASCII, allowed(UInt8(scalar.value)) {
                out.append(UInt8(scalar.value))
            } else {
                out.append(0x5F)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A prefix every stored key whose `__name__` is `name` starts with, for the storage's prefix
    /// pushdown: the part of `name` before its first `_` (the measurement is `name` or a prefix of
    /// it ending before a `_`; sanitizing only ever writes `_`, and the escaped characters all
    /// sanitize to `_`). Empty when there is nothing safe to push down.
    static func keyPrefix(forName name: String) -> String {
        guard let first = name.utf8.first, first != 0x5F else { return "" }
        return String(name.prefix { $0 != "_" })
    }
}
