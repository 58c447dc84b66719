import EdgeSyncProtocol

/// What the uploader has done since it started; shown by `edge-agent status`, `drain` and `/metrics`.
package struct UploadStatistics: Sendable, Equatable {
    /// Readings the collector acknowledged (new and duplicate).
    package var readingsAcknowledged: Int64 = 0
    /// Of those, readings the collector already had (a lost acknowledgement, a replay after a crash).
    package var readingsDuplicate: Int64 = 0
    package var batchesAcknowledged: Int64 = 0
    /// Frame bytes of every attempt, retries included: what went over the wire.
    package var bytesSent: Int64 = 0
    /// Frame bytes of acknowledged batches only.
    package var bytesAcknowledged: Int64 = 0
    package var readingsQuarantined: Int64 = 0
    /// Failed attempts by cause: `"429"`, `"503"`, `"500"`, `"transport"`, …
    package var retries: [String: Int64] = [:]
    package var splits: Int64 = 0
    /// Readings of acknowledged batches that went on the wire as the bytes the spool stored
    /// (the rest were decoded and encoded again: a cut chunk, a split, the version 2 fallback).
    package var readingsSentAsStored: Int64 = 0
    /// Set when the collector answered 415 to a frame run: batches go as single version 2 frames.
    package var sendsSingleFrames = false
    package var droppedRangesReported: Int64 = 0
    /// The most recent failure, for status output (never contains the token).
    package var lastError: String?
    /// Set when the collector refused this device (401/403): uploading has stopped.
    package var haltReason: String?

    package init() {}

    /// Bytes on the wire per acknowledged reading.
    package var bytesPerReading: Double {
        readingsAcknowledged > 0 ? Double(bytesAcknowledged) / Double(readingsAcknowledged) : 0
    }

    /// Compressed size over original size, the original counted as 16 bytes per reading (an Int64
    /// timestamp and a Float64 value, the least any uncompressed format needs).
    package var compressionRatio: Double { bytesPerReading / 16 }
}

/// Something the uploader did, for logs and progress displays.
package enum UploadEvent: Sendable {
    /// A batch was acknowledged; the statistics include it.
    case acknowledged(UploadStatistics)
    /// An attempt failed and the batch goes out again after `after`.
    case retrying(SequenceRange, after: Duration, reason: String)
    /// The collector will never take this range; it stays on disk, out of the queue.
    case quarantined(SequenceRange, reason: String)
    /// The collector refused the device; uploading stopped.
    case halted(reason: String)
    /// The collector does not take frame runs (415): from now on each batch is one version 2 frame,
    /// decoded and encoded again. Happens at most once per uploader.
    case fellBackToSingleFrames(reason: String)
}
