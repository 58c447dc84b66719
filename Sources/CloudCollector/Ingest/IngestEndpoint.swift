import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import Foundation
import HTTPCore
import Synchronization

/// `POST /v1/batches` and `POST /v1/dropped`: authenticate, read and check the frame, decode it,
/// hand it to the writer, and acknowledge after commit.
package final class IngestEndpoint: Sendable {
    package struct Configuration: Sendable {
        /// Limits for frames from the network; a frame over them gets 413 (the edge splits it).
        package var limits: DecodingLimits = {
            var limits = DecodingLimits()
            limits.maximumFrameBytes = 8 << 20
            limits.maximumPayloadBytes = 32 << 20
            limits.maximumReadings = 500_000
            return limits
        }()
        /// Requests being read and decoded at once; more get 503, so decoded batches cannot pile up.
        package var maximumConcurrentRequests = 32
        /// Largest dropped-ranges report, in bytes.
        package var maximumReportBytes = 1 << 20
        /// Whether `FrameRun.mediaType` bodies are read; off, they get 415 as from a collector that
        /// predates them (how tests play an old collector to an agent).
        package var acceptsFrameRuns = true

        package init() {}
    }

    private let configuration: Configuration
    private let authenticator: DeviceAuthenticator
    private let writer: IngestWriter
    private let inFlight = Atomic<Int>(0)
    private let metrics: CollectorMetrics?
    private let integrity: DatabaseIntegrity
    private let refusals: RefusalLog
    private let now: @Sendable () -> Int64

    package init(
        configuration: Configuration, authenticator: DeviceAuthenticator, writer: IngestWriter,
        metrics: CollectorMetrics? = nil, integrity: DatabaseIntegrity = DatabaseIntegrity(),
        refusals: RefusalLog = RefusalLog(), now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1e9) }
    ) {
        self.configuration = configuration
        self.authenticator = authenticator
        self.writer = writer
        self.metrics = metrics
        self.integrity = integrity
        self.refusals = refusals
        self.now = now
    }

    package func register(in router: inout CollectorRouter) {
        router.add("POST", ProtocolPath.batches) { request, _ in try await self.postBatch(request) }
        router.add("POST", ProtocolPath.droppedRanges) { request, _ in try await self.postDropped(request) }
        router.add("POST", ProtocolPath.processingCounts) { request, _ in try await self.postProcessing(request) }
    }

    package func postBatch(_ request: HTTPRequest) async throws -> HTTPResponse {
        let device = try await authenticator.device(forAuthorization: request.headers["authorization"])
        var readings: Int?
        do {
            return try await postBatch(request, device: device, readings: &readings)
        } catch let error as CollectorError where RefusalLog.isRefusal(error.status.code) {
            refusals.record(
                device: device, status: error.status.code, error: error.code, message: error.message, readings: readings,
                at: now())
            throw error
        }
    }

    /// `readings` is set as soon as the batch is decoded, so a refusal after that can count them.
    private func postBatch(_ request: HTTPRequest, device: String, readings: inout Int?) async throws -> HTTPResponse {
        try refuseWhenDamaged()
        var isRun = false
        if let contentType = request.headers["content-type"] {
            let mediaType = contentType.split(separator: ";").first.map { String($0).trimmingSpaces() } ?? ""
            isRun = configuration.acceptsFrameRuns && ASCIICase.equal(mediaType, FrameRun.mediaType)
            guard isRun || ASCIICase.equal(mediaType, FrameHeader.mediaType) else {
                let accepted =
                    configuration.acceptsFrameRuns ? "\(FrameHeader.mediaType) or \(FrameRun.mediaType)" : FrameHeader.mediaType
                throw CollectorError(
                    .unsupportedMediaType, "unsupported_media_type", "Content-Type must be \(accepted), not \(contentType)")
            }
        }
        let sentAt = try Self.sentAt(request.headers[ProtocolHeader.sentAt])
        if let length = request.headers["content-length"].flatMap({ Int($0) }),
            length > configuration.limits.maximumFrameBytes
        {
            throw CollectorError(
                .contentTooLarge, "too_large",
                "body of \(length) bytes exceeds the limit of \(configuration.limits.maximumFrameBytes) bytes")
        }
        guard inFlight.wrappingAdd(1, ordering: .relaxed).oldValue < configuration.maximumConcurrentRequests else {
            inFlight.wrappingSubtract(1, ordering: .relaxed)
            throw CollectorError(.serviceUnavailable, "busy", "too many batches in flight", retryAfterSeconds: 1)
        }
        defer { inFlight.wrappingSubtract(1, ordering: .relaxed) }

        let frame = isRun ? try await readRun(request.body) : try await readFrame(request.body)
        var batch: Batch
        do {
            let decoder = BatchDecoder(limits: configuration.limits)
            batch = isRun ? try decoder.decodeRun(frame) : try decoder.decode(frame)
        } catch {
            throw Self.collectorError(for: error)
        }
        if let sentAt { batch.sentAt = sentAt }
        guard batch.device == device else {
            throw CollectorError(
                .forbidden, "wrong_device",
                "the token belongs to device \"\(device)\", the batch to \"\(batch.device)\"")
        }
        readings = batch.readings.count
        if let key = batch.seriesKeys.first(where: { $0.utf8.contains(0) }) {
            // PostgreSQL text cannot hold it; refused on every backend so the protocol is one.
            throw CollectorError(
                .badRequest, "invalid_batch", "series key \(key.prefix(80).debugDescription) contains U+0000 (NUL)")
        }
        guard
            batch.readings.isEmpty
                || (batch.firstSequence >= 1
                    && batch.firstSequence - 1 + UInt64(batch.readings.count) <= StorageLimits.maximumSequence)
        else {
            throw CollectorError(
                .badRequest, "sequence_out_of_range",
                "sequence numbers must lie in 1...\(StorageLimits.maximumSequence); batch starts at \(batch.firstSequence)"
            )
        }
        let outcome = try await storing { try await writer.submit(batch) }
        metrics?.countBatch(accepted: outcome.accepted, duplicates: outcome.duplicates, frameBytes: frame.count)
        var acknowledged: [SequenceRange] = []
        if let range = SequenceRange(batch.sequences) { acknowledged.append(range) }
        let body = BatchAcknowledgement(
            device: batch.device, stream: batch.stream, accepted: outcome.accepted, duplicates: outcome.duplicates,
            acknowledged: acknowledged)
        return try Self.json(body)
    }

    /// A JSON report from a device: authenticated, the database sound, at most
    /// `maximumReportBytes`, decoded and checked by `check` (400 when either fails), and about the
    /// token's own device (else 403).
    private func report<Report: Decodable>(
        _ request: HTTPRequest, _ name: String, device reportDevice: (Report) -> String,
        check: (Report) throws -> Void = { _ in }
    ) async throws -> (device: String, report: Report) {
        let device = try await authenticator.device(forAuthorization: request.headers["authorization"])
        try refuseWhenDamaged()
        let bytes = try await request.body.collect(upTo: configuration.maximumReportBytes)
        let report: Report
        do {
            report = try JSONDecoder().decode(Report.self, from: Data(bytes))
            try check(report)
        } catch {
            throw CollectorError(.badRequest, "malformed_report", "not a \(name) report: \(error)")
        }
        guard reportDevice(report) == device else {
            throw CollectorError(
                .forbidden, "wrong_device",
                "the token belongs to device \"\(device)\", the report to \"\(reportDevice(report))\"")
        }
        return (device, report)
    }

    package func postDropped(_ request: HTTPRequest) async throws -> HTTPResponse {
        let (device, report) = try await self.report(request, "dropped-ranges") { (report: DroppedRangesReport) in
            report.device
        }
        for range in report.dropped where range.first < 1 || range.last > StorageLimits.maximumSequence {
            throw CollectorError(.badRequest, "sequence_out_of_range", "dropped range \(range) is outside 1...2^63-1")
        }
        try await storing { try await writer.recordDropped(report, device: device) }
        metrics?.droppedReports.add(1, ordering: .relaxed)
        return try Self.json(report)
    }

    /// `POST /v1/processing`: the totals of the edge's processing rules for one stream, kept for
    /// `/v1/devices` (`ProcessingCountsStorage.swift`). Answers the stored report.
    package func postProcessing(_ request: HTTPRequest) async throws -> HTTPResponse {
        let (device, report) = try await self.report(
            request, "processing-counts", device: { (report: ProcessingCountsReport) in report.device },
            check: { try ProcessingCountsTable.check($0) })
        guard try await storing({ try await writer.recordProcessing(report, device: device) }) else {
            throw CollectorError(.notFound, "not_found", "this collector's storage keeps no processing counts")
        }
        return try Self.json(report)
    }

    /// A damaged database gets no writes: a 2xx would make the edge delete readings this file may
    /// not give back.
    private func refuseWhenDamaged() throws(CollectorError) {
        guard let problem = integrity.problem else { return }
        throw CollectorError(.serviceUnavailable, "database_damaged", problem, retryAfterSeconds: 60)
    }

    /// Runs a write; SQLite finding corruption while writing marks the database damaged for good.
    private func storing<T>(_ write: () async throws -> T) async throws -> T {
        do {
            return try await write()
        } catch let error as SQLiteError where error.isCorrupt {
            integrity.markDamaged("\(error)")
            try refuseWhenDamaged()
            throw error
        }
    }

    /// Reads exactly one frame's bytes: the header first, so a frame over the limits is refused
    /// from its declared sizes before its body is read.
    private func readFrame(_ body: HTTPRequestBody) async throws -> [UInt8] {
        var frame: [UInt8] = []
        var expected: Int?
        for try await chunk in body {
            frame += chunk
            if expected == nil, frame.count >= FrameHeader.byteCount {
                let header: FrameHeader
                do {
                    header = try frame.withUnsafeBytes { raw in
                        try Result { () throws(CodecError) in try FrameHeader.parse(raw, limits: configuration.limits) }
                            .get()
                    }
                } catch {
                    throw Self.collectorError(for: error)
                }
                expected = header.frameBytes
                frame.reserveCapacity(header.frameBytes)
            }
            // More than the frame declares: stop reading, the decoder names the trailing bytes.
            if let expected, frame.count > expected { break }
        }
        return frame
    }

    /// A frame run's bytes: the declared length was checked against the limit already; a chunked
    /// body is cut off at the limit. Each frame's header is checked while decoding.
    private func readRun(_ body: HTTPRequestBody) async throws -> [UInt8] {
        try await body.collect(upTo: configuration.limits.maximumFrameBytes)
    }

    /// The `Edge-Sync-Sent-At` header's nanoseconds; nil when absent.
    static func sentAt(_ value: String?) throws(CollectorError) -> Int64? {
        guard let value else { return nil }
        let trimmed = value.trimmingSpaces()
        guard !trimmed.isEmpty, trimmed.utf8.count <= 20, let nanoseconds = Int64(trimmed) else {
            throw CollectorError(
                .badRequest, "invalid_header",
                "\(ProtocolHeader.sentAt) must be decimal nanoseconds since the Unix epoch, not \(value.prefix(40).debugDescription)")
        }
        return nanoseconds
    }

    static func collectorError(for error: any Error) -> CollectorError {
        guard let error = error as? CodecError else {
            return CollectorError(.badRequest, "malformed", "\(error)")
        }
        let code = error.code.description.replacingOccurrences(of: " ", with: "_")
        switch error.code {
        case .limitExceeded: return CollectorError(.contentTooLarge, "too_large", error.description)
        case .unsupportedVersion, .unsupportedFlags:
            return CollectorError(.unsupportedMediaType, code, error.description)
        default: return CollectorError(.badRequest, code, error.description)
        }
    }

    static func json(_ value: some Encodable) throws -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "application/json")
        return HTTPResponse(status: .ok, headers: headers, bytes: Array(try JSONEncoder().encode(value)))
    }
}
