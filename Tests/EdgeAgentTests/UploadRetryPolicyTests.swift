import EdgeSyncProtocol
import EdgeSyncTestSupport
import Testing

@testable import EdgeAgent

@Suite struct UploadRetryPolicyTests {
    let batch = SequenceRange(101, 200)
    var random = SeededRandom(seed: 7)

    func ack(_ ranges: [SequenceRange], device: String = "gw", stream: UInt64 = 42) -> UploadOutcome {
        .acknowledged(
            BatchAcknowledgement(device: device, stream: stream, accepted: 1, duplicates: 0, acknowledged: ranges))
    }

    @Test mutating func anAcknowledgementDeletesOnlyRangesInsideTheBatchSent() {
        var policy = UploadRetryPolicy()
        let decision = policy.decide(
            ack([SequenceRange(1, 150), SequenceRange(190, 500)]), for: batch, device: "gw", stream: 42,
            using: &random)
        #expect(decision == .acknowledge([SequenceRange(101, 150), SequenceRange(190, 200)]))
    }

    @Test mutating func anAcknowledgementForAnotherStreamDeletesNothing() {
        var policy = UploadRetryPolicy()
        for outcome in [ack([batch], stream: 43), ack([batch], device: "other")] {
            guard case .retry = policy.decide(outcome, for: batch, device: "gw", stream: 42, using: &random) else {
                Issue.record("expected a retry for \(outcome)")
                continue
            }
        }
    }

    @Test(arguments: [
        (400, "quarantine"), (415, "quarantine"), (401, "halt"), (403, "halt"), (413, "split"),
        (429, "retry"), (503, "retry"), (500, "retry"), (502, "retry"), (404, "retry"), (301, "retry"),
        (200, "retry"),  // a 2xx without a readable acknowledgement: resend, duplicates are harmless
    ])
    func everyStatusHasItsDocumentedReaction(code: Int, expected: String) {
        var random = SeededRandom(seed: UInt64(code))
        var policy = UploadRetryPolicy()
        let decision = policy.decide(
            .status(code: code, retryAfter: nil, message: "x"), for: batch, device: "gw", stream: 42, using: &random)
        let kind =
            switch decision {
            case .acknowledge: "acknowledge"
            case .retry: "retry"
            case .split: "split"
            case .quarantine: "quarantine"
            case .halt: "halt"
            }
        #expect(kind == expected)
    }

    @Test mutating func aSingleReadingTooLargeIsQuarantinedNotSplitForever() {
        var policy = UploadRetryPolicy()
        let decision = policy.decide(
            .status(code: 413, retryAfter: nil, message: ""), for: SequenceRange(7, 7), device: "gw", stream: 42,
            using: &random)
        guard case .quarantine = decision else {
            Issue.record("expected quarantine, got \(decision)")
            return
        }
    }

    @Test mutating func throttlingWaitsAtLeastRetryAfterAndNeverWidensTheWindow() {
        var configuration = UploadRetryPolicy.Configuration()
        configuration.maximumInFlight = 4
        var policy = UploadRetryPolicy(configuration: configuration)
        for _ in 0..<5 { _ = policy.decide(ack([batch]), for: batch, device: "gw", stream: 42, using: &random) }
        #expect(policy.window == 4)
        for _ in 0..<20 {
            let decision = policy.decide(
                .status(code: 429, retryAfter: .seconds(7), message: ""), for: batch, device: "gw", stream: 42,
                using: &random)
            guard case .retry(let wait, _) = decision else {
                Issue.record("expected retry")
                return
            }
            #expect(wait >= .seconds(7))
            #expect(policy.window == 1)
        }
    }

    /// Issue 17: after a long outage the backoff ceiling is at its cap, but a 503 with Retry-After
    /// (a collector whose disk is full) is retried when Retry-After has passed, not up to a minute later.
    @Test func retryAfterIsHonouredPromptlyWhateverTheBackoffBuiltUp() {
        var policy = UploadRetryPolicy()
        var random = SeededRandom(seed: 7)
        for _ in 0..<12 {
            _ = policy.decide(.transportFailure("refused"), for: batch, device: "gw", stream: 42, using: &random)
        }
        #expect(policy.backoffCeiling(afterFailures: policy.consecutiveFailures) == .seconds(60))
        for code in [503, 429, 503, 503] {
            let decision = policy.decide(
                .status(code: code, retryAfter: .seconds(10), message: "disk_full"), for: batch, device: "gw",
                stream: 42, using: &random)
            guard case .retry(let wait, let reason) = decision else {
                Issue.record("expected retry, got \(decision)")
                return
            }
            #expect(wait >= .seconds(10))
            #expect(wait <= .seconds(10) + policy.configuration.initialBackoff)
            #expect(reason.contains("disk_full"))
            #expect(policy.window == 1)
        }
        // Without Retry-After a 503 is an unknown failure again: the built-up backoff applies.
        var waits: [Duration] = []
        for _ in 0..<50 {
            if case .retry(let wait, _) = policy.decide(
                .status(code: 503, retryAfter: nil, message: ""), for: batch, device: "gw", stream: 42,
                using: &random)
            {
                waits.append(wait)
            }
        }
        #expect(waits.contains { $0 > .seconds(11) })
    }

    @Test func anUntrustedCertificateHaltsInsteadOfRetrying() {
        var policy = UploadRetryPolicy()
        var random = SeededRandom(seed: 1)
        let decision = policy.decide(
            .untrustedCollector("SSL peer certificate or SSH remote key was not OK"), for: SequenceRange(1, 2),
            device: "gw", stream: 42, using: &random)
        guard case .halt(let reason) = decision else {
            Issue.record("expected halt, got \(decision)")
            return
        }
        #expect(reason.contains("TLS certificate is not trusted"))
        #expect(reason.contains("collector.ca_file"))
        #expect(policy.window == 1)
    }

    @Test func backoffDoublesUpToTheCapAndJitterStaysBelowIt() {
        var configuration = UploadRetryPolicy.Configuration()
        configuration.initialBackoff = .milliseconds(100)
        configuration.maximumBackoff = .seconds(5)
        var policy = UploadRetryPolicy(configuration: configuration)
        #expect(policy.backoffCeiling(afterFailures: 1) == .milliseconds(100))
        #expect(policy.backoffCeiling(afterFailures: 4) == .milliseconds(800))
        #expect(policy.backoffCeiling(afterFailures: 7) == .seconds(5))
        #expect(policy.backoffCeiling(afterFailures: 10_000) == .seconds(5))
        var random = SeededRandom(seed: 1)
        var waits: [Duration] = []
        for failure in 1...200 {
            let decision = policy.decide(
                .transportFailure("reset"), for: SequenceRange(1, 2), device: "gw", stream: 42, using: &random)
            guard case .retry(let wait, let reason) = decision else {
                Issue.record("expected retry")
                return
            }
            #expect(reason == "reset")
            #expect(wait <= policy.backoffCeiling(afterFailures: failure))
            waits.append(wait)
        }
        #expect(policy.consecutiveFailures == 200)
        // Full jitter spreads the waits: they are not all at the ceiling.
        #expect(Set(waits).count > 150)
        #expect(waits.contains { $0 < .seconds(2) })
        _ = policy.decide(
            ack([SequenceRange(1, 2)]), for: SequenceRange(1, 2), device: "gw", stream: 42, using: &random)
        #expect(policy.consecutiveFailures == 0)
    }

    @Test func retryAfterParsesDeltaSecondsOnly() {
        #expect(RetryAfter.parse("120") == .seconds(120))
        #expect(RetryAfter.parse("0") == .zero)
        #expect(RetryAfter.parse("99999999") == .seconds(3600))
        for bad in ["", "-1", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT", " 5", "12345678901", "５"] {
            #expect(RetryAfter.parse(bad) == nil, "\(bad)")
        }
    }
}
