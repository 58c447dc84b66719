import EdgeSyncCodec
import EdgeSyncProtocol
import Foundation

/// Moves readings from an `UploadSource` (the spool) to the collector, exactly once in effect:
/// every queued reading is sent until acknowledged, and only acknowledged ranges are deleted.
///
/// A batch is a run of the spool's stored chunks, sent as their stored bytes (a frame run, with the
/// sender's clock in the `Edge-Sync-Sent-At` header): nothing is decoded or encoded again on the
/// happy path. Only a cut through a chunk (a range boundary, a split, the rest after a partial
/// acknowledgement) re-encodes that part, and a collector that answers 415 to frame runs gets each
/// batch as one version 2 frame instead, from then on.
///
/// Batches are cut by count (`maximumBatchReadings` live, `replayBatchReadings` while a backlog
/// drains), bytes (`maximumBatchBytes`) and age (`linger`: a partial batch leaves after waiting this
/// long for company).
/// Up to `retry.maximumInFlight` batches are in flight while the collector keeps up; the window
/// drops to one whenever it struggles (see `UploadRetryPolicy`). When the queue holds a backlog of
/// more than `liveThreshold` readings, the newest readings go out on a live lane beside the
/// backlog, so fresh data is not stuck behind a week of replay.
package actor Uploader {
    package struct Configuration: Sendable {
        /// Readings per batch while the queue is caught up, and on the live lane: small, so a reading
        /// waits for few others and a request is quick.
        package var maximumBatchReadings = 10_000
        /// Readings per batch on the backlog lane (more than `liveThreshold` queued): latency does
        /// not matter there, and long runs per series compress better and cost fewer requests.
        package var replayBatchReadings = 100_000
        /// Bodies larger than this are split before sending (a run at a frame boundary).
        package var maximumBatchBytes = 1 << 20
        /// How long a partial batch waits for more readings when the queue is caught up.
        package var linger = Duration.milliseconds(250)
        /// Backlog size (readings) from which the live lane sends the newest readings first.
        package var liveThreshold = 50_000
        /// While a backlog drains, every `liveEvery`-th batch is a live one (when fresh readings exist):
        /// fresh data waits for at most that many backlog batches, however slow the link.
        package var liveEvery = 8
        package var retry = UploadRetryPolicy.Configuration()
        /// How parts of chunks are encoded when a batch cuts one (the current version); the version 2
        /// fallback for a collector without frame runs ignores it.
        package var encoding = EncodingOptions()

        package init() {}
    }

    /// Whether `run` returns when the queue is empty (`edge-agent drain`) or keeps waiting.
    package enum Mode: Sendable {
        case continuous
        case untilEmpty
    }

    private let configuration: Configuration
    private let source: any UploadSource
    private let transport: any UploadTransport
    private let clock: any Clock<Duration>
    private let wallClock: @Sendable () -> Int64
    private var random: ErasedRandomNumberGenerator
    private var policy: UploadRetryPolicy

    /// Ranges handed to a delivery that has not finished: never handed out twice.
    private var claimed = SequenceRangeSet()
    /// The backlog lane's position: everything below it is claimed, acknowledged or quarantined.
    private var cursor: UInt64 = 1
    /// The highest sequence number the live lane has handed out.
    private var liveMark: UInt64 = 0
    private var dispatchesSinceLive = 0
    private var inFlight = 0
    private var slotWaiters: [CheckedContinuation<Void, Never>] = []
    private var isReportingDroppedRanges = false
    /// Set by an acknowledgement: the delivery's task reports dropped ranges once it is done.
    private var isDroppedRangesReportDue = false
    /// The processing counts the collector last stored; nil before the first report.
    private var reportedProcessingCounts: [ProcessingRuleCounts]?
    private var isReportingProcessingCounts = false
    /// The collector answered 404 (it predates `POST /v1/processing`): not asked again this run.
    private var isProcessingReportUnsupported = false
    private var eventHandler: (@Sendable (UploadEvent) -> Void)?
    /// False once the collector answered 415 to a frame run: it predates them, so every later batch
    /// goes as one version 2 frame (remembered for this collector while the process runs).
    private var sendsFrameRuns = true
    package private(set) var statistics = UploadStatistics()

    /// - Parameters:
    ///   - clock: paces retries and batching; tests pass a clock that does not really wait.
    ///   - wallClock: nanoseconds since the Unix epoch, sent with each request as `Edge-Sync-Sent-At`
    ///     (and as `sentAt` inside a version 2 fallback frame).
    package init(
        configuration: Configuration = Configuration(),
        source: any UploadSource,
        transport: any UploadTransport,
        clock: any Clock<Duration> = ContinuousClock(),
        wallClock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1e9) },
        random: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()
    ) {
        precondition(
            configuration.maximumBatchReadings >= 1 && configuration.replayBatchReadings >= 1,
            "a batch holds at least one reading")
        self.configuration = configuration
        self.source = source
        self.transport = transport
        self.clock = clock
        self.wallClock = wallClock
        self.random = ErasedRandomNumberGenerator(random)
        self.policy = UploadRetryPolicy(configuration: configuration.retry)
    }

    /// Receives every acknowledgement, retry, quarantine and halt as it happens (logs, progress).
    package func onEvent(_ handler: @escaping @Sendable (UploadEvent) -> Void) {
        eventHandler = handler
    }

    /// Uploads until cancelled (graceful stop: no new batch starts, attempts under way finish),
    /// until the collector refuses the device, or, in `.untilEmpty` mode, until nothing is queued.
    @discardableResult
    package func run(_ mode: Mode) async throws -> UploadStatistics {
        let (device, stream) = try await source.identity
        await withTaskGroup(of: Void.self) { deliveries in
            var lingered = false
            while !Task.isCancelled, statistics.haltReason == nil {
                await waitForSlot()
                if Task.isCancelled || statistics.haltReason != nil { break }
                let last: UInt64
                do {
                    last = try await source.lastSequence()
                } catch {
                    statistics.lastError = "reading the spool: \(error)"
                    try? await clock.sleep(for: policy.backoffCeiling(afterFailures: 3))
                    continue
                }
                let choice: Choice
                do {
                    choice = try await nextBatch(last: last, mayHold: mode == .continuous && !lingered)
                } catch {
                    statistics.lastError = "reading the spool: \(error)"
                    try? await clock.sleep(for: policy.backoffCeiling(afterFailures: 3))
                    continue
                }
                switch choice {
                case .send(let batch, let range):
                    lingered = false
                    claimed.insert(range)
                    inFlight += 1
                    deliveries.addTask {
                        await self.deliver(batch, device: device, stream: stream)
                        // After its slot is free, on the same child task: no task outlives `run`.
                        await self.reportDroppedRangesIfDue()
                        await self.reportProcessingCountsIfChanged()
                    }
                    continue
                case .hold:
                    // A partial batch: give it `linger` to gather company before sending.
                    try? await clock.sleep(for: configuration.linger)
                    lingered = true
                    continue
                case .nothing:
                    break
                }
                switch mode {
                case .untilEmpty:
                    if inFlight == 0 {
                        // Reports go out on the delivery tasks after acknowledgements: a drain waits
                        // for them and then reports what is left, so exiting never cuts a report
                        // short and drops are reported even when nothing was left to upload.
                        await deliveries.waitForAll()
                        await reportDroppedRanges()
                        await reportProcessingCountsIfChanged()
                        return
                    }
                    await waitForCompletion()
                case .continuous:
                    await source.waitForReadings(after: last)
                    lingered = false
                }
            }
            await deliveries.waitForAll()
        }
        // A cancelled run also waits for the deliveries above; report what stopped it.
        return statistics
    }

    // MARK: Choosing the next batch

    /// The first sequence number at or after the cursor that is not claimed.
    private func pendingStart(last: UInt64) -> UInt64 {
        guard cursor <= last else { return cursor }
        return claimed.missing(from: SequenceRange(cursor, last)).first?.first ?? last + 1
    }

    private enum Choice {
        case send(UploadBatch, SequenceRange)
        /// Readings are pending but too few for a full batch, and they have not waited `linger` yet.
        case hold
        case nothing
    }

    private func nextBatch(last: UInt64, mayHold: Bool) async throws -> Choice {
        while true {
            let start = pendingStart(last: last)
            guard start <= last else {
                // Everything up to `last` is delivered or being delivered.
                cursor = max(cursor, start)
                return .nothing
            }
            let pending = last - start + 1
            if pending > UInt64(configuration.liveThreshold), let live = try await liveBatch(last: last, start: start) {
                return live
            }
            // Right after start-up the queue is old data: send at once. Later, a trickle of fresh
            // readings waits `linger` so requests are not one reading each.
            if mayHold, pending < UInt64(configuration.maximumBatchReadings),
                statistics.batchesAcknowledged > 0 || inFlight > 0
            {
                return .hold
            }
            // The backlog lane sends the largest batches the limits allow.
            let size =
                pending > UInt64(configuration.liveThreshold)
                ? max(configuration.replayBatchReadings, configuration.maximumBatchReadings)
                : configuration.maximumBatchReadings
            let upper = nextClaimedStart(after: start).map { min($0 - 1, last) } ?? last
            // The range reaches as far as a replay batch, so that a stored chunk larger than a live
            // batch still goes whole (the spool hands out at most `size` readings otherwise).
            let reach = max(size, configuration.replayBatchReadings)
            let end = min(upper, start + UInt64(reach) - 1)
            let range = SequenceRange(start, end)
            if let batch = try await source.frames(
                in: range, maximumReadings: size, maximumBytes: configuration.maximumBatchBytes)
            {
                let fetched = batch.range
                if start == cursor { cursor = fetched.last + 1 }
                return .send(batch, fetched)
            }
            // Nothing queued in this range any more (acknowledged or quarantined meanwhile).
            if start >= cursor { cursor = end + 1 }
        }
    }

    private func liveBatch(last: UInt64, start: UInt64) async throws -> Choice? {
        guard dispatchesSinceLive >= configuration.liveEvery - 1 else {
            dispatchesSinceLive += 1
            return nil
        }
        let size = UInt64(configuration.maximumBatchReadings)
        let first = max(liveMark + 1, start, last >= size ? last - size + 1 : 1)
        guard first <= last else { return nil }
        let range = SequenceRange(first, last)
        guard claimed.missing(from: range) == [range] else { return nil }
        guard
            let batch = try await source.frames(
                in: range, maximumReadings: configuration.maximumBatchReadings,
                maximumBytes: configuration.maximumBatchBytes)
        else {
            return nil
        }
        liveMark = last
        dispatchesSinceLive = 0
        return .send(batch, batch.range)
    }

    private func nextClaimedStart(after sequence: UInt64) -> UInt64? {
        claimed.ranges.first { $0.first > sequence }?.first
    }

    // MARK: Delivering one batch

    private func deliver(_ batch: UploadBatch, device: String, stream: UInt64) async {
        defer {
            inFlight -= 1
            wakeWaiters()
        }
        var pending = [batch]
        while let current = pending.popLast() {
            let range = current.range
            let next = await attempt(current, range: range, device: device, stream: stream)
            switch next {
            case .done:
                claimed.remove(range)
            case .again(let parts):
                pending.append(contentsOf: parts.reversed())
            case .stop:
                return
            }
        }
    }

    private enum AttemptResult {
        case done
        /// Deliver these parts next (split halves, or the remainder after a partial acknowledgement).
        case again([UploadBatch])
        /// Leave the batch claimed and stop (halted, or cancelled while waiting to retry).
        case stop
    }

    /// The request for `batch`: a frame run of its frames, or (for a collector without frame runs)
    /// one version 2 frame of its readings with the clock inside as well.
    private func request(for batch: UploadBatch, sentAt: Int64) throws(CodecError) -> UploadRequest {
        let clock = [(name: ProtocolHeader.sentAt, value: String(sentAt))]
        if sendsFrameRuns {
            return UploadRequest(
                path: ProtocolPath.batches, contentType: FrameRun.mediaType, body: batch.runBody, headers: clock)
        }
        var readings = try batch.decoded()
        readings.sentAt = sentAt
        let frame = try BatchEncoder(options: EncodingOptions(version: .v2)).encode(readings)
        return UploadRequest(path: ProtocolPath.batches, contentType: FrameHeader.mediaType, body: frame, headers: clock)
    }

    private func attempt(_ batch: UploadBatch, range: SequenceRange, device: String, stream: UInt64) async
        -> AttemptResult
    {
        while true {
            let upload: UploadRequest
            do {
                upload = try request(for: batch, sentAt: wallClock())
            } catch {
                return await quarantine(range, reason: "cannot encode: \(error)")
            }
            let frame = upload.body
            if frame.count > configuration.maximumBatchBytes, range.count > 1 {
                statistics.splits += 1
                return await halves(of: batch, range: range)
            }
            let response = await transport.send(upload)
            let outcome = Self.outcome(of: response)
            // A refused certificate ends the handshake before a byte of the frame leaves; any other
            // attempt may have sent some or all of it and counts in full.
            if case .untrustedCollector = outcome {} else { statistics.bytesSent += Int64(frame.count) }
            if case .status(415, _, let message) = outcome, upload.contentType == FrameRun.mediaType {
                // A collector older than frame runs refuses them before reading the body: send this
                // batch (and every later one) as one version 2 frame, which every collector reads.
                if sendsFrameRuns {
                    // Once per uploader, however many runs were in flight.
                    sendsFrameRuns = false
                    statistics.sendsSingleFrames = true
                    eventHandler?(.fellBackToSingleFrames(reason: message))
                }
                continue
            }
            let decision = policy.decide(outcome, for: range, device: device, stream: stream, using: &random)
            switch decision {
            case .acknowledge(let ranges):
                do {
                    try await source.acknowledge(ranges)
                } catch {
                    // Not deleted: the readings stay queued and go out again after a restart; the
                    // collector drops them as duplicates.
                    statistics.lastError = "deleting acknowledged readings: \(error)"
                    return .stop
                }
                record(acknowledged: ranges, outcome: outcome, frameBytes: frame.count)
                if upload.contentType == FrameRun.mediaType { statistics.readingsSentAsStored += Int64(batch.storedReadings) }
                let acknowledged = SequenceRangeSet(ranges)
                let rest = acknowledged.missing(from: range)
                if rest.isEmpty { return .done }
                // The collector confirmed only part: resend the rest after a pause.
                statistics.lastError = "collector acknowledged \(acknowledged) of \(range)"
                try? await clock.sleep(for: policy.backoffCeiling(afterFailures: 1))
                for part in acknowledged.ranges { claimed.remove(part) }
                do {
                    return .again(try rest.map { part throws(CodecError) in try batch.slice(part, options: configuration.encoding) })
                } catch {
                    return await quarantine(range, reason: "cannot encode the unacknowledged rest: \(error)")
                }
            case .retry(let wait, let reason):
                let key: String =
                    switch outcome {
                    case .status(let code, _, _): String(code)
                    default: "transport"
                    }
                statistics.retries[key, default: 0] += 1
                statistics.lastError = reason
                eventHandler?(.retrying(range, after: wait, reason: reason))
                do {
                    try await clock.sleep(for: wait)
                } catch {
                    return .stop
                }
                if Task.isCancelled { return .stop }
                // A replay batch larger than a live one that timed out goes again in halves, down to
                // the live size: a link or a collector that cannot take 100,000 readings within the
                // request timeout still drains. A refused connection says nothing about the size, so
                // an offline gateway keeps its batches (and encodes nothing again) while it waits.
                if batch.range.count > UInt64(configuration.maximumBatchReadings), case .failure(let error) = response,
                    error.isTimeout
                {
                    statistics.splits += 1
                    return await halves(of: batch, range: range)
                }
            case .split:
                statistics.splits += 1
                return await halves(of: batch, range: range)
            case .quarantine(let reason):
                return await quarantine(range, reason: reason)
            case .halt(let reason):
                statistics.haltReason = reason
                statistics.lastError = reason
                eventHandler?(.halted(reason: reason))
                wakeWaiters()
                return .stop
            }
        }
    }

    private func halves(of batch: UploadBatch, range: SequenceRange) async -> AttemptResult {
        do {
            return .again(try batch.halves(options: configuration.encoding))
        } catch {
            return await quarantine(range, reason: "cannot split: \(error)")
        }
    }

    private func quarantine(_ range: SequenceRange, reason: String) async -> AttemptResult {
        do {
            try await source.quarantine(range, reason: reason)
        } catch {
            statistics.lastError = "quarantining \(range): \(error)"
            return .stop
        }
        statistics.readingsQuarantined += Int64(range.count)
        statistics.lastError = "quarantined \(range): \(reason)"
        eventHandler?(.quarantined(range, reason: reason))
        return .done
    }

    private func record(acknowledged ranges: [SequenceRange], outcome: UploadOutcome, frameBytes: Int) {
        let count = ranges.reduce(Int64(0)) { $0 + Int64($1.count) }
        statistics.readingsAcknowledged += count
        if case .acknowledged(let ack) = outcome { statistics.readingsDuplicate += Int64(ack.duplicates) }
        statistics.batchesAcknowledged += 1
        statistics.bytesAcknowledged += Int64(frameBytes)
        eventHandler?(.acknowledged(statistics))
        if !isReportingDroppedRanges { isDroppedRangesReportDue = true }
    }

    private func reportDroppedRangesIfDue() async {
        guard isDroppedRangesReportDue, !isReportingDroppedRanges else { return }
        isDroppedRangesReportDue = false
        isReportingDroppedRanges = true
        await reportDroppedRanges()
    }

    /// Tells the collector about ranges the drop-oldest policy removed; retried after the next
    /// acknowledged batch if it fails.
    private func reportDroppedRanges() async {
        defer { isReportingDroppedRanges = false }
        guard let ranges = try? await source.unreportedDroppedRanges(), !ranges.isEmpty,
            let (device, stream) = try? await source.identity
        else { return }
        let report = DroppedRangesReport(device: device, stream: stream, dropped: ranges)
        guard let body = try? JSONEncoder().encode(report) else { return }
        let response = await transport.send(
            UploadRequest(path: ProtocolPath.droppedRanges, contentType: "application/json", body: Array(body)))
        guard case .success(let answer) = response, (200..<300).contains(answer.status) else {
            statistics.lastError = "reporting dropped ranges: \(Self.describe(response))"
            return
        }
        try? await source.markDroppedRangesReported(ranges)
        statistics.droppedRangesReported += Int64(ranges.count)
    }

    /// Sends the processing rules' totals when they changed since the collector last stored them.
    /// Totals, so a lost or repeated report does no harm: the next one carries everything. A
    /// collector that answers 404 predates the endpoint and is not asked again; the counts stay in
    /// the spool (`edge-agent status`).
    private func reportProcessingCountsIfChanged() async {
        guard !isProcessingReportUnsupported, !isReportingProcessingCounts else { return }
        isReportingProcessingCounts = true
        defer { isReportingProcessingCounts = false }
        guard let counts = try? await source.processingCounts(), !counts.isEmpty, counts != reportedProcessingCounts,
            let (device, stream) = try? await source.identity
        else { return }
        let report = ProcessingCountsReport(
            device: device, stream: stream,
            rules: counts.map {
                .init(
                    rule: $0.rule, type: $0.type, kept: $0.counts.kept, dropped: $0.counts.dropped,
                    flagged: $0.counts.flagged, reduced: $0.counts.reduced, emitted: $0.counts.emitted)
            })
        guard let body = try? JSONEncoder().encode(report) else { return }
        let response = await transport.send(
            UploadRequest(path: ProtocolPath.processingCounts, contentType: "application/json", body: Array(body)))
        switch response {
        case .success(let answer) where (200..<300).contains(answer.status):
            reportedProcessingCounts = counts
        case .success(let answer) where answer.status == 404 || answer.status == 405:
            isProcessingReportUnsupported = true
        default:
            statistics.lastError = "reporting processing counts: \(Self.describe(response))"
        }
    }

    // MARK: Flow control

    private func waitForSlot() async {
        while inFlight >= policy.window, statistics.haltReason == nil {
            await waitForCompletion()
        }
    }

    private func waitForCompletion() async {
        await withCheckedContinuation { slotWaiters.append($0) }
    }

    private func wakeWaiters() {
        let waiters = slotWaiters
        slotWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Interpreting answers

    static func outcome(of response: Result<UploadResponse, UploadTransportError>) -> UploadOutcome {
        switch response {
        case .failure(let error):
            return error.isUntrustedCollector ? .untrustedCollector(error.message) : .transportFailure(error.message)
        case .success(let answer):
            if (200..<300).contains(answer.status),
                let ack = try? JSONDecoder().decode(BatchAcknowledgement.self, from: Data(answer.body))
            {
                return .acknowledged(ack)
            }
            return .status(code: answer.status, retryAfter: answer.retryAfter, message: errorMessage(answer.body))
        }
    }

    /// The collector's `ErrorBody.message`, or the start of whatever the body holds.
    static func errorMessage(_ body: [UInt8]) -> String {
        if let error = try? JSONDecoder().decode(ErrorBody.self, from: Data(body)) { return error.message }
        return String(decoding: body.prefix(200), as: UTF8.self)
    }

    private static func describe(_ response: Result<UploadResponse, UploadTransportError>) -> String {
        switch response {
        case .failure(let error): error.message
        case .success(let answer): "HTTP \(answer.status): \(errorMessage(answer.body))"
        }
    }
}

/// Lets the actor keep an injected generator of any type and still pass it `inout` to generic code.
private struct ErasedRandomNumberGenerator: RandomNumberGenerator, Sendable {
    private var base: any RandomNumberGenerator & Sendable

    init(_ base: any RandomNumberGenerator & Sendable) { self.base = base }

    mutating func next() -> UInt64 { base.next() }
}
