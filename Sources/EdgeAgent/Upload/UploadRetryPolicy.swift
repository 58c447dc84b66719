import EdgeSyncProtocol

/// The uploader's reaction to each outcome, as a pure state machine: no I/O, no clock, randomness
/// injected, so every rule is tested directly.
///
/// Rules (also in `Docs/protocol.md`):
/// - 2xx with an acknowledgement: delete the acknowledged ranges that lie inside the batch sent;
///   failures reset; the window of batches in flight grows by one, up to `maximumInFlight`.
/// - 429 and 503 with Retry-After: wait Retry-After plus a jitter of at most `initialBackoff`, however
///   many failures came before (the collector said when to come back: a full disk freed, a queue
///   drained); the window drops to one. Without Retry-After, as other 5xx.
/// - Other 5xx, unexpected statuses and transport failures: capped exponential backoff with full
///   jitter; the window drops to one, so a struggling collector never sees more concurrency.
/// - 413: split the batch (quarantine when it holds one reading: it can never fit).
/// - 400 and 415: quarantine the batch.
/// - 401 and 403: halt uploading; data stays in the spool.
/// - A TLS certificate the configured CAs do not trust: halt likewise.
package struct UploadRetryPolicy: Sendable {
    /// How a halt for an untrusted TLS certificate begins, so commands can tell it from a refused token.
    package static let untrustedCertificateReason = "the collector's TLS certificate is not trusted"

    package struct Configuration: Sendable, Equatable {
        /// The backoff ceiling after the first failure; doubles with every further failure.
        package var initialBackoff = Duration.milliseconds(250)
        package var maximumBackoff = Duration.seconds(60)
        /// Batches in flight when the collector keeps up.
        package var maximumInFlight = 4

        package init() {}
    }

    package let configuration: Configuration
    /// Failures since the last success; drives the backoff.
    package private(set) var consecutiveFailures = 0
    /// How many batches may be in flight now, 1...maximumInFlight.
    package private(set) var window = 1

    package init(configuration: Configuration = Configuration()) {
        precondition(configuration.maximumInFlight >= 1, "at least one batch in flight")
        precondition(
            configuration.initialBackoff > .zero && configuration.maximumBackoff >= configuration.initialBackoff)
        self.configuration = configuration
    }

    /// Decides what to do with the batch covering `sent` after `outcome`.
    package mutating func decide(
        _ outcome: UploadOutcome,
        for sent: SequenceRange,
        device: String,
        stream: UInt64,
        using random: inout some RandomNumberGenerator
    ) -> UploadDecision {
        switch outcome {
        case .acknowledged(let acknowledgement):
            guard acknowledgement.device == device, acknowledgement.stream.value == stream else {
                // Never delete on an acknowledgement for someone else's data; resending is harmless.
                return failure(
                    retryAfter: nil,
                    reason: "acknowledgement names device \(acknowledgement.device) stream \(acknowledgement.stream), "
                        + "expected \(device) stream \(stream)",
                    using: &random)
            }
            consecutiveFailures = 0
            window = min(window + 1, configuration.maximumInFlight)
            let inside = acknowledgement.acknowledged.compactMap { range -> SequenceRange? in
                let first = max(range.first, sent.first)
                let last = min(range.last, sent.last)
                return first <= last ? SequenceRange(first, last) : nil
            }
            return .acknowledge(inside)

        case .status(let code, let retryAfter, let message):
            let reason = "HTTP \(code)" + (message.isEmpty ? "" : ": \(message)")
            switch code {
            case 401, 403:
                window = 1
                return .halt(reason: reason)
            case 413:
                return sent.count > 1 ? .split : .quarantine(reason: reason + " (a single reading exceeds the limit)")
            case 400, 415:
                return .quarantine(reason: reason)
            case 429, 503:
                guard let retryAfter else { return failure(retryAfter: nil, reason: reason, using: &random) }
                return throttled(retryAfter: retryAfter, reason: reason, using: &random)
            default:
                return failure(retryAfter: nil, reason: reason, using: &random)
            }

        case .transportFailure(let message):
            return failure(retryAfter: nil, reason: message, using: &random)

        case .untrustedCollector(let message):
            // Sending the readings to a server we cannot authenticate would hand them (and the
            // token) to whoever answers; retrying cannot fix a CA file.
            window = 1
            return .halt(reason: "\(Self.untrustedCertificateReason) (\(message)); check collector.ca_file")
        }
    }

    /// Records a failure and returns the wait: full jitter over the capped exponential ceiling,
    /// never shorter than the server's Retry-After.
    private mutating func failure(
        retryAfter: Duration?,
        reason: String,
        using random: inout some RandomNumberGenerator
    ) -> UploadDecision {
        consecutiveFailures += 1
        window = 1
        let ceiling = backoffCeiling(afterFailures: consecutiveFailures)
        let ceilingNanoseconds = Self.nanoseconds(ceiling)
        let jittered = Duration.nanoseconds(Int64.random(in: 0...ceilingNanoseconds, using: &random))
        return .retry(after: max(jittered, retryAfter ?? .zero), reason: reason)
    }

    /// Records a failure the collector gave a Retry-After for: it comes back then, not after the
    /// backoff earlier failures built up (which once made delivery resume 38 s after a collector's
    /// disk was freed). The small jitter keeps gateways told the same time from arriving together.
    private mutating func throttled(
        retryAfter: Duration,
        reason: String,
        using random: inout some RandomNumberGenerator
    ) -> UploadDecision {
        consecutiveFailures += 1
        window = 1
        let jitter = Duration.nanoseconds(
            Int64.random(in: 0...Self.nanoseconds(configuration.initialBackoff), using: &random))
        return .retry(after: retryAfter + jitter, reason: reason)
    }

    /// `initialBackoff × 2^(failures-1)`, capped at `maximumBackoff`.
    package func backoffCeiling(afterFailures failures: Int) -> Duration {
        let initial = Self.nanoseconds(configuration.initialBackoff)
        let maximum = Self.nanoseconds(configuration.maximumBackoff)
        let shift = min(max(failures - 1, 0), 62)
        let (scaled, overflow) = initial.multipliedReportingOverflow(by: Int64(1) << shift)
        return .nanoseconds(overflow ? maximum : min(scaled, maximum))
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : whole &+ attoseconds / 1_000_000_000
    }
}
