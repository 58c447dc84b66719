import EdgeSyncCodec
import EdgeSyncProtocol

/// Where the uploader takes readings from and reports back to: the spool, or a fake in tests.
package protocol UploadSource: Sendable {
    /// The device and stream every batch from this source belongs to.
    var identity: (device: String, stream: UInt64) { get async throws }

    /// The highest sequence number appended so far (0 when nothing ever was).
    func lastSequence() async throws -> UInt64

    /// Resumes once a reading with a sequence number above `sequence` exists (at once if one does),
    /// or when the calling task is cancelled.
    func waitForReadings(after sequence: UInt64) async

    /// The oldest queued readings with sequence numbers in `range`, at most `maximumReadings`, as
    /// frames covering one contiguous run; nil when nothing in `range` is queued. Acknowledged and
    /// quarantined readings are never returned. A source that stores encoded chunks returns them as
    /// they are where they fit (it may then stop short of `maximumReadings` at a chunk boundary, and
    /// stays within `maximumBytes` unless the first frame alone is larger).
    func frames(in range: SequenceRange, maximumReadings: Int, maximumBytes: Int) async throws -> UploadBatch?

    /// Deletes exactly these ranges: the collector has stored them.
    func acknowledge(_ ranges: [SequenceRange]) async throws

    /// Moves `range` aside (kept on disk, counted, never handed out again).
    func quarantine(_ range: SequenceRange, reason: String) async throws

    /// Ranges removed by the drop-oldest policy that the collector has not been told about yet.
    func unreportedDroppedRanges() async throws -> [SequenceRange]

    func markDroppedRangesReported(_ ranges: [SequenceRange]) async throws

    /// What the processing rules did so far, per rule (the spool's `processing_counts`), reported
    /// to the collector after acknowledgements when it changed.
    func processingCounts() async throws -> [ProcessingRuleCounts]
}

extension UploadSource {
    /// A source without processing rules has nothing to report.
    package func processingCounts() async throws -> [ProcessingRuleCounts] { [] }
}
