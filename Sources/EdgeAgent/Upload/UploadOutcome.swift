import EdgeSyncProtocol

/// What came back from one attempt to deliver a batch.
package enum UploadOutcome: Sendable, Equatable {
    /// A 2xx whose body parsed as the collector's acknowledgement.
    case acknowledged(BatchAcknowledgement)
    /// Any other HTTP answer (including a 2xx whose body was unreadable).
    case status(code: Int, retryAfter: Duration?, message: String)
    /// No HTTP answer: refused, reset, timed out, TLS failure.
    case transportFailure(String)
    /// The collector's TLS certificate failed verification against the trusted CAs.
    case untrustedCollector(String)
}

/// What the uploader does next with a batch, decided by `UploadRetryPolicy`.
package enum UploadDecision: Sendable, Equatable {
    /// Delete exactly these ranges from the spool.
    case acknowledge([SequenceRange])
    /// Send the same batch again after waiting.
    case retry(after: Duration, reason: String)
    /// The collector found the batch too large (413): send it again in two halves.
    case split
    /// The collector will never accept this batch (400, 415, or 413 for a single reading): keep it on
    /// disk aside from the queue, count it, and move on.
    case quarantine(reason: String)
    /// The collector refuses this device (401, 403), or its TLS certificate is not trusted: stop
    /// uploading, keep every reading, and say so.
    case halt(reason: String)
}
