import EdgeSyncCodec
import EdgeSyncProtocol
import Foundation
import Synchronization

@testable import EdgeAgent

/// An in-memory `UploadSource`: a queue of readings with sequence numbers 1...n.
final class MemorySource: UploadSource {
    struct State {
        var queued: [UInt64: Reading] = [:]
        var keys: [String] = []
        var last: UInt64 = 0
        var quarantined: [(SequenceRange, String)] = []
        var dropped: [SequenceRange] = []
        var droppedReported: [SequenceRange] = []
        var acknowledgeCalls = 0
        /// What `processingCounts()` answers (a spool with processing rules).
        var processing: [ProcessingRuleCounts] = []
    }

    let device: String
    let stream: UInt64
    let state = Mutex(State())

    init(device: String = "gw-1", stream: UInt64 = 0xFEED, readings: Int, seriesCount: Int = 3) {
        self.device = device
        self.stream = stream
        append(readings, seriesCount: seriesCount)
    }

    func append(_ count: Int, seriesCount: Int = 3) {
        state.withLock { state in
            if state.keys.isEmpty { state.keys = (0..<seriesCount).map { "sensor\($0).value" } }
            for _ in 0..<count {
                state.last += 1
                let sequence = state.last
                state.queued[sequence] = Reading(
                    series: Int(sequence % UInt64(state.keys.count)), timestamp: Int64(sequence) * 1_000_000_000,
                    value: Double(sequence % 1000) / 10)
            }
        }
    }

    var identity: (device: String, stream: UInt64) { (device, stream) }

    func lastSequence() async throws -> UInt64 { state.withLock { $0.last } }

    func waitForReadings(after sequence: UInt64) async {
        // Tests that run continuously append before they start; polling keeps this fake simple.
        while !Task.isCancelled, state.withLock({ $0.last <= sequence }) { await Task.yield() }
    }

    /// Readings per frame handed out, as a spool's stored chunks would be.
    let chunkReadings = 250

    func frames(in range: SequenceRange, maximumReadings: Int, maximumBytes: Int) async throws -> UploadBatch? {
        let batch: Batch? = state.withLock { state in
            var sequence = range.first
            while sequence <= range.last, state.queued[sequence] == nil { sequence += 1 }
            guard sequence <= range.last else { return nil }
            let first = sequence
            var readings: [Reading] = []
            while sequence <= range.last, readings.count < maximumReadings, let reading = state.queued[sequence] {
                readings.append(reading)
                sequence += 1
            }
            return Batch(
                device: device, stream: stream, firstSequence: first, seriesKeys: state.keys, readings: readings)
        }
        guard let batch, let whole = batch.sequenceRange else { return nil }
        var frames: [UploadFrame] = []
        var start = whole.first
        while start <= whole.last {
            let part = SequenceRange(start, min(whole.last, start + UInt64(chunkReadings) - 1))
            frames.append(UploadFrame(range: part, bytes: try BatchEncoder().encode(batch.slice(part)), isStored: true))
            start = part.last + 1
        }
        return UploadBatch(frames: frames)
    }

    func acknowledge(_ ranges: [SequenceRange]) async throws {
        state.withLock { state in
            state.acknowledgeCalls += 1
            for range in ranges { for sequence in range.first...range.last { state.queued[sequence] = nil } }
        }
    }

    func quarantine(_ range: SequenceRange, reason: String) async throws {
        state.withLock { state in
            state.quarantined.append((range, reason))
            for sequence in range.first...range.last { state.queued[sequence] = nil }
        }
    }

    func unreportedDroppedRanges() async throws -> [SequenceRange] {
        state.withLock { state in state.dropped.filter { !state.droppedReported.contains($0) } }
    }

    func markDroppedRangesReported(_ ranges: [SequenceRange]) async throws {
        state.withLock { $0.droppedReported.append(contentsOf: ranges) }
    }

    func processingCounts() async throws -> [ProcessingRuleCounts] { state.withLock { $0.processing } }

    var queuedCount: Int { state.withLock { $0.queued.count } }
}

/// A collector in memory behind the `UploadTransport` protocol: decodes each frame with the real
/// codec, stores each (stream, seq) once, and answers like the real one. A `fault` closure can
/// replace any answer, before or after the batch is stored.
final class MemoryCollector: UploadTransport {
    enum Fault: Sendable {
        /// Answer this instead of processing the request.
        case respond(Result<UploadResponse, UploadTransportError>)
        /// Store the batch, then lose the answer (the "lost ack" case).
        case loseAcknowledgement
    }

    struct State {
        var received = SequenceRangeSet()
        var stored: [UInt64: Reading] = [:]
        var storedKeys: [UInt64: String] = [:]
        var duplicates = 0
        var requests = 0
        var concurrent = 0
        var maximumConcurrent = 0
        /// Batches sent for the first time while the collector was throttling.
        var newBatchesDuringThrottle = 0
        /// While throttling: the number of requests that had arrived when the first 429/503 went out.
        var throttledAfterRequest: Int?
        var lastSuccessfulRequest = 0
        var sentRanges: [SequenceRange] = []
        var droppedReports: [DroppedRangesReport] = []
        /// The Content-Type of each batch request, in arrival order.
        var contentTypes: [String] = []
        /// The `Edge-Sync-Sent-At` of each batch request (nil when absent).
        var sentAtHeaders: [String?] = []
        var processingReports: [ProcessingCountsReport] = []
        /// The answer to `POST /v1/processing` (404: a collector that predates it).
        var processingStatus = 200
    }

    let state = Mutex(State())
    let maximumReadingsPerBatch: Int
    /// False plays a collector older than frame runs: 415 to them, before looking at the body.
    let acceptsFrameRuns: Bool
    let fault: @Sendable (_ request: Int, _ range: SequenceRange) -> Fault?

    init(
        maximumReadingsPerBatch: Int = .max, acceptsFrameRuns: Bool = true,
        fault: @escaping @Sendable (_ request: Int, _ range: SequenceRange) -> Fault? = { _, _ in nil }
    ) {
        self.maximumReadingsPerBatch = maximumReadingsPerBatch
        self.acceptsFrameRuns = acceptsFrameRuns
        self.fault = fault
    }

    func send(_ request: UploadRequest) async -> Result<UploadResponse, UploadTransportError> {
        let number = state.withLock { state in
            state.requests += 1
            state.concurrent += 1
            state.maximumConcurrent = max(state.maximumConcurrent, state.concurrent)
            return state.requests
        }
        // Let other deliveries overlap with this one, as a network round trip would.
        await Task.yield()
        defer { state.withLock { $0.concurrent -= 1 } }

        if request.path == ProtocolPath.droppedRanges {
            guard let report = try? JSONDecoder().decode(DroppedRangesReport.self, from: Data(request.body)) else {
                return .success(UploadResponse(status: 400))
            }
            state.withLock { $0.droppedReports.append(report) }
            return .success(UploadResponse(status: 204))
        }
        if request.path == ProtocolPath.processingCounts {
            guard let report = try? JSONDecoder().decode(ProcessingCountsReport.self, from: Data(request.body)) else {
                return .success(UploadResponse(status: 400))
            }
            return .success(
                UploadResponse(
                    status: state.withLock { state in
                        state.processingReports.append(report)
                        return state.processingStatus
                    }))
        }
        let isRun = request.contentType == FrameRun.mediaType
        state.withLock { state in
            state.contentTypes.append(request.contentType)
            state.sentAtHeaders.append(request.header(ProtocolHeader.sentAt))
        }
        if isRun && !acceptsFrameRuns {
            return .success(
                UploadResponse(
                    status: 415, body: Array(#"{"error":"unsupported_media_type","message":"not a frame"}"#.utf8)))
        }
        let decoded = isRun ? try? BatchDecoder().decodeRun(request.body) : try? BatchDecoder().decode(request.body)
        guard let batch = decoded, let range = SequenceRange(batch.sequences) else {
            return .success(
                UploadResponse(status: 400, body: Array(#"{"error":"malformed","message":"bad frame"}"#.utf8)))
        }
        state.withLock { state in
            if let mark = state.throttledAfterRequest, number > mark, !state.sentRanges.contains(range) {
                state.newBatchesDuringThrottle += 1
            }
            state.sentRanges.append(range)
        }
        let fault = fault(number, range)
        if case .respond(let answer) = fault {
            if case .success(let response) = answer, [429, 503].contains(response.status) {
                state.withLock { state in
                    // A throttle answer overtaken by a later request's success no longer describes the collector.
                    if number > state.lastSuccessfulRequest {
                        state.throttledAfterRequest = state.throttledAfterRequest ?? state.requests
                    }
                }
            }
            return answer
        }
        if batch.readings.count > maximumReadingsPerBatch {
            return .success(UploadResponse(status: 413))
        }
        let ack: BatchAcknowledgement = state.withLock { state in
            state.throttledAfterRequest = nil
            state.lastSuccessfulRequest = max(state.lastSuccessfulRequest, number)
            let added = state.received.insert(range)
            var accepted = 0
            for part in added {
                for sequence in part.first...part.last {
                    let reading = batch.readings[Int(sequence - batch.firstSequence)]
                    state.stored[sequence] = reading
                    state.storedKeys[sequence] = batch.seriesKeys[reading.series]
                    accepted += 1
                }
            }
            let duplicates = batch.readings.count - accepted
            state.duplicates += duplicates
            return BatchAcknowledgement(
                device: batch.device, stream: batch.stream, accepted: accepted, duplicates: duplicates,
                acknowledged: [range])
        }
        if case .loseAcknowledgement = fault {
            return .failure(UploadTransportError("connection reset after commit"))
        }
        guard let body = try? JSONEncoder().encode(ack) else { return .success(UploadResponse(status: 500)) }
        return .success(UploadResponse(status: 200, body: Array(body)))
    }
}
