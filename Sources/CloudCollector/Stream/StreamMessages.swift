import EdgeSyncCodec
import EdgeSyncProtocol
import Foundation

/// One message for the downstream stream, as the outbox keeps it until JetStream acknowledges it.
package struct StreamMessage: Sendable, Equatable {
    /// `<prefix>.<device>.<measurement>`, each part escaped (`StreamMessages.subjectToken`).
    package var subject: String
    /// `Nats-Msg-Id`: the same for every publish attempt of this message, so JetStream's duplicate
    /// window drops a retry.
    package var messageID: String
    /// Line protocol, one line per reading, in sequence order.
    package var payload: [UInt8]
    package var readings: Int

    package init(subject: String, messageID: String, payload: [UInt8], readings: Int) {
        self.subject = subject
        self.messageID = messageID
        self.payload = payload
        self.readings = readings
    }
}

/// Turns newly stored readings into stream messages: one per (batch range, measurement), split
/// so no payload exceeds `maximumPayloadBytes` (JetStream's default limit is 1 MiB).
///
/// Pure: no I/O. The message id is derived from what the message holds, (device, stream, sequence
/// range, measurement, part), never from when it was made, so the same readings always give the
/// same id.
package struct StreamMessages: Sendable {
    package var subjectPrefix: String
    package var maximumPayloadBytes: Int

    package init(subjectPrefix: String = "edgesync", maximumPayloadBytes: Int = 512 * 1024) {
        self.subjectPrefix = subjectPrefix
        self.maximumPayloadBytes = maximumPayloadBytes
    }

    /// The messages for the readings of `batch` whose sequence numbers lie in `range`.
    package func messages(for batch: Batch, range: SequenceRange) -> [StreamMessage] {
        let start = Int(range.first - batch.firstSequence)
        let end = start + Int(range.count)
        guard start >= 0, end <= batch.readings.count, start < end else { return [] }
        // Measurement of each series key, and each key's line prefix (the key with its field
        // followed by '='), computed once per batch.
        var measurementOfSeries: [Int] = []
        var measurements: [String] = []
        var measurementIndex: [String: Int] = [:]
        var linePrefix: [[UInt8]] = []
        for key in batch.seriesKeys {
            let (measurement, prefix) = Self.split(key)
            if let known = measurementIndex[measurement] {
                measurementOfSeries.append(known)
            } else {
                measurementIndex[measurement] = measurements.count
                measurementOfSeries.append(measurements.count)
                measurements.append(measurement)
            }
            linePrefix.append(prefix)
        }
        var payloads = [[UInt8]](repeating: [], count: measurements.count)
        var counts = [Int](repeating: 0, count: measurements.count)
        var parts = [Int](repeating: 0, count: measurements.count)
        var messages: [StreamMessage] = []
        let device = Self.subjectToken(batch.device)
        let base = "\(batch.device)/\(batch.stream)/\(range.first)-\(range.last)/"

        func flush(_ m: Int) {
            guard counts[m] > 0 else { return }
            // Parts after the first of a measurement are numbered; the first keeps the plain id.
            let id = base + measurements[m] + (parts[m] > 0 ? "#\(parts[m])" : "")
            messages.append(
                StreamMessage(
                    subject: "\(subjectPrefix).\(device).\(Self.subjectToken(measurements[m]))",
                    messageID: id, payload: payloads[m], readings: counts[m]))
            payloads[m] = []
            counts[m] = 0
            parts[m] += 1
        }

        for position in start..<end {
            let reading = batch.readings[position]
            let m = measurementOfSeries[reading.series]
            var line = linePrefix[reading.series]
            Self.appendValue(reading.value, to: &line)
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: String(reading.timestamp).utf8)
            line.append(10)
            if !payloads[m].isEmpty, payloads[m].count + line.count > maximumPayloadBytes { flush(m) }
            payloads[m].append(contentsOf: line)
            counts[m] += 1
        }
        for m in measurements.indices { flush(m) }
        return messages
    }

    /// The measurement of an InfluxDB-style key `measurement[,tag=value…] field` (up to the first
    /// unescaped comma or space), and the line prefix `measurement[,tag=value…] field=`. A key
    /// without a field (no unescaped space) gets the field `value`. Keys are opaque to the
    /// collector: one that is not line protocol (the agent's inputs only make line-protocol keys)
    /// passes through as it is.
    package static func split(_ key: String) -> (measurement: String, prefix: [UInt8]) {
        let bytes = Array(key.utf8)
        var index = 0
        var measurementEnd: Int?
        var space: Int?
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\") {
                index += 2
                continue
            }
            if byte == UInt8(ascii: ","), measurementEnd == nil { measurementEnd = index }
            if byte == UInt8(ascii: " ") {
                space = index
                break
            }
            index += 1
        }
        let end = min(measurementEnd ?? bytes.count, space ?? bytes.count)
        let measurement = String(decoding: bytes[..<end], as: UTF8.self)
        return (measurement, space == nil ? bytes + Array(" value=".utf8) : bytes + [UInt8(ascii: "=")])
    }

    /// The shortest decimal that reads back as the same Float64; `NaN`, `+Inf`, `-Inf` for the
    /// values line protocol has no literal for (Python's `float()` reads all three).
    package static func appendValue(_ value: Double, to line: inout [UInt8]) {
        if value.isNaN {
            line.append(contentsOf: "NaN".utf8)
        } else if value.isInfinite {
            line.append(contentsOf: (value > 0 ? "+Inf" : "-Inf").utf8)
        } else {
            line.append(contentsOf: value.description.utf8)
        }
    }

    /// `text` as one subject token: bytes a subject cannot hold in a token (`.`, `*`, `>`, spaces
    /// and control characters) and `~` itself become `~XX` (uppercase hex), so distinct names stay
    /// distinct subjects; an empty name is `~`.
    package static func subjectToken(_ text: String) -> String {
        guard !text.isEmpty else { return "~" }
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "."), UInt8(ascii: "*"), UInt8(ascii: ">"), UInt8(ascii: "~"), 0...32, 127:
                out += [UInt8(ascii: "~"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default:
                // Other bytes, including those of multi-byte UTF-8 characters, pass as they are.
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
