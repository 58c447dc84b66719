import Foundation
import HTTPCore
import Synchronization

/// Writes the Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, then samples.
///
/// Components render their own numbers into one of these when `/metrics` is scraped, so nothing is
/// registered globally and a metric is always computed from the component's real state.
package struct Exposition {
    package private(set) var text = ""

    package init() {}

    package static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// A metric family with its samples; `type` is `counter`, `gauge` or `histogram`.
    package mutating func family(
        _ name: String, _ type: String, _ help: String, _ samples: [(labels: [(String, String)], value: Double)]
    ) {
        text += "# HELP \(name) \(help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n"))\n"
        text += "# TYPE \(name) \(type)\n"
        for sample in samples { line(name, sample.labels, sample.value) }
    }

    package mutating func counter(_ name: String, _ help: String, _ value: Double, labels: [(String, String)] = []) {
        family(name, "counter", help, [(labels, value)])
    }

    package mutating func gauge(_ name: String, _ help: String, _ value: Double, labels: [(String, String)] = []) {
        family(name, "gauge", help, [(labels, value)])
    }

    package mutating func histogram(_ name: String, _ help: String, _ histograms: [(labels: [(String, String)], Histogram.Snapshot)]) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (labels, snapshot) in histograms {
            var cumulative = 0
            for (bound, count) in zip(snapshot.bounds, snapshot.counts) {
                cumulative += count
                line(name + "_bucket", labels + [("le", Self.number(bound))], Double(cumulative))
            }
            line(name + "_bucket", labels + [("le", "+Inf")], Double(snapshot.count))
            line(name + "_sum", labels, snapshot.sum)
            line(name + "_count", labels, Double(snapshot.count))
        }
    }

    private mutating func line(_ name: String, _ labels: [(String, String)], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Self.number(value) + "\n"
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    /// The exposition as an HTTP response.
    package var response: HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", Self.contentType)
        return HTTPResponse(status: .ok, headers: headers, bytes: Array(text.utf8))
    }
}

/// A histogram with fixed upper bounds, safe to observe from any thread.
package final class Histogram: Sendable {
    package struct Snapshot: Sendable {
        package var bounds: [Double]
        /// Per bucket, not cumulative.
        package var counts: [Int]
        package var sum: Double
        package var count: Int
    }

    /// Request durations in seconds: 0.5 ms … 10 s.
    package static let durationBounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

    private let bounds: [Double]
    private let state: Mutex<(counts: [Int], sum: Double, count: Int)>

    package init(bounds: [Double]) {
        self.bounds = bounds
        state = Mutex((Array(repeating: 0, count: bounds.count), 0, 0))
    }

    package func observe(_ value: Double) {
        let bucket = bounds.firstIndex { value <= $0 }
        state.withLock { state in
            if let bucket { state.counts[bucket] += 1 }
            state.sum += value
            state.count += 1
        }
    }

    package var snapshot: Snapshot {
        state.withLock { Snapshot(bounds: bounds, counts: $0.counts, sum: $0.sum, count: $0.count) }
    }
}

/// Times every request of the responder it wraps, per route and status class, for
/// `http_request_duration_seconds`. Routes outside `knownPaths` are folded into `other`, so a
/// scanner cannot grow the label set.
package final class TimedResponder<Inner: HTTPResponder>: HTTPResponder {
    private let inner: Inner
    private let knownPaths: Set<String>
    private let histograms: Mutex<[String: Histogram]>

    package init(_ inner: Inner, knownPaths: Set<String>) {
        self.inner = inner
        self.knownPaths = knownPaths
        histograms = Mutex([:])
    }

    package func respond(to request: HTTPRequest, context: HTTPRequestContext) async throws -> HTTPResponse {
        let start = ContinuousClock.now
        let response = try await inner.respond(to: request, context: context)
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let path = knownPaths.contains(request.path) ? request.path : "other"
        let key = "\(path) \(response.status.code / 100)xx"
        histogram(key).observe(seconds)
        return response
    }

    private func histogram(_ key: String) -> Histogram {
        histograms.withLock { table in
            if let existing = table[key] { return existing }
            let created = Histogram(bounds: Histogram.durationBounds)
            table[key] = created
            return created
        }
    }

    /// Writes `<prefix>_http_request_duration_seconds` with `path` and `code` labels.
    package func write(into exposition: inout Exposition, prefix: String) {
        let snapshot = histograms.withLock { $0 }.sorted { $0.key < $1.key }
        guard !snapshot.isEmpty else { return }
        exposition.histogram(
            "\(prefix)_http_request_duration_seconds", "Time to answer an HTTP request (until the response head), by route and status class.",
            snapshot.map { key, histogram in
                let parts = key.split(separator: " ")
                return ([("path", String(parts[0])), ("code", String(parts[1]))], histogram.snapshot)
            })
    }
}
