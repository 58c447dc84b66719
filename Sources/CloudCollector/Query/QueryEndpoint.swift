import Foundation
import HTTPCore

/// The query API: `GET /v1/series`, `/v1/readings`, `/v1/aggregate` and `/v1/devices`, all behind
/// the operator token. `Docs/protocol.md` documents every parameter, limit and error.
package final class QueryEndpoint: Sendable {
    package struct Configuration: Sendable {
        /// Readings per `/v1/readings` response when `limit` is not given, and the largest `limit`.
        package var defaultReadingLimit = 100_000
        package var maximumReadingLimit = 10_000_000
        /// Readings fetched from the database per step of a streamed response; with the output
        /// buffer this bounds a response's memory whatever its size.
        package var readingsPerFetch = 4096
        /// Bytes collected before they are written to the connection as one chunk.
        package var chunkBytes = 64 * 1024
        /// Buckets one `/v1/aggregate` answer may have.
        package var maximumBuckets = 10_000
        /// Series per `/v1/series` answer when `limit` is not given, and the largest `limit`.
        package var defaultSeriesLimit = 1000
        package var maximumSeriesLimit = 10_000

        package init() {}
    }

    private let configuration: Configuration
    private let authenticator: OperatorAuthenticator
    private let queries: any ReadingQueries
    private let now: @Sendable () -> Int64
    private let skewTolerance: Int64
    private let refusals: RefusalLog?

    package init(
        configuration: Configuration = Configuration(), authenticator: OperatorAuthenticator,
        queries: any ReadingQueries, refusals: RefusalLog? = nil, skewToleranceNanoseconds: Int64 = 300_000_000_000,
        now: @escaping @Sendable () -> Int64
    ) {
        self.configuration = configuration
        self.authenticator = authenticator
        self.queries = queries
        self.refusals = refusals
        self.skewTolerance = skewToleranceNanoseconds
        self.now = now
    }

    package func register(in router: inout CollectorRouter) {
        router.add("GET", "/v1/series") { request, _ in try await self.series(request) }
        router.add("GET", "/v1/readings") { request, _ in try await self.readings(request) }
        router.add("GET", "/v1/aggregate") { request, _ in try await self.aggregate(request) }
        router.add("GET", "/v1/devices") { request, _ in try await self.devices(request) }
    }

    // MARK: Endpoints

    package func series(_ request: HTTPRequest) async throws -> HTTPResponse {
        try authenticator.authorize(request.headers["authorization"])
        let parameters = try QueryParameters(request.query, allowed: ["device", "prefix", "limit"])
        let limit = try parameters.integer(
            "limit", default: configuration.defaultSeriesLimit, in: 1...configuration.maximumSeriesLimit)
        let device = parameters["device"]
        if let device, device.isEmpty {
            throw CollectorError(.badRequest, "invalid_parameter", "parameter \"device\" is empty")
        }
        var rows = try await queries.series(device: device, prefix: parameters["prefix"] ?? "", limit: limit + 1)
        let truncated = rows.count > limit
        if truncated { rows.removeLast() }
        return try Self.json(SeriesList(series: rows, truncated: truncated))
    }

    package func readings(_ request: HTTPRequest) async throws -> HTTPResponse {
        try authenticator.authorize(request.headers["authorization"])
        let parameters = try QueryParameters(
            request.query, allowed: ["device", "series", "from", "to", "format", "limit", "cursor"])
        let formatName = parameters["format"] ?? "json"
        guard let format = ReadingFormat(rawValue: formatName) else {
            throw CollectorError(
                .badRequest, "invalid_parameter",
                "parameter \"format\" must be json, csv or lp, not \"\(formatName.clipped)\"")
        }
        let limit = try parameters.integer(
            "limit", default: configuration.defaultReadingLimit, in: 1...configuration.maximumReadingLimit)
        let (series, from, to) = try await seriesAndRange(parameters)
        let after = try parameters["cursor"].map { cursor throws(CollectorError) in
            try ReadingCursor.decode(cursor, series: series)
        }

        // Where this page ends is settled before the head goes out, so the next cursor can be a
        // header. The page is every reading after `after` up to `end`: a reading committed while
        // the body streams lands in this page or a later one, never in none.
        let end = try await queries.pageEnd(of: series, after: after, from: from, to: to, limit: limit)
        let nextCursor = end.flatMap { $0.hasMore ? ReadingCursor.encode(series: series, after: $0.last) : nil }
        var headers = HTTPHeaders()
        headers.add("Content-Type", format.contentType)
        headers.add("Cache-Control", "no-store")
        if let nextCursor {
            headers.add("X-Next-Cursor", nextCursor)
            headers.add("Link", "<\(Self.nextPageTarget(request, cursor: nextCursor))>; rel=\"next\"")
        }
        let formatterTemplate = ReadingFormatter(format: format, device: series.device, series: series.key)
        let queries = self.queries
        let fetchSize = configuration.readingsPerFetch
        let chunkBytes = configuration.chunkBytes
        return HTTPResponse(status: .ok, headers: headers) { writer in
            var formatter = formatterTemplate
            var buffer = formatter.head()
            buffer.reserveCapacity(chunkBytes + 4096)
            if let end {
                var position = after
                while true {
                    let page = try await queries.readings(
                        of: series, after: position, through: end.last, from: from, to: to, limit: fetchSize)
                    for reading in page {
                        formatter.append(reading, to: &buffer)
                        if buffer.count >= chunkBytes {
                            try await writer.write(buffer)
                            buffer.removeAll(keepingCapacity: true)
                        }
                    }
                    guard page.count == fetchSize, let last = page.last else { break }
                    position = last.position
                }
            }
            buffer += formatter.tail(nextCursor: nextCursor)
            try await writer.write(buffer)
        }
    }

    package func aggregate(_ request: HTTPRequest) async throws -> HTTPResponse {
        try authenticator.authorize(request.headers["authorization"])
        let parameters = try QueryParameters(request.query, allowed: ["device", "series", "from", "to", "step"])
        guard parameters["from"] != nil, parameters["to"] != nil else {
            throw CollectorError(
                .badRequest, "missing_parameter", "parameters \"from\" and \"to\" are required for an aggregate")
        }
        let stepText = try parameters.required("step")
        guard let step = Self.duration(stepText), step > 0 else {
            throw CollectorError(
                .badRequest, "invalid_parameter",
                "parameter \"step\" must be a positive duration: nanoseconds (60000000000) or a number with"
                    + " a unit ns, us, ms, s, m, h, d (1m, 15s, 500ms), not \"\(stepText.clipped)\"")
        }
        let (series, from, to) = try await seriesAndRange(parameters)
        let (span, overflow) = to.subtractingReportingOverflow(from)
        let buckets = overflow ? UInt64.max : (UInt64(span) + UInt64(step) - 1) / UInt64(step)
        guard buckets <= configuration.maximumBuckets else {
            throw CollectorError(
                .badRequest, "too_many_buckets",
                "from, to and step give \(overflow ? "more than 2^63" : String(buckets)) buckets; at most"
                    + " \(configuration.maximumBuckets) are allowed, use a larger step")
        }
        let rows = try await queries.aggregate(of: series, from: from, to: to, step: step)
        return try Self.json(
            AggregateAnswer(
                device: series.device, series: series.key, from: from, to: to, step: step,
                buckets: rows))
    }

    package func devices(_ request: HTTPRequest) async throws -> HTTPResponse {
        try authenticator.authorize(request.headers["authorization"])
        let parameters = try QueryParameters(request.query, allowed: ["device"])
        var streams = try await queries.streams()
        var refused = refusals?.snapshot() ?? [:]
        if let device = parameters["device"] {
            streams.removeAll { $0.device != device }
            refused = refused.filter { $0.key == device }
        }
        let processing = try await (queries as? any ProcessingCountsQueries)?.processingCounts() ?? [:]
        return try Self.json(
            DevicesReport(
                streams: streams, refusals: refused, now: now(), skewToleranceNanoseconds: skewTolerance,
                processing: processing))
    }

    // MARK: Parameters

    /// `device`, `series`, `from` (inclusive) and `to` (exclusive), with the series looked up.
    private func seriesAndRange(_ parameters: QueryParameters) async throws -> (SeriesReference, Int64, Int64) {
        let device = try parameters.required("device")
        let key = try parameters.required("series")
        let from = try parameters.timestamp("from") ?? .min
        let to = try parameters.timestamp("to") ?? .max
        guard from <= to else {
            throw CollectorError(
                .badRequest, "invalid_range",
                "\"from\" (\(from)) is after \"to\" (\(to)); from is inclusive, to exclusive")
        }
        guard let series = try await queries.series(device: device, key: key) else {
            throw CollectorError(
                .notFound, "unknown_series", "device \"\(device.clipped)\" has no series \"\(key.clipped)\"")
        }
        return (series, from, to)
    }

    /// `1500000000` (nanoseconds) or a number with a unit: `ns`, `us`, `ms`, `s`, `m`, `h`, `d`.
    static func duration(_ text: String) -> Int64? {
        if let value = Int64(text) { return value }
        let units: [(String, Int64)] = [
            ("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000),
            ("h", 3_600_000_000_000), ("d", 86_400_000_000_000),
        ]
        for (unit, scale) in units where text.hasSuffix(unit) {
            guard let number = Int64(text.dropLast(unit.count)) else { continue }
            let (value, overflow) = number.multipliedReportingOverflow(by: scale)
            return overflow ? nil : value
        }
        return nil
    }

    /// The request's own target with `cursor` replaced, for the `Link` header.
    static func nextPageTarget(_ request: HTTPRequest, cursor: String) -> String {
        let kept = (request.query ?? "").split(separator: "&").filter { !$0.hasPrefix("cursor=") && $0 != "cursor" }
        return request.path + "?" + (kept.map(String.init) + ["cursor=\(cursor)"]).joined(separator: "&")
    }

    static func json(_ value: some Encodable) throws -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json")
        headers.add("Cache-Control", "no-store")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys  // the same document byte for byte, run after run
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "NaN")
        return HTTPResponse(status: .ok, headers: headers, bytes: Array(try encoder.encode(value)))
    }
}

/// The `/v1/series` answer.
package struct SeriesList: Sendable, Hashable, Codable {
    package var series: [SeriesSummary]
    /// More series match than `limit`; narrow with `device` or `prefix`.
    package var truncated: Bool
}

/// The `/v1/aggregate` answer.
package struct AggregateAnswer: Sendable, Hashable, Codable {
    package var device: String
    package var series: String
    package var from: Int64
    package var to: Int64
    package var step: Int64
    package var buckets: [AggregateBucket]
}
