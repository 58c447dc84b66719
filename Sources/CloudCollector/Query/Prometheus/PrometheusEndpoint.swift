import Foundation
import HTTPCore
import PrometheusRemoteWrite

/// What Prometheus and Grafana speak to the collector, behind the operator token:
/// `POST /api/v1/read` (remote read 0.1.0, samples response type) and the labels API
/// (`/api/v1/labels`, `/api/v1/label/NAME/values`, `/api/v1/series`). Everything is answered from
/// `ReadingQueries`, so it works on every storage backend. `Docs/protocol.md` has the label
/// mapping, limits and errors; decision 0022-prometheus-remote-read says why it is built this way.
package final class PrometheusEndpoint: Sendable {
    package struct Configuration: Sendable {
        /// Largest compressed request body; Prometheus sends well under 1 KiB.
        package var maximumBodyBytes = 256 * 1024
        package var request = RemoteReadRequestLimits()
        /// Series (after splitting by stream) one remote read request may return, summed over its queries.
        package var maximumSeries = 10_000
        /// Samples one remote read request may return: the answer is one Snappy block, built in
        /// memory before it is sent, so this bounds the memory a request takes (roughly 70 bytes a
        /// sample at the peak: the series read, its protobuf, the answer and its compressed copy).
        package var maximumSamples = 1_000_000
        /// Stored series a request may have to look at before its matchers narrow them; a selector
        /// without `__name__="…"` or `device="…"` looks at every series.
        package var maximumCandidateSeries = 100_000
        /// Readings fetched from storage at once.
        package var readingsPerFetch = 65_536

        package init() {}
    }

    private let configuration: Configuration
    private let authenticator: OperatorAuthenticator
    private let queries: any ReadingQueries

    package init(
        configuration: Configuration = Configuration(), authenticator: OperatorAuthenticator,
        queries: any ReadingQueries
    ) {
        self.configuration = configuration
        self.authenticator = authenticator
        self.queries = queries
    }

    package static let readPath = "/api/v1/read"
    package static let labelValuesPrefix = "/api/v1/label/"

    package func register(in router: inout CollectorRouter) {
        router.add("POST", Self.readPath) { request, _ in try await self.read(request) }
        for method in ["GET", "POST"] {
            router.add(method, "/api/v1/labels") { request, _ in try await self.labelNames(request) }
            router.add(method, "/api/v1/series") { request, _ in try await self.seriesList(request) }
            router.addPrefix(method, Self.labelValuesPrefix) { request, _ in try await self.labelValues(request) }
        }
    }

    // MARK: Remote read

    /// One matched series of one query: its labels (with `stream` when split by stream) and where it is stored.
    private struct Selected {
        var labels: [(name: String, value: String)]
        var reference: SeriesReference
    }

    package func read(_ request: HTTPRequest) async throws -> HTTPResponse {
        try authenticator.authorize(request.headers["authorization"])
        if let encoding = request.headers["content-encoding"], !ASCIICase.equal(encoding, "snappy") {
            throw CollectorError(
                .unsupportedMediaType, "unsupported_encoding",
                "remote read bodies are Snappy-compressed (Content-Encoding: snappy), not \"\(encoding.clipped)\"")
        }
        let body = try await request.body.collect(upTo: configuration.maximumBodyBytes)
        let readRequest: ReadRequest
        do {
            readRequest = try ReadRequest.decode(snappyBody: body, limits: configuration.request)
        } catch {
            throw Self.refusal(error)
        }
        guard readRequest.acceptedResponseTypes.isEmpty || readRequest.acceptedResponseTypes.contains(.samples)
        else {
            throw CollectorError(
                .badRequest, "unsupported_response_type",
                "the collector answers remote read with the SAMPLES response type only; the request accepts"
                    + " \(readRequest.acceptedResponseTypes.map { String($0.rawValue) }.joined(separator: ", "))")
        }
        var encoder = ReadResponseEncoder()
        var samples = 0
        var seriesCount = 0
        for (index, query) in readRequest.queries.enumerated() {
            guard query.startTimestamp <= query.endTimestamp else {
                throw CollectorError(
                    .badRequest, "invalid_range",
                    "query \(index): start \(query.startTimestamp) ms is after end \(query.endTimestamp) ms")
            }
            let selector = try LabelSelector(query.matchers)
            let (from, to) = Self.nanosecondRange(query)
            let candidates = try await self.candidates(selector, from: from, to: to)
            for candidate in candidates {
                try await encode(
                    candidate, selector: selector, from: from, to: to, into: &encoder, samples: &samples,
                    series: &seriesCount)
            }
            encoder.endResult()
        }
        let message = encoder.finish()
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/x-protobuf")
        headers.add("Content-Encoding", "snappy")
        headers.add("Cache-Control", "no-store")
        return HTTPResponse(status: .ok, headers: headers, bytes: Snappy.compress(message))
    }

    /// Milliseconds (both ends inclusive) to nanoseconds `[from, to)`: a reading belongs to the
    /// millisecond it falls in, as Prometheus would have stored it.
    static func nanosecondRange(_ query: ReadRequest.Query) -> (Int64, Int64) {
        let (from, fromOverflow) = query.startTimestamp.multipliedReportingOverflow(by: 1_000_000)
        let (end, endOverflow) = query.endTimestamp.addingReportingOverflow(1)
        let (to, toOverflow) = end.multipliedReportingOverflow(by: 1_000_000)
        return (
            fromOverflow ? (query.startTimestamp < 0 ? .min : .max) : from,
            endOverflow || toOverflow ? (query.endTimestamp < 0 ? .min : .max) : to
        )
    }

    /// Milliseconds of a reading's nanosecond timestamp, rounded down (also before 1970).
    @inline(__always)
    static func milliseconds(_ nanoseconds: Int64) -> Int64 {
        let quotient = nanoseconds / 1_000_000
        return nanoseconds % 1_000_000 < 0 ? quotient - 1 : quotient
    }

    /// Stored series whose labels (without `stream`) pass the selector and whose stored time span
    /// overlaps `[from, to)`, ordered by device and key.
    private func candidates(_ selector: LabelSelector, from: Int64, to: Int64) async throws -> [SeriesSummary] {
        let limit = configuration.maximumCandidateSeries
        var listed = try await queries.series(device: selector.device, prefix: selector.keyPrefix, limit: limit + 1)
        guard listed.count <= limit else {
            throw CollectorError(
                .badRequest, "too_many_candidate_series",
                "the matchers leave more than \(limit) stored series to look at; add __name__=\"…\" or"
                    + " device=\"…\" to the selector")
        }
        listed.removeAll { summary in
            guard let first = summary.firstTimestamp, let last = summary.lastTimestamp, first < to, last >= from
            else { return true }
            return !selector.passesSeries(PrometheusLabels.labels(device: summary.device, key: summary.series))
        }
        return listed
    }

    /// Reads one series' samples in the range and appends one Prometheus series per stream.
    private func encode(
        _ summary: SeriesSummary, selector: LabelSelector, from: Int64, to: Int64,
        into encoder: inout ReadResponseEncoder, samples: inout Int, series: inout Int
    ) async throws {
        guard let reference = try await queries.series(device: summary.device, key: summary.series) else { return }
        let labels = PrometheusLabels.labels(device: summary.device, key: summary.series)
        let through = ReadingPosition(timestamp: to == .min ? .min : to - 1, readingID: .max)
        // Nearly always one stream per series; more when a gateway's spool was recreated.
        var byStream: [UInt64: [(Int64, Double)]] = [:]
        var order: [UInt64] = []
        var after: ReadingPosition?
        let fetch = configuration.readingsPerFetch
        let maximumSamples = configuration.maximumSamples
        while true {
            let page = try await queries.readings(
                of: reference, after: after, through: through, from: from, to: to, limit: fetch)
            for reading in page where selector.passesStream(reading.stream) {
                samples += 1
                guard samples <= maximumSamples else {
                    throw CollectorError(
                        .badRequest, "too_many_samples",
                        "the request selects more than \(maximumSamples) samples; narrow the time range or the"
                            + " matchers (the collector's limit is remote_read maximum samples)")
                }
                if byStream[reading.stream] == nil { order.append(reading.stream) }
                byStream[reading.stream, default: []].append((Self.milliseconds(reading.timestamp), reading.value))
            }
            guard page.count == fetch, let last = page.last else { break }
            after = last.position
        }
        for stream in order.sorted() {
            series += 1
            guard series <= configuration.maximumSeries else {
                throw CollectorError(
                    .badRequest, "too_many_series",
                    "the request selects more than \(configuration.maximumSeries) series; narrow the matchers")
            }
            encoder.appendSeries(
                labels: PrometheusLabels.adding(stream: stream, to: labels), samples: byStream[stream] ?? [])
            byStream[stream] = nil
        }
    }

    /// 413 for limits, 400 for everything else wrong with the body.
    private static func refusal(_ error: RemoteWriteError) -> CollectorError {
        let place =
            switch (error.kind, error.offset) {
            case (.compression, let offset?): "snappy body byte \(offset): "
            case (_, let offset?): "protobuf byte \(offset): "
            case (_, nil): ""
            }
        let message = "remote read request: \(place)\(error.reason)"
        switch error.kind {
        case .limitExceeded, .compression(.tooLarge):
            return CollectorError(.contentTooLarge, "request_too_large", message)
        case .compression:
            return CollectorError(.badRequest, "malformed_snappy", message)
        case .malformedProtobuf:
            return CollectorError(.badRequest, "malformed_protobuf", message)
        case .invalidRequest:
            return CollectorError(.badRequest, "invalid_request", message)
        }
    }

    // MARK: Labels API

    /// The stored series as label sets (one per stream of the series' device), those that pass any
    /// of the `match[]` selectors (all series when there is none) and overlap the time range.
    private func labelSets(_ request: HTTPRequest, requireMatch: Bool) async throws -> [[(name: String, value: String)]]
    {
        try authenticator.authorize(request.headers["authorization"])
        var items = HTTPQueryParameters(request.query)?.items ?? []
        guard HTTPQueryParameters(request.query) != nil || (request.query ?? "").isEmpty else {
            throw CollectorError(.badRequest, "malformed_query", "the query string has a malformed % escape")
        }
        if request.method == "POST" {
            let body = try await request.body.collect(upTo: configuration.maximumBodyBytes)
            guard let form = HTTPQueryParameters(String(decoding: body, as: UTF8.self)) else {
                throw CollectorError(.badRequest, "malformed_query", "the form body has a malformed % escape")
            }
            items += form.items
        }
        var selectors: [LabelSelector] = []
        var start: Int64 = .min
        var end: Int64 = .max
        for (name, value) in items {
            switch name {
            case "match[]":
                let selector = try LabelSelector(SeriesSelectorParser.parse(value))
                guard !selector.matchesEverything else {
                    throw CollectorError(
                        .badRequest, "invalid_selector",
                        "match[] \"\(value.clipped)\" matches every series; give at least one matcher that does not match \"\""
                    )
                }
                selectors.append(selector)
            case "start": start = try Self.apiTime(value, name: name)
            case "end": end = try Self.apiTime(value, name: name)
            case "limit": break  // Grafana sends it; the answer is bounded by maximumCandidateSeries anyway
            default:
                throw CollectorError(
                    .badRequest, "unknown_parameter",
                    "unknown parameter \"\(name.clipped)\"; this endpoint takes match[], start, end")
            }
        }
        if requireMatch, selectors.isEmpty {
            throw CollectorError(.badRequest, "missing_parameter", "parameter \"match[]\" is required")
        }
        // One listing when there is one selector with pushdown; else everything once.
        let single = selectors.count == 1 ? selectors[0] : nil
        let limit = configuration.maximumCandidateSeries
        let listed = try await queries.series(
            device: single?.device, prefix: single?.keyPrefix ?? "", limit: limit + 1)
        guard listed.count <= limit else {
            throw CollectorError(
                .badRequest, "too_many_candidate_series",
                "more than \(limit) stored series to look at; narrow match[] with __name__ or device")
        }
        var streams: [String: [UInt64]] = [:]
        for facts in try await queries.streams() { streams[facts.device, default: []].append(facts.stream) }
        var sets: [[(name: String, value: String)]] = []
        for summary in listed {
            guard let first = summary.firstTimestamp, let last = summary.lastTimestamp,
                first <= end, last >= start
            else { continue }
            let labels = PrometheusLabels.labels(device: summary.device, key: summary.series)
            for stream in streams[summary.device] ?? [] {
                let withStream = PrometheusLabels.adding(stream: stream, to: labels)
                if selectors.isEmpty
                    || selectors.contains(where: { $0.passesSeries(withStream) && $0.passesStream(stream) })
                {
                    sets.append(withStream)
                }
            }
        }
        return sets
    }

    package func labelNames(_ request: HTTPRequest) async throws -> HTTPResponse {
        let sets = try await labelSets(request, requireMatch: false)
        let names = Set(sets.flatMap { $0.map(\.name) })
        return try Self.success(names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    package func labelValues(_ request: HTTPRequest) async throws -> HTTPResponse {
        let rest = request.path.dropFirst(Self.labelValuesPrefix.count)
        guard rest.hasSuffix("/values"), case let encoded = rest.dropLast("/values".count), !encoded.isEmpty,
            !encoded.contains("/")
        else {
            throw CollectorError(
                .notFound, "not_found", "no endpoint \(request.path.clipped); try /api/v1/label/NAME/values")
        }
        guard let name = try? HTTPQueryParameters.decodeComponent(encoded.utf8) else {
            throw CollectorError(.badRequest, "malformed_query", "the label name has a malformed % escape")
        }
        let sets = try await labelSets(request, requireMatch: false)
        let values = Set(sets.compactMap { labels in labels.first { $0.name.utf8.elementsEqual(name.utf8) }?.value })
        return try Self.success(values.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    package func seriesList(_ request: HTTPRequest) async throws -> HTTPResponse {
        let sets = try await labelSets(request, requireMatch: true)
        return try Self.success(
            sets.map { Dictionary($0.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a }) })
    }

    /// Prometheus' API times: Unix seconds with an optional fraction, or RFC 3339.
    static func apiTime(_ text: String, name: String) throws(CollectorError) -> Int64 {
        if let seconds = Double(text), seconds.isFinite, abs(seconds) < 9.2e9 {
            return Int64((seconds * 1e9).rounded())
        }
        if text.contains("T"), let value = Timestamp.parse(text) { return value }
        throw CollectorError(
            .badRequest, "invalid_parameter",
            "parameter \"\(name)\" must be Unix seconds (1700000000.5) or RFC 3339, not \"\(text.clipped)\"")
    }

    private struct Success<T: Encodable>: Encodable {
        var status = "success"
        var data: T
    }

    static func success(_ data: some Encodable) throws -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json")
        headers.add("Cache-Control", "no-store")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return HTTPResponse(status: .ok, headers: headers, bytes: Array(try encoder.encode(Success(data: data))))
    }
}
