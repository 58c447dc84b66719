import EdgeSyncCodec
import EdgeSyncProtocol

/// What `edge-agent status` shows about a spool. JSON keys are the snake_case names documented in
/// `Docs/edge-agent.md`.
package struct SpoolStatus: Sendable, Hashable, Encodable {
    package var device: String
    /// The random 64-bit stream id drawn when the spool file was created.
    package var stream: UInt64
    /// The sequence number the next reading will get.
    package var nextSequence: UInt64
    /// Readings stored and not yet acknowledged, excluding quarantined ones.
    package var queuedReadings: Int64
    /// Encoded payload bytes of those readings.
    package var queuedBytes: Int64
    /// Stored chunks waiting to be sent.
    package var queuedChunks: Int64
    /// Everything the spool takes on disk: database, `-wal` and `-shm`.
    package var spoolFileBytes: Int64
    /// Timestamp (ns since the epoch) of the oldest queued reading; `nil` when nothing is queued.
    package var oldestTimestamp: Int64?
    /// Readings removed by the `drop-oldest` policy since the spool was created.
    package var droppedReadings: Int64
    /// Dropped ranges not yet reported to the collector.
    package var unreportedDroppedRanges: Int64
    /// Readings the collector refused permanently (400/415); kept on disk, never sent again.
    package var quarantinedReadings: Int64
    package var quarantinedBytes: Int64
    package var fsync: FsyncPolicy
    package var maxBytes: Int64?
    /// `queued_bytes` over 16 bytes (a raw timestamp and value) per queued reading; `nil` when empty.
    package var compressionRatio: Double? {
        queuedReadings > 0 ? Double(queuedBytes) / Double(queuedReadings * 16) : nil
    }

    /// Seconds from the oldest queued reading's timestamp to `now` (ns since the epoch).
    package func oldestAgeSeconds(now: Int64) -> Double? {
        oldestTimestamp.map { Double(now - $0) / 1e9 }
    }
    package var whenFull: FullPolicy
    /// Distinct series written today or yesterday (UTC), what `spool.max_series` limits.
    package var series: Int64 = 0
    /// `spool.max_series` in force; nil without a limit.
    package var maxSeries: Int64? = nil
    /// Readings refused because their series were new past the limit, since the spool was created.
    package var seriesRefusedReadings: Int64 = 0
    /// What each processing rule did since the spool was created (`processing_counts`), by rule name.
    package var processing: [ProcessingRuleCounts] = []

    enum CodingKeys: String, CodingKey {
        case device, stream, fsync
        case nextSequence = "next_seq"
        case queuedReadings = "queued_readings"
        case queuedBytes = "queued_bytes"
        case queuedChunks = "queued_chunks"
        case spoolFileBytes = "spool_file_bytes"
        case oldestTimestamp = "oldest_timestamp"
        case droppedReadings = "dropped_readings"
        case unreportedDroppedRanges = "unreported_dropped_ranges"
        case quarantinedReadings = "quarantined_readings"
        case quarantinedBytes = "quarantined_bytes"
        case maxBytes = "max_bytes"
        case whenFull = "when_full"
        case compressionRatio = "compression_ratio"
        case series
        case maxSeries = "max_series"
        case seriesRefusedReadings = "series_refused_readings"
        case processing
    }

    /// Writes every key, `null` included, so readers of `status --json` always see the same keys.
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(device, forKey: .device)
        // A decimal string, as everywhere in the protocol, so no JSON reader rounds it.
        try container.encode(StreamID(stream), forKey: .stream)
        try container.encode(nextSequence, forKey: .nextSequence)
        try container.encode(queuedReadings, forKey: .queuedReadings)
        try container.encode(queuedBytes, forKey: .queuedBytes)
        try container.encode(queuedChunks, forKey: .queuedChunks)
        try container.encode(spoolFileBytes, forKey: .spoolFileBytes)
        try container.encode(oldestTimestamp, forKey: .oldestTimestamp)
        try container.encode(droppedReadings, forKey: .droppedReadings)
        try container.encode(unreportedDroppedRanges, forKey: .unreportedDroppedRanges)
        try container.encode(quarantinedReadings, forKey: .quarantinedReadings)
        try container.encode(quarantinedBytes, forKey: .quarantinedBytes)
        try container.encode(fsync, forKey: .fsync)
        try container.encode(maxBytes, forKey: .maxBytes)
        try container.encode(whenFull, forKey: .whenFull)
        try container.encode(compressionRatio, forKey: .compressionRatio)
        try container.encode(series, forKey: .series)
        try container.encode(maxSeries, forKey: .maxSeries)
        try container.encode(seriesRefusedReadings, forKey: .seriesRefusedReadings)
        try container.encode(processing, forKey: .processing)
    }
}

/// One stretch of readings handed to the uploader: a codec batch with contiguous sequence numbers.
package struct SpoolBatch: Sendable, Hashable {
    /// The readings, with the spool's device and stream and `sentAt` 0 (the uploader sets it).
    package var batch: Batch
    /// The sequence numbers the batch covers; acknowledge exactly these (or parts of them).
    package var range: SequenceRange
}
