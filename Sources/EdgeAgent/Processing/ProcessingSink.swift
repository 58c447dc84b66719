import EdgeSyncCodec
import EdgeSyncMetrics
import EdgeSyncProtocol
import Synchronization

/// The processing rules in front of the spool: every input writes through a `ReadingSink`, so
/// wrapping the spool in this sink applies the rules to HTTP, TCP/UDP, remote write, JSON, OTLP,
/// collectd, MQTT, the simulator and `import` in one place, after parsing and before the commit
/// (sequence numbers are given to what the rules keep, so a dropped reading is never a gap).
///
/// A write the rules leave untouched goes to the spool as it came. When the inner sink is the
/// spool, what the rules did to a write (per rule: kept, dropped, flagged, reduced, emitted) is added to
/// its `processing_counts` table in the write's own transaction, also when the rules left no
/// reading to store; `edge-agent status` shows those totals. When the spool refuses a write,
/// the reducers' state is put back (`ProcessingEngine.restore`) and nothing is counted, so the
/// producer's retry is processed as if it were the first attempt.
package final class ProcessingSink: DeliveryRecordingSink {
    private let inner: any ReadingSink
    /// `inner` when it stores the counts with the readings (the spool), else nil.
    private let countStore: (any ProcessingCountStore)?
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
        self.countStore = inner as? any ProcessingCountStore
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
        try await store(seriesKeys, readings, nothingLeft: nil) { keys, readings, counts throws(SpoolError) in
            if let counting = countStore, !counts.isEmpty {
                return try await counting.append(
                    seriesKeys: keys, readings: readings, deliveries: nil, counts: counts, dropsOverLimit: false
                ).range
            }
            guard !readings.isEmpty else { return nil }
            return try await inner.appendWhole(seriesKeys: keys, readings: readings)
        }
    }

    package func appendAdmitting(seriesKeys: [String], readings: [Reading]) async throws(SpoolError) -> Spool.Admitted {
        try await store(seriesKeys, readings, nothingLeft: Spool.Admitted(range: nil)) {
            keys, readings, counts throws(SpoolError) in
            try await admit(keys, readings, deliveries: nil, counts: counts)
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
            keys, readings, counts throws(SpoolError) in
            if let counting = countStore, !counts.isEmpty {
                // Nothing left to store: the counts are stored, the delivery is not recorded.
                return try await counting.append(
                    seriesKeys: keys, readings: readings, deliveries: readings.isEmpty ? nil : deliveries,
                    counts: counts, dropsOverLimit: true)
            }
            guard !readings.isEmpty else { return Spool.Admitted(range: nil) }
            return try await recorder.append(seriesKeys: keys, readings: readings, deliveries: deliveries)
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
            _ = try await admit(output.seriesKeys, output.readings, deliveries: nil, counts: rowCounts(output))
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
    ///
    /// `write` gets the readings to store (possibly none, when the rules left nothing) and the
    /// counts to store with them (none when the rules counted nothing).
    private func store<Answer>(
        _ seriesKeys: [String], _ readings: [Reading], nothingLeft: Answer,
        _ write: ([String], [Reading], [ProcessingRuleCounts]) async throws(SpoolError) -> Answer
    ) async throws(SpoolError) -> Answer {
        let output = process(seriesKeys: seriesKeys, readings: readings)
        if output.isUnchanged { return try await write(seriesKeys, readings, []) }
        let counts = rowCounts(output)
        guard !output.readings.isEmpty || !counts.isEmpty else {
            settle(output, stored: true)
            return nothingLeft
        }
        do {
            let answer = try await write(output.seriesKeys, output.readings, counts)
            settle(output, stored: true)
            return answer
        } catch {
            settle(output, stored: false)
            throw error
        }
    }

    /// Stores what the series limit admits, with `counts` in the same transaction when the inner
    /// sink keeps counts (the spool).
    private func admit(
        _ keys: [String], _ readings: [Reading], deliveries: DeliveryRecord?, counts: [ProcessingRuleCounts]
    ) async throws(SpoolError) -> Spool.Admitted {
        if let counting = countStore, !counts.isEmpty {
            return try await counting.append(
                seriesKeys: keys, readings: readings, deliveries: deliveries, counts: counts, dropsOverLimit: true)
        }
        guard !readings.isEmpty else { return Spool.Admitted(range: nil) }
        return try await inner.appendAdmitting(seriesKeys: keys, readings: readings)
    }

    /// The output's non-zero counts by rule name, as the spool stores them.
    private func rowCounts(_ output: ProcessingEngine.Output) -> [ProcessingRuleCounts] {
        var rows: [ProcessingRuleCounts] = []
        for (index, counts) in output.counts.enumerated() where !counts.isZero {
            rows.append(ProcessingRuleCounts(rule: rules[index].name, type: rules[index].typeName, counts: counts))
        }
        return rows
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
    /// (outcomes `kept`, `dropped`, `flagged`, `reduced`, `emitted`; see `ProcessingCounts`).
    package func writeMetrics(into out: inout Exposition) {
        var samples: [(labels: [(String, String)], value: Double)] = []
        for (rule, counts) in counts {
            let outcomes: [(String, Int64)] = [
                ("kept", counts.kept), ("dropped", counts.dropped), ("flagged", counts.flagged),
                ("reduced", counts.reduced),
                ("emitted", counts.emitted),
            ]
            for (outcome, value) in outcomes {
                samples.append(([("rule", rule.name), ("type", rule.typeName), ("outcome", outcome)], Double(value)))
            }
        }
        out.family(
            "edge_agent_processing_readings_total", "counter",
            "Readings a processing rule kept, dropped, flagged, reduced (not stored as themselves) or emitted, by rule.",
            samples)
        out.gauge(
            "edge_agent_processing_series", "Series the processing rules hold plans and state for.",
            Double(cachedSeries))
    }
}
