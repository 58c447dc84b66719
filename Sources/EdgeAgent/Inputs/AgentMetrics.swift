import EdgeSyncMetrics
import Foundation
import HTTPCore

/// `GET /metrics` on the agent's HTTP input listener: inputs, spool and uploader in the Prometheus
/// text format. Every figure is read from the component when scraped. Names and meanings are listed
/// in `Docs/edge-agent.md`.
package struct AgentMetrics: Sendable {
    /// The spool's status (a small query), or nil when it cannot be read.
    package var spoolStatus: @Sendable () async -> SpoolStatus?
    /// The uploader's statistics since start, once it runs.
    package var uploadStatistics: @Sendable () async -> UploadStatistics?
    package var now: @Sendable () -> Int64 = InputEndpoints.wallClock
    /// The processing rules in front of the spool, when configured.
    package var processing: ProcessingSink?

    package init(
        spoolStatus: @escaping @Sendable () async -> SpoolStatus?,
        uploadStatistics: @escaping @Sendable () async -> UploadStatistics?
    ) {
        self.spoolStatus = spoolStatus
        self.uploadStatistics = uploadStatistics
    }

    func render(_ services: InputServices, timing: TimedResponder<InputEndpoints>) async -> Exposition {
        var out = Exposition()
        let http = services.endpoints.statistics
        var readings: [(labels: [(String, String)], value: Double)] = [
            ([("input", "http")], Double(http.readingsStored.load(ordering: .relaxed)))
        ]
        var rejected: [(labels: [(String, String)], value: Double)] = [
            ([("input", "http")], Double(http.rejectedLines.load(ordering: .relaxed)))
        ]
        var strings: [(labels: [(String, String)], value: Double)] = [
            ([("input", "http")], Double(http.skippedStringFields.load(ordering: .relaxed)))
        ]
        var rounded: [(labels: [(String, String)], value: Double)] = [
            ([("input", "http")], Double(http.roundedIntegers.load(ordering: .relaxed)))
        ]
        var dropped = 0
        for socket in services.sockets {
            let counters = socket.counters
            let input = socket.configuration.transport.rawValue
            readings.append(([("input", input)], Double(counters.readingsStored)))
            rejected.append(([("input", input)], Double(counters.rejectedLines)))
            strings.append(([("input", input)], Double(counters.skippedStringFields)))
            rounded.append(([("input", input)], Double(counters.roundedIntegers)))
            dropped += counters.droppedDatagrams
        }
        if let simulator = services.simulator {
            readings.append(([("input", "simulator")], Double(simulator.counters.readingsStored)))
        }
        let mqtt = services.mqtt?.counters
        if let mqtt { readings.append(([("input", "mqtt")], Double(mqtt.readingsStored))) }
        out.family("edge_agent_input_readings_total", "counter", "Readings made durable in the spool, by input.", readings)
        out.family("edge_agent_input_rejected_lines_total", "counter", "Malformed lines refused, by input.", rejected)
        out.family(
            "edge_agent_input_skipped_string_fields_total", "counter",
            "Line protocol string fields left out of stored lines (the spool holds numbers), by input.", strings)
        out.family(
            "edge_agent_input_rounded_integers_total", "counter",
            "Line protocol integers beyond 2^53 stored as the nearest Float64, by input.", rounded)
        out.family(
            "edge_agent_input_requests_total", "counter", "HTTP input requests answered, by route and status.",
            http.responseCounts.sorted { ($0.key.path, $0.key.status) < ($1.key.path, $1.key.status) }.map {
                ([("path", $0.key.path), ("code", String($0.key.status))], Double($0.value))
            })
        out.counter("edge_agent_input_received_bytes_total", "HTTP input body bytes received (as sent, before gzip inflation).", Double(http.bytesReceived.load(ordering: .relaxed)))
        out.counter("edge_agent_input_spool_refusals_total", "Input writes the spool refused (full, disk full, I/O error).", Double(http.spoolRefusals.load(ordering: .relaxed)))
        out.counter(
            "edge_agent_input_skipped_samples_total",
            "Remote write samples and OTLP points left out: stale markers, no recorded value, NaN and infinities.",
            Double(http.skippedSamples.load(ordering: .relaxed)))
        out.counter(
            "edge_agent_input_retried_readings_total",
            "HTTP input readings dropped as producer retries: identical to ones stored within the retry window.",
            Double(http.retriedReadings.load(ordering: .relaxed)))
        out.gauge(
            "edge_agent_input_retry_window_readings", "Readings the retry window remembers.",
            Double(services.endpoints.retryWindow?.rememberedCount ?? 0))
        out.counter(
            "edge_agent_input_rejected_points_total",
            "OTLP data points refused one by one (exponential histograms, points without a value).",
            Double(http.rejectedPoints.load(ordering: .relaxed)))
        out.counter("edge_agent_input_dropped_datagrams_total", "UDP datagrams dropped because the spool refused them.", Double(dropped))
        if let mqtt { MQTTInput.writeMetrics(mqtt, into: &out) }
        processing?.writeMetrics(into: &out)

        if let status = await spoolStatus() {
            out.gauge("edge_agent_spool_queued_readings", "Readings in the spool not yet acknowledged by the collector.", Double(status.queuedReadings))
            out.gauge("edge_agent_spool_queued_bytes", "Encoded bytes of the queued readings.", Double(status.queuedBytes))
            out.gauge("edge_agent_spool_file_bytes", "Size of the spool on disk, WAL included.", Double(status.spoolFileBytes))
            let age = status.oldestTimestamp.map { max(0, Double(now() - $0) / 1e9) } ?? 0
            out.gauge("edge_agent_spool_oldest_reading_age_seconds", "Now minus the timestamp of the oldest queued reading (0 when empty).", age)
            out.counter("edge_agent_spool_dropped_readings_total", "Readings removed unsent by the drop-oldest policy.", Double(status.droppedReadings))
            out.gauge("edge_agent_spool_quarantined_readings", "Readings the collector refused as malformed, kept aside.", Double(status.quarantinedReadings))
            out.gauge("edge_agent_spool_next_sequence", "The sequence number the next reading will get.", Double(status.nextSequence))
            out.gauge("edge_agent_spool_series", "Distinct series written today or yesterday (UTC), what spool.max_series limits.", Double(status.series))
            out.gauge("edge_agent_spool_max_series", "spool.max_series in force (0: no limit).", Double(status.maxSeries ?? 0))
            out.counter("edge_agent_spool_series_refused_readings_total", "Readings refused because their series were new past spool.max_series.", Double(status.seriesRefusedReadings))
        }
        if let upload = await uploadStatistics() {
            out.counter("edge_agent_upload_readings_total", "Readings the collector acknowledged (new and duplicate).", Double(upload.readingsAcknowledged))
            out.counter("edge_agent_upload_duplicate_readings_total", "Acknowledged readings the collector already had.", Double(upload.readingsDuplicate))
            out.counter("edge_agent_upload_batches_total", "Batches acknowledged.", Double(upload.batchesAcknowledged))
            out.counter("edge_agent_upload_sent_bytes_total", "Frame bytes sent, retries included.", Double(upload.bytesSent))
            out.gauge(
                "edge_agent_upload_batch_readings_average", "Mean readings per acknowledged batch.",
                upload.batchesAcknowledged > 0 ? Double(upload.readingsAcknowledged) / Double(upload.batchesAcknowledged) : 0)
            out.gauge("edge_agent_upload_compression_ratio", "Wire bytes per reading over 16 bytes per raw reading (compressed/original).", upload.compressionRatio)
            out.family(
                "edge_agent_upload_retries_total", "counter", "Failed upload attempts, by cause (HTTP status or transport).",
                upload.retries.sorted { $0.key < $1.key }.map { ([("reason", $0.key)], Double($0.value)) })
            out.counter("edge_agent_upload_splits_total", "Batches split because the collector found them too large.", Double(upload.splits))
            out.counter("edge_agent_upload_quarantined_readings_total", "Readings quarantined after the collector refused them as malformed.", Double(upload.readingsQuarantined))
            out.gauge("edge_agent_upload_halted", "1 when the collector refused this device's token and uploading stopped.", upload.haltReason == nil ? 0 : 1)
        }
        timing.write(into: &out, prefix: "edge_agent")
        return out
    }
}

/// The agent's HTTP listener: `/metrics`, then the input endpoints, all timed.
struct AgentHTTPResponder: HTTPResponder {
    let services: InputServices
    let metrics: AgentMetrics?
    let timed: TimedResponder<InputEndpoints>

    func respond(to request: HTTPRequest, context: HTTPRequestContext) async throws -> HTTPResponse {
        if request.path == "/metrics", let metrics {
            guard request.method == "GET" || request.method == "HEAD" else {
                return InputFailure(.methodNotAllowed, "method_not_allowed", "\(request.method) is not allowed here")
                    .response(.edgeSync)
            }
            return await metrics.render(services, timing: timed).response
        }
        return try await timed.respond(to: request, context: context)
    }
}
