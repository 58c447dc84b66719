import Dispatch
import EdgeSyncLogging
import Foundation
import NATSJetStream
import Synchronization

/// Where the relay publishes: JetStream today; a Kafka producer would implement the same two
/// calls without touching ingest or the outbox.
package protocol StreamPublisher: AnyObject {
    /// Publishes `messages` and tells, per message, whether the stream has it now (stored, or
    /// recognised as a duplicate of one it has). Throws when the connection is gone.
    func publish(_ messages: [StreamMessage]) throws -> [PublishOutcome]
}

package enum PublishOutcome: Sendable, Equatable {
    case stored
    case duplicate
    /// Not taken; the message stays in the outbox and is tried again. The reason is logged.
    case refused(String)
}

/// JetStream behind `StreamPublisher`: one connection, made (and the stream ensured) on demand.
package final class JetStreamPublisher: StreamPublisher {
    package struct Configuration: Sendable, Equatable {
        package var client: JetStreamClient.Configuration
        /// Created at the first connection when missing (`nil`: the stream must exist).
        package var stream: JetStreamClient.StreamConfiguration?

        package init(client: JetStreamClient.Configuration, stream: JetStreamClient.StreamConfiguration?) {
            self.client = client
            self.stream = stream
        }
    }

    private let configuration: Configuration
    private var client: JetStreamClient?

    package init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    package func publish(_ messages: [StreamMessage]) throws -> [PublishOutcome] {
        let client = try connected()
        let results: [Result<JetStreamClient.Acknowledgement, JetStreamClient.Failure>]
        do {
            results = try client.publish(
                messages.map { JetStreamClient.Message(subject: $0.subject, messageID: $0.messageID, payload: $0.payload) })
        } catch {
            self.client = nil
            throw error
        }
        var sawTimeout = false
        let outcomes = results.map { result -> PublishOutcome in
            switch result {
            case .success(let ack): return ack.duplicate ? .duplicate : .stored
            case .failure(let failure):
                if case .timeout = failure { sawTimeout = true }
                return .refused(failure.description)
            }
        }
        // A late acknowledgement would be read as a later request's: start a new connection.
        if sawTimeout { drop() }
        return outcomes
    }

    package func drop() {
        client?.close()
        client = nil
    }

    private func connected() throws -> JetStreamClient {
        if let client { return client }
        let client = try JetStreamClient(configuration.client)
        if let stream = configuration.stream { try client.ensureStream(stream) }
        self.client = client
        return client
    }
}

/// Moves messages from the outbox to the stream on a thread of its own: reads the oldest waiting
/// messages, publishes them, removes those the stream now has, and on trouble waits (1 s doubling
/// to 30 s) and tries again. Ingest never waits for it; the outbox's bound is ingest's only tie.
///
/// Order: messages are published in outbox order; one the stream refuses stays and is retried
/// after those behind it went out, so order holds except around a refusal.
package final class StreamRelay: Sendable {
    package struct Configuration: Sendable {
        /// Messages per publish run.
        package var batchMessages = 256
        package var idleWait: Duration = .seconds(1)
        package var maximumBackoff: Duration = .seconds(30)

        package init() {}
    }

    /// What /metrics shows.
    package struct Counters: Sendable, Equatable {
        package var published: Int64 = 0
        package var duplicates: Int64 = 0
        package var refused: Int64 = 0
        package var failures: Int64 = 0
        package var publishedReadings: Int64 = 0
        /// Receive time of the oldest message still waiting (ns), nil when none waits.
        package var oldestWaitingCreatedAt: Int64?
        package var lastError: String?
    }

    private let configuration: Configuration
    /// The outbox's size as the store and this relay keep it (for /metrics).
    package let gauge: StreamOutboxGauge
    private let logger: Logger
    private let state = Mutex((counters: Counters(), stopping: false, started: false))
    private let finished = DispatchSemaphore(value: 0)
    private let makeReader: @Sendable () throws -> any StreamOutboxReader
    private let makePublisher: @Sendable () -> any StreamPublisher

    package init(
        configuration: Configuration = Configuration(), gauge: StreamOutboxGauge,
        reader: @escaping @Sendable () throws -> any StreamOutboxReader,
        publisher: @escaping @Sendable () -> any StreamPublisher,
        logger: Logger = .discard
    ) {
        self.configuration = configuration
        self.gauge = gauge
        self.makeReader = reader
        self.makePublisher = publisher
        self.logger = logger
    }

    package var counters: Counters { state.withLock { $0.counters } }

    /// Starts the relay thread (once; later calls do nothing).
    package func start() {
        let first = state.withLock { state in
            defer { state.started = true }
            return !state.started
        }
        guard first else { return }
        Thread { [self] in
            run()
            finished.signal()
        }.start()
    }

    /// Stops after the publish run in progress; returns once the thread has ended.
    /// Returns at once when the relay was never started; a relay stopped stays stopped.
    package func stop() {
        let running = state.withLock { state in
            defer { state.stopping = true }
            return state.started && !state.stopping
        }
        gauge.interrupt()
        if running { finished.wait() }
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    private func run() {
        var reader: (any StreamOutboxReader)?
        let publisher = makePublisher()
        var backoff = Duration.seconds(1)
        var failing = false
        while !isStopping {
            do {
                let outbox: any StreamOutboxReader
                if let reader {
                    outbox = reader
                } else {
                    // A new connection (at start, or after a database error): count what waits, so
                    // the bound holds for a backlog left by an earlier run.
                    outbox = try makeReader()
                    let size = try outbox.size()
                    gauge.reset(messages: size.messages, bytes: size.bytes)
                    reader = outbox
                }
                var counts = Counters()
                var refusal: String?
                var doneBytes: Int64 = 0
                let entries = try outbox.drain(limit: configuration.batchMessages) { entries in
                    state.withLock { $0.counters.oldestWaitingCreatedAt = entries.first?.createdAt }
                    let outcomes = try publisher.publish(entries.map(\.message))
                    var done: [Int64] = []
                    for (entry, outcome) in zip(entries, outcomes) {
                        switch outcome {
                        case .stored:
                            counts.published += 1
                            counts.publishedReadings += Int64(entry.message.readings)
                        case .duplicate:
                            counts.duplicates += 1
                        case .refused(let reason):
                            counts.refused += 1
                            refusal = reason
                            continue
                        }
                        done.append(entry.id)
                        doneBytes += Int64(entry.message.payload.count)
                    }
                    return done
                }
                guard !entries.isEmpty else {
                    // Empty: recount, so additions whose gauge update raced this relay's removals
                    // cannot leave the gauge above the truth.
                    let size = try outbox.size()
                    gauge.reset(messages: size.messages, bytes: size.bytes)
                    state.withLock { $0.counters.oldestWaitingCreatedAt = nil }
                    gauge.waitForAdditions(timeout: configuration.idleWait)
                    continue
                }
                let removed = counts.published + counts.duplicates
                gauge.removed(messages: removed, bytes: doneBytes)
                state.withLock {
                    $0.counters.published += counts.published
                    $0.counters.duplicates += counts.duplicates
                    $0.counters.refused += counts.refused
                    $0.counters.publishedReadings += counts.publishedReadings
                    if let refusal { $0.counters.lastError = refusal }
                }
                if failing {
                    logger.info("stream_publishing_resumed")
                    failing = false
                }
                backoff = .seconds(1)
                if let refusal {
                    logger.warning("stream_message_refused", ["error": .quoted(refusal)])
                    if removed == 0 { wait(backoff) }
                }
            } catch {
                state.withLock {
                    $0.counters.failures += 1
                    $0.counters.lastError = "\(error)"
                }
                if !failing {
                    logger.warning("stream_publish_failed", ["error": .quoted(error), "retry": "backoff"])
                    failing = true
                }
                if !(error is JetStreamClient.Failure) { reader = nil }
                wait(backoff)
                backoff = min(backoff * 2, configuration.maximumBackoff)
            }
        }
    }

    /// Waits `duration` unless stopped first.
    private func wait(_ duration: Duration) {
        let deadline = ContinuousClock.now + duration
        while !isStopping, ContinuousClock.now < deadline {
            gauge.waitForAdditions(timeout: min(.milliseconds(250), ContinuousClock.now.duration(to: deadline)))
        }
    }
}
