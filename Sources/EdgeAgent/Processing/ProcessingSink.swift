import EdgeSyncCodec
import EdgeSyncMetrics
import EdgeSyncProtocol
import Synchronization

/// The processing rules in front of the spool: every input writes through a `ReadingSink`, so
/// wrapping the spool in this sink applies the rules to HTTP, TCP/UDP, remote write, JSON, OTLP,
/// collectd, MQTT, the simulator and `import` in one place, after parsing and before the commit
/// (sequence numbers are given to what the rules keep, so a dropped reading is never a gap).
///
/// A write the rules leave untouched goes to the spool as it came. When the spool refuses a write,
/// the reducers' state is put back (`ProcessingEngine.restore`) and nothing is counted, so the
/// producer's retry is processed as if it were the first attempt.
package final class ProcessingSink: DeliveryRecordingSink {
    private let inner: any ReadingSink
    private let engine: Mutex<ProcessingEngine>
    private let totals: Mutex<[ProcessingCounts]>
    package let rules: [ProcessingRule]
    let now: @Sendable () -> Int64

    package init(
        rules: [ProcessingRule], capacity: Int, inner: any ReadingSink,
        initialCounts: [String: ProcessingCounts] = [:],
        now: @escaping @Sendable () -> Int64 = InputEndpoints.wallClock
    ) {
        self.inner = inner
        self.rules = rules
        self.now = now
        engine = Mutex(ProcessingEngine(rules: rules, capacity: capacity))
        totals = Mutex(rules.map { initialCounts[$0.name] ?? ProcessingCounts() })
    }

    /// Every rule's totals: those it started with plus what stored writes did since.
    package var counts: [(rule: ProcessingRule, counts: ProcessingCounts)] {
        let totals = totals.withLock { $0 }
        return Array(zip(rules, totals))
    }

    /// Series whose plans the engine holds now (at most the spool's series limit, see the engine).
    package var cachedSeries: Int { engine.withLock { $0.cachedSeries } }

    // MARK: ReadingSink

    package func append(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> SequenceRange {
        guard let range = try await appendWhole(seriesKeys: seriesKeys, readings: readings) else {
            throw SpoolError(.invalidInput, "the processing rules left none of the readings to store")
        }
        return range
    }

    package func appendWhole(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> SequenceRange? {
        try await store(seriesKeys, readings, nothingLeft: nil) { keys, readings throws(SpoolError) in
            try await inner.appendWhole(seriesKeys: keys, readings: readings)
        }
    }

    package func appendAdmitting(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> Spool.Admitted {
        try await store(seriesKeys, readings, nothingLeft: Spool.Admitted(range: nil)) {
            keys, readings throws(SpoolError) in
            try await inner.appendAdmitting(seriesKeys: keys, readings: readings)
        }
    }

    // MARK: DeliveryRecordingSink

    /// When the rules leave nothing to store the delivery is not recorded, as for an MQTT message
    /// that holds no readings.
    package func append(seriesKeys: [String], readings: [Reading], deliveries: DeliveryRecord)
        async throws(SpoolError) -> Spool.Admitted
    {
        guard let recorder = inner as? any DeliveryRecordingSink else {
            return try await appendAdmitting(seriesKeys: seriesKeys, readings: readings)
        }
        return try await store(seriesKeys, readings, nothingLeft: Spool.Admitted(range: nil)) {
            keys, readings throws(SpoolError) in
            try await recorder.append(seriesKeys: keys, readings: readings, deliveries: deliveries)
        }
    }

    package func deliveryPages(client: String) async throws(SpoolError) -> [DeliveryRecord.Page] {
        guard let recorder = inner as? any DeliveryRecordingSink else { return [] }
        return try await recorder.deliveryPages(client: client)
    }

    // MARK: Windows

    /// Stores the downsample windows idle for `idle` nanoseconds of the agent's clock (all of them
    /// when nil, at shutdown), so a sensor that stops does not leave its last window unsent.
    /// Returns the readings stored.
    @discardableResult
    package func flushWindows(idle: Int64?) async throws(SpoolError) -> Int {
        let time = now()
        return try await storeFlushed(engine.withLock { $0.flush(idleBefore: idle.map { time &- $0 }, now: time) })
    }

    /// Stores the downsample windows whose series took no reading for one window width of their
    /// rule (`WindowFlusher` calls it on a timer while the agent runs). Returns the readings stored.
    @discardableResult
    package func flushQuietWindows() async throws(SpoolError) -> Int {
        let time = now()
        return try await storeFlushed(engine.withLock { $0.flushQuietWindows(now: time) })
    }

    /// The smallest `every_seconds` of the downsample rules in nanoseconds; nil without one.
    package var shortestWindow: Int64? {
        rules.compactMap { rule -> Int64? in
            guard case .downsample(let downsample) = rule.action else { return nil }
            return downsample.window
        }.min()
    }

    private func storeFlushed(_ output: ProcessingEngine.Output?) async throws(SpoolError) -> Int {
        guard let output else { return 0 }
        do {
            _ = try await inner.appendAdmitting(seriesKeys: output.seriesKeys, readings: output.readings)
            settle(output, stored: true)
            return output.readings.count
        } catch {
            settle(output, stored: false)
            throw error
        }
    }

    // MARK: Internals

    /// Processes a write and hands the result to `write` (the original arrays when nothing
    /// changed); counts what a stored write did, and gives back the reducers' state of one refused.
    private func store<Answer>(
        _ seriesKeys: [String], _ readings: [Reading], nothingLeft: Answer,
        _ write: ([String], [Reading]) async throws(SpoolError) -> Answer
    ) async throws(SpoolError) -> Answer {
        let output = process(seriesKeys: seriesKeys, readings: readings)
        if output.isUnchanged { return try await write(seriesKeys, readings) }
        guard !output.readings.isEmpty else {
            settle(output, stored: true)
            return nothingLeft
        }
        do {
            let answer = try await write(output.seriesKeys, output.readings)
            settle(output, stored: true)
            return answer
        } catch {
            settle(output, stored: false)
            throw error
        }
    }

    private func process(seriesKeys: [String], readings: [Reading]) -> ProcessingEngine.Output {
        let time = now()
        return engine.withLock { $0.process(seriesKeys: seriesKeys, readings: readings, now: time) }
    }

    private func settle(_ output: ProcessingEngine.Output, stored: Bool) {
        guard stored else {
            if !output.undo.isEmpty { engine.withLock { $0.restore(output.undo) } }
            return
        }
        guard output.counts.contains(where: { !$0.isZero }) else { return }
        totals.withLock { totals in
            for (index, counts) in output.counts.enumerated() { totals[index] += counts }
        }
    }
}

extension ProcessingSink {
    /// `edge_agent_processing_readings_total{rule, type, outcome}` on the agent's `/metrics`
    /// (outcomes `dropped`, `flagged`, `reduced`, `emitted`; see `ProcessingCounts`).
    package func writeMetrics(into out: inout Exposition) {
        var samples: [(labels: [(String, String)], value: Double)] = []
        for (rule, counts) in counts {
            let outcomes: [(String, Int64)] = [
                ("dropped", counts.dropped), ("flagged", counts.flagged), ("reduced", counts.reduced),
                ("emitted", counts.emitted),
            ]
            for (outcome, value) in outcomes {
                samples.append(([("rule", rule.name), ("type", rule.typeName), ("outcome", outcome)], Double(value)))
            }
        }
        out.family(
            "edge_agent_processing_readings_total", "counter",
            "Readings a processing rule dropped, flagged, reduced (not stored as themselves) or emitted, by rule.",
            samples)
        out.gauge(
            "edge_agent_processing_series", "Series the processing rules hold plans and state for.",
            Double(cachedSeries))
    }
}
