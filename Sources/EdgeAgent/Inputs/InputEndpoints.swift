import EdgeSyncCodec
import EdgeSyncProtocol
import Foundation
import HTTPCore
import PrometheusRemoteWrite
import Synchronization

/// Where inputs put readings: the spool, or a test's stand-in.
package protocol ReadingSink: Sendable {
    /// Stores the readings atomically and returns once they are durable.
    func append(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> SequenceRange
    /// `append`, where processing rules may leave nothing to store: then nothing is written and the
    /// answer is nil (`ProcessingSink`). What inputs that store whole writes call.
    func appendWhole(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> SequenceRange?
    /// Stores what the per-spool series limit admits (`Spool.appendAdmitting`).
    func appendAdmitting(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> Spool.Admitted
}

extension ReadingSink {
    /// A sink without rules stores everything it is given.
    package func appendWhole(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> SequenceRange? {
        try await append(seriesKeys: seriesKeys, readings: readings)
    }

    /// A sink without a series limit stores everything.
    package func appendAdmitting(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> Spool.Admitted
    {
        Spool.Admitted(range: try await append(seriesKeys: seriesKeys, readings: readings))
    }
}

extension Spool: ReadingSink {}

extension ReadingSink {
    /// Appends from a thread that may block (socket inputs), waiting for the spool's answer.
    /// The range is nil when processing rules left nothing to store.
    func appendBlocking(_ block: ReadingBlock) -> Result<SequenceRange?, SpoolError> {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<SequenceRange?, SpoolError>?>(nil)
        Task {
            let result: Result<SequenceRange?, SpoolError>
            do {
                result = .success(try await appendWhole(seriesKeys: block.seriesKeys, readings: block.readings))
            } catch {
                result = .failure(SpoolError.wrap(error, while: "appending"))
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return outcome.withLock { $0 } ?? .failure(SpoolError.wrap(CancellationError(), while: "appending"))
    }
}

/// The edge agent's local HTTP inputs: InfluxDB line protocol (1.x and 2.x write APIs), Prometheus
/// remote write, and JSON. A write is answered with success only once its readings are durable in
/// the spool; a request is stored whole or not at all, except that line protocol keeps its good lines
/// when some are bad (InfluxDB 1.x's partial write, a 400 naming the first bad line). `Docs/edge-agent.md`
/// describes each endpoint.
package final class InputEndpoints: HTTPResponder {
    package struct Configuration: Sendable {
        /// Largest request body as received (compressed or not); more gets 413.
        package var maximumBodyBytes = 32 << 20
        /// Largest body after gzip inflation; more gets 413 (decompression bombs stop here).
        package var maximumInflatedBytes = 64 << 20
        /// Largest JSON body after inflation; JSON costs far more memory per reading than line protocol.
        package var maximumJSONBytes = 8 << 20
        /// Most readings one request may carry (it is one atomic spool append).
        package var maximumReadingsPerRequest = DecodingLimits.default.maximumReadings
        /// Most distinct series one request may carry (each costs its key, its parser cache entry and
        /// its place in the batch); more gets 413 `too_many_series`, naming the limit.
        package var maximumSeriesPerRequest = 10_000
        /// Most gzip bodies inflating at once across all connections (a line protocol body holds its
        /// turn for one received piece at a time); more wait their turn.
        package var maximumConcurrentInflations = 2
        /// A request that inflated or parsed more than this many bytes gives free heap memory back
        /// to the kernel afterwards (`ProcessMemory.releaseFreeMemory`).
        package var memoryReleaseThresholdBytes = 4 << 20
        /// What a 503 tells producers to wait before retrying.
        package var retryAfterSeconds = 5
        /// Data source names for collectd's `Format "Command"` (`CollectdCommand`).
        package var collectdTypes = CollectdTypes.builtIn
        /// Producer retries dropped at the edge (`RetryWindow`); nil turns it off.
        package var retryWindow: RetryWindow.Configuration? = RetryWindow.Configuration()

        package init() {}
    }

    package let configuration: Configuration
    package let statistics = InputStatistics()
    private let sink: any ReadingSink
    let now: @Sendable () -> Int64
    private let parsers = Mutex<[LineProtocolParser]>([])
    private let inflations: InflationGate
    package let retryWindow: RetryWindow?

    /// Every path the input listener answers (`/metrics` is served beside these by `InputServices`);
    /// metric labels use these and fold anything else into `other`.
    package static let paths: Set<String> = [
        "/ping", "/health", "/write", "/api/v2/write", "/api/v1/write", "/v1/readings", "/query", "/metrics",
        "/v1/metrics", "/collectd",
    ]

    package init(
        configuration: Configuration = Configuration(),
        sink: any ReadingSink,
        now: @escaping @Sendable () -> Int64 = InputEndpoints.wallClock
    ) {
        self.configuration = configuration
        self.sink = sink
        self.now = now
        self.inflations = InflationGate(limit: configuration.maximumConcurrentInflations)
        retryWindow = configuration.retryWindow.map { RetryWindow(configuration: $0) }
    }

    package static let wallClock: @Sendable () -> Int64 = {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    package func respond(to request: HTTPRequest, context: HTTPRequestContext) async throws -> HTTPResponse {
        let dialect: InputFailure.Dialect =
            switch request.path {
            case "/write", "/query": .influxV1
            case "/api/v2/write": .influxV2
            case "/v1/metrics": .otlp(json: Self.isJSON(request))
            default: .edgeSync
            }
        do {
            let response = try await route(request)
            statistics.count(path: request.path, status: response.status.code)
            return response
        } catch {
            statistics.count(path: request.path, status: error.status.code)
            return error.response(dialect)
        }
    }

    private func route(_ request: HTTPRequest) async throws(InputFailure) -> HTTPResponse {
        switch (request.method, request.path) {
        case ("GET", "/ping"), ("HEAD", "/ping"):
            var headers = HTTPHeaders()
            headers.add("X-Influxdb-Version", "1.8-edge-sync")
            headers.add("X-Influxdb-Build", "OSS")
            return HTTPResponse(status: .noContent, headers: headers)
        case ("GET", "/health"), ("HEAD", "/health"):
            return json(.ok, #"{"name":"edge-agent","message":"ready for writes","status":"pass","checks":[]}"#)
        case ("POST", "/write"):
            return try await writeLineProtocol(request, dialect: .influxV1)
        case ("POST", "/api/v2/write"):
            return try await writeLineProtocol(request, dialect: .influxV2)
        case ("POST", "/v1/readings"):
            return try await writeJSON(request)
        case ("POST", "/api/v1/write"):
            return try await writeRemote(request)
        case ("POST", "/v1/metrics"):
            return try await writeOTLP(request)
        case ("POST", "/collectd"):
            return try await writeCollectd(request)
        case ("GET", "/query"), ("POST", "/query"):
            return try await query(request)
        default:
            if Self.paths.contains(request.path) {
                throw InputFailure(.methodNotAllowed, "method_not_allowed", "\(request.method) is not allowed here")
            }
            throw InputFailure(.notFound, "not_found", "no endpoint \(request.path)")
        }
    }

    // MARK: Line protocol

    private func writeLineProtocol(_ request: HTTPRequest, dialect: InputFailure.Dialect) async throws(InputFailure)
        -> HTTPResponse
    {
        guard let parameters = HTTPQueryParameters(request.query) else {
            throw InputFailure(.badRequest, "invalid_query", "the query string is not valid percent-encoded UTF-8")
        }
        // Accepted for compatibility and not stored: the series key is measurement, tags and field.
        let target = dialect == .influxV1 ? "db" : "bucket"
        guard let name = parameters[target], !name.isEmpty else {
            throw InputFailure(
                .badRequest, "missing_\(target)",
                "the \(target) parameter is required (any name; edge-agent does not store it)")
        }
        var precision = TimestampPrecision.nanoseconds
        if let text = parameters["precision"], !text.isEmpty {
            guard let parsed = TimestampPrecision(influxName: text) else {
                throw InputFailure(
                    .badRequest, "invalid_precision", "precision \"\(text)\" is not one of ns, n, us, u, ms, s, m, h")
            }
            precision = parsed
        }
        let isGzip = try isGzipEncoded(request)
        try checkDeclaredLength(request)
        // Whatever the outcome (a 413 may follow a million parsed readings), a request that parsed
        // much more text than usual gives the freed heap back once its buffers are gone.
        var parsedBytes = 0
        defer { if parsedBytes > configuration.memoryReleaseThresholdBytes { ProcessMemory.releaseFreeMemory() } }
        try await parseAndStore(request, isGzip: isGzip, precision: precision, parsedBytes: &parsedBytes)
        return HTTPResponse(status: .noContent)
    }

    /// Past this many series in one request a parser is not kept for the next request.
    private static let warmParserSeriesLimit = 4096

    /// Reads, parses and stores one line protocol body, counting the text it parsed in `parsedBytes`.
    /// Every buffer of the request is gone when it returns, so freed memory can be given back.
    private func parseAndStore(
        _ request: HTTPRequest, isGzip: Bool, precision: TimestampPrecision, parsedBytes: inout Int
    ) async throws(InputFailure) {
        var parser = parsers.withLock { $0.popLast() } ?? LineProtocolParser()
        parser.precision = precision
        parser.skippedStringFields = 0
        parser.roundedIntegers = 0
        var block = ReadingBlock()
        var reader = LineProtocolBodyReader(configuration: configuration, defaultTimestamp: now())
        defer {
            parsedBytes = reader.parsedBytes
            // A few warm parsers are enough; more would each keep their series cache. A parser that
            // has just cached thousands of series for one request goes, so its cache is freed.
            if block.seriesKeys.count <= Self.warmParserSeriesLimit {
                parsers.withLock { if $0.count < 8 { $0.append(parser) } }
            }
        }
        let badLines = try await reader.read(
            request, isGzip: isGzip, inflations: inflations, parser: &parser, into: &block, statistics: statistics)
        try await store(block)
        statistics.skippedStringFields.add(parser.skippedStringFields, ordering: .relaxed)
        statistics.roundedIntegers.add(parser.roundedIntegers, ordering: .relaxed)
        guard let first = badLines.first else { return }
        // InfluxDB 1.x: the valid points are stored and the answer is a 400 naming what was dropped.
        statistics.rejectedLines.add(badLines.count, ordering: .relaxed)
        let more = badLines.count > 1 ? " (and \(badLines.count - 1) more bad lines)" : ""
        let detail = "unable to parse '\(badLines.firstText)': \(first)\(more)"
        if block.isEmpty {
            let message = "\(detail); nothing from this request was stored dropped=\(badLines.count)"
            throw InputFailure(.badRequest, "invalid_line", message)
        }
        throw InputFailure(.badRequest, "partial_write", "partial write: \(detail) dropped=\(badLines.count)")
    }

    // MARK: InfluxQL

    /// `q` and `db` from the query string or, for a POST, a form body (`InfluxQueryAnswer`).
    private func query(_ request: HTTPRequest) async throws(InputFailure) -> HTTPResponse {
        guard var parameters = HTTPQueryParameters(request.query) else {
            throw InputFailure(.badRequest, "invalid_query", "the query string is not valid percent-encoded UTF-8")
        }
        if parameters["q"] == nil, request.method == "POST" {
            let body = try await readBody(request, maximumInflatedBytes: 1 << 20)
            guard let text = String(validating: body, as: UTF8.self), let form = HTTPQueryParameters(text) else {
                throw InputFailure(.badRequest, "invalid_query", "the form body is not valid percent-encoded UTF-8")
            }
            parameters = form
        }
        guard let statements = parameters["q"], !statements.isEmpty else {
            throw InputFailure(.badRequest, "missing_q", #"missing required parameter "q""#)
        }
        guard let answer = InfluxQueryAnswer.body(query: statements, database: parameters["db"]) else {
            throw InputFailure(
                .badRequest, "too_many_statements", "more than \(InfluxQueryAnswer.maximumStatements) statements")
        }
        return json(.ok, answer)
    }

    // MARK: JSON

    private func writeJSON(_ request: HTTPRequest) async throws(InputFailure) -> HTTPResponse {
        if let type = request.headers["content-type"],
            !ASCIICase.equal(
                type.split(separator: ";").first?.trimmingCharacters(in: .whitespaces) ?? "", "application/json")
        {
            throw InputFailure(
                .unsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json, not \(type)")
        }
        let body = try await readBody(request, maximumInflatedBytes: configuration.maximumJSONBytes)
        var block = ReadingBlock()
        try JSONReadings.decode(body, now: now(), into: &block)
        let range = try await store(block)
        let answer = range.map { #"{"accepted":\#($0.count),"first_sequence":\#($0.first),"last_sequence":\#($0.last)}"# }
        return json(.ok, answer ?? #"{"accepted":0}"#)
    }

    // MARK: collectd

    /// collectd's `write_http` with `Format "JSON"` (`CollectdJSON`) or `Format "Command"`
    /// (`CollectdCommand`, PUTVAL lines, `Content-Type: text/plain`); 204 once durable.
    private func writeCollectd(_ request: HTTPRequest) async throws(InputFailure) -> HTTPResponse {
        let body = try await readBody(request, maximumInflatedBytes: configuration.maximumJSONBytes)
        var block = ReadingBlock()
        let skipped: Int
        if Self.isCollectdCommand(request, body) {
            skipped = try CollectdCommand.decode(body, types: configuration.collectdTypes, now: now(), into: &block)
        } else {
            skipped = try CollectdJSON.decode(body, into: &block)
        }
        try await store(block)
        statistics.skippedSamples.add(skipped, ordering: .relaxed)
        return HTTPResponse(status: .noContent)
    }

    /// `Format "Command"`: collectd says `text/plain`; without a type, a body not starting with `[` or `{`.
    private static func isCollectdCommand(_ request: HTTPRequest, _ body: [UInt8]) -> Bool {
        if let type = request.headers["content-type"] {
            let media = type.split(separator: ";").first?.trimmingCharacters(in: .whitespaces) ?? ""
            if ASCIICase.equal(media, "text/plain") { return true }
            if ASCIICase.equal(media, "application/json") { return false }
        }
        let first = body.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
        return first != nil && first != UInt8(ascii: "[") && first != UInt8(ascii: "{")
    }

    // MARK: Prometheus remote write

    /// Remote write 1.0: a Snappy block-compressed `WriteRequest` (`Content-Encoding: snappy`).
    private func writeRemote(_ request: HTTPRequest) async throws(InputFailure) -> HTTPResponse {
        if let encoding = request.headers["content-encoding"]?.trimmingCharacters(in: .whitespaces),
            !ASCIICase.equal(encoding, "snappy")
        {
            throw InputFailure(
                .unsupportedMediaType, "unsupported_encoding",
                "remote write bodies are Snappy block-compressed (Content-Encoding: snappy), not \(encoding)")
        }
        let body = try await readRawBody(request)
        var limits = RemoteWriteLimits.default
        limits.maximumDecodedBytes = configuration.maximumInflatedBytes
        limits.maximumSamples = configuration.maximumReadingsPerRequest
        let decoded: RemoteWriteReadings
        do {
            decoded = try RemoteWriteReadings.decode(snappyBody: body, limits: limits)
        } catch {
            let tooLarge = error.kind == .limitExceeded || error.kind == .compression(.tooLarge)
            let status: HTTPStatus = tooLarge ? .contentTooLarge : .badRequest
            throw InputFailure(status, "invalid_remote_write", "\(error); nothing from this request was stored")
        }
        statistics.skippedSamples.add(decoded.droppedStaleMarkers + decoded.droppedNonFinite, ordering: .relaxed)
        var block = ReadingBlock()
        block.append(contentsOf: decoded.readings)
        try await store(block)
        return HTTPResponse(status: .noContent)
    }

    // MARK: Shared steps

    /// The body as received, within `maximumBodyBytes`.
    private func readRawBody(_ request: HTTPRequest) async throws(InputFailure) -> [UInt8] {
        let limit = configuration.maximumBodyBytes
        try checkDeclaredLength(request)
        do {
            let raw = try await request.body.collect(upTo: limit)
            statistics.bytesReceived.add(raw.count, ordering: .relaxed)
            return raw
        } catch {
            throw InputFailure.unreadableBody(error, limit: limit)
        }
    }

    /// Reads the body within the limits and inflates it when it is gzip.
    package func readBody(_ request: HTTPRequest, maximumInflatedBytes: Int) async throws(InputFailure) -> [UInt8] {
        let isGzip = try isGzipEncoded(request)
        let raw = try await readRawBody(request)
        guard isGzip else {
            guard raw.count <= maximumInflatedBytes else {
                throw InputFailure(
                    .contentTooLarge, "too_large", "the body exceeds the limit of \(maximumInflatedBytes) bytes")
            }
            return raw
        }
        return try await inflations.withPermit { () throws(InputFailure) in
            do throws(Gzip.Failure) {
                return try Gzip.decompress(raw, maximumBytes: maximumInflatedBytes)
            } catch {
                throw InputFailure.gzip(error)
            }
        }
    }

    /// A 413 before reading when the declared length is over `maximumBodyBytes`.
    private func checkDeclaredLength(_ request: HTTPRequest) throws(InputFailure) {
        let limit = configuration.maximumBodyBytes
        if let length = request.headers["content-length"].flatMap({ Int($0) }), length > limit {
            throw InputFailure(.contentTooLarge, "too_large", "the body of \(length) bytes exceeds the limit of \(limit)")
        }
    }

    /// Whether the body is gzip (`Content-Encoding: gzip`); identity or none is plain.
    ///
    /// - Throws: `InputFailure` 415 for any other coding.
    private func isGzipEncoded(_ request: HTTPRequest) throws(InputFailure) -> Bool {
        let encoding = request.headers["content-encoding"].map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        if ASCIICase.equal(encoding, "gzip") { return true }
        guard encoding.isEmpty || ASCIICase.equal(encoding, "identity") else {
            throw InputFailure(
                .unsupportedMediaType, "unsupported_encoding",
                "Content-Encoding \(encoding) is not supported (use gzip or none)")
        }
        return false
    }

    /// One atomic, durable spool append; nil for an empty block.
    @discardableResult
    package func store(_ block: ReadingBlock) async throws(InputFailure) -> SequenceRange? {
        guard !block.isEmpty else { return nil }
        if let failure = InputFailure.tooManySeries(block.seriesKeys.count, configuration: configuration) {
            throw failure
        }
        guard block.count <= configuration.maximumReadingsPerRequest else {
            throw InputFailure(
                .contentTooLarge, "too_many_readings",
                "\(block.count) readings in one request; at most \(configuration.maximumReadingsPerRequest): split it")
        }
        var block = block
        let admission = await retryWindow?.admit(&block)
        if let admission, admission.retries > 0 {
            statistics.retriedReadings.add(admission.retries, ordering: .relaxed)
        }
        guard !block.isEmpty else {
            if let admission { retryWindow?.finish(admission, stored: false) }
            return nil
        }
        let admitted: Spool.Admitted
        do {
            admitted = try await sink.appendAdmitting(seriesKeys: block.seriesKeys, readings: block.readings)
        } catch {
            if let admission { retryWindow?.finish(admission, stored: false) }
            statistics.spoolRefusals.add(1, ordering: .relaxed)
            throw InputFailure.spool(error, retryAfterSeconds: configuration.retryAfterSeconds)
        }
        if let admission { retryWindow?.finish(admission, stored: admitted.range != nil) }
        statistics.readingsStored.add(block.count - admitted.refusedReadings, ordering: .relaxed)
        guard admitted.refusedReadings == 0 else {
            statistics.seriesLimitedReadings.add(admitted.refusedReadings, ordering: .relaxed)
            let refused =
                "\(admitted.refusedReadings) readings of \(admitted.refusedSeries) new series refused: the spool holds "
                + "the \(admitted.seriesLimit) distinct series spool.max_series allows within a day"
            if admitted.range == nil {
                throw InputFailure(
                    .badRequest, "series_limit",
                    "\(refused); nothing from this request was stored dropped=\(admitted.refusedReadings)")
            }
            throw InputFailure(.badRequest, "series_limit", "partial write: \(refused) dropped=\(admitted.refusedReadings)")
        }
        return admitted.range
    }

    private func json(_ status: HTTPStatus, _ text: String) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json; charset=utf-8")
        return HTTPResponse(status: status, headers: headers, bytes: Array(text.utf8) + [0x0A])
    }
}

/// Counters of the inputs, for logs and `/metrics`.
package final class InputStatistics: Sendable {
    package let readingsStored = Atomic<Int>(0)
    package let bytesReceived = Atomic<Int>(0)
    package let rejectedLines = Atomic<Int>(0)
    package let spoolRefusals = Atomic<Int>(0)
    /// Remote write samples and OTLP points left out: stale markers, "no recorded value", NaN and infinities.
    package let skippedSamples = Atomic<Int>(0)
    /// OTLP points refused one by one (exponential histograms, …), answered as partial success.
    package let rejectedPoints = Atomic<Int>(0)
    /// Readings dropped as producer retries (identical to ones stored within the retry window).
    package let retriedReadings = Atomic<Int>(0)
    /// Readings of new series past `spool.max_series`, refused (400 `series_limit`).
    package let seriesLimitedReadings = Atomic<Int>(0)
    /// Line protocol string fields left out of stored lines.
    package let skippedStringFields = Atomic<Int>(0)
    /// Line protocol integers stored as the nearest Double.
    package let roundedIntegers = Atomic<Int>(0)
    private let responses = Mutex<[ResponseKey: Int]>([:])

    package struct ResponseKey: Hashable, Sendable {
        package var path: String
        package var status: Int
    }

    func count(path: String, status: Int) {
        // Unknown paths are folded together so a scanner cannot grow the table.
        let key = ResponseKey(path: InputEndpoints.paths.contains(path) ? path : "other", status: status)
        responses.withLock { $0[key, default: 0] += 1 }
    }

    package var responseCounts: [ResponseKey: Int] { responses.withLock { $0 } }
}
