import Synchronization

/// A request body, read once: either collected whole or iterated as chunks while it arrives.
///
/// Iterating applies backpressure: when the handler falls behind, the server stops reading from the
/// socket until the handler catches up, so a large upload never sits in memory. The body has one
/// consumer; a second iteration sees only what the first left.
public struct HTTPRequestBody: Sendable, AsyncSequence {
    public typealias Element = [UInt8]

    enum Source: Sendable {
        case bytes([UInt8])
        case stream(BodyStream)
    }

    let source: Source

    /// An empty body.
    public init() { source = .bytes([]) }

    /// A body that is already complete, for tests and in-process use.
    public init(bytes: [UInt8]) { source = .bytes(bytes) }

    init(stream: BodyStream) { source = .stream(stream) }

    /// The whole body, or an error if it is longer than `limit` bytes.
    ///
    /// - Throws: `HTTPError` 413 when the body exceeds `limit`; whatever reading the body threw
    ///   (400 for a malformed chunked body, 408 when the client is too slow).
    public func collect(upTo limit: Int) async throws -> [UInt8] {
        var result: [UInt8] = []
        for try await chunk in self {
            guard chunk.count <= limit - result.count else { throw HTTPError.bodyTooLarge(limit: limit) }
            if result.isEmpty {
                result = chunk
            } else {
                result += chunk
            }
        }
        return result
    }

    /// Why reading the body failed (malformed chunked coding, a timeout, the client gone), once it has.
    var failure: HTTPError? {
        if case .stream(let stream) = source { return stream.failure }
        return nil
    }

    public func makeAsyncIterator() -> AsyncIterator {
        switch source {
        case .bytes(let bytes): AsyncIterator(pending: bytes.isEmpty ? nil : bytes, stream: nil)
        case .stream(let stream): AsyncIterator(pending: nil, stream: stream)
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var pending: [UInt8]?
        let stream: BodyStream?

        public mutating func next() async throws -> [UInt8]? {
            if let pending {
                self.pending = nil
                return pending
            }
            return try await stream?.next()
        }
    }
}

/// The hand-over point between the event loop, which pushes body bytes, and the handler, which pulls.
///
/// Pauses the connection's reading above a high-water mark and resumes it below a low-water mark,
/// through messages to the loop. Also sends `100 Continue` on the handler's first read, so a handler
/// that rejects a request without reading its body saves the client the upload.
final class BodyStream: Sendable {
    private struct State {
        var chunks: [[UInt8]] = []
        var head = 0
        var bufferedBytes = 0
        var isFinished = false
        var failure: HTTPError?
        var waiter: CheckedContinuation<[UInt8]?, any Error>?
        var isReadingPaused = false
        var needsContinue: Bool
        var isAbandoned = false
    }

    private let state: Mutex<State>
    private let connection: ConnectionHandle
    private let highWater: Int
    private let lowWater: Int

    init(connection: ConnectionHandle, needsContinue: Bool, highWater: Int = 256 * 1024) {
        self.connection = connection
        self.highWater = highWater
        self.lowWater = highWater / 4
        state = Mutex(State(needsContinue: needsContinue))
    }

    // MARK: Loop side

    /// Adds a piece of body; returns true when the loop should stop reading until told to resume.
    func push(_ bytes: [UInt8]) -> Bool {
        let (waiter, pause): (CheckedContinuation<[UInt8]?, any Error>?, Bool) = state.withLock { state in
            if state.isAbandoned { return (nil, false) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, false)
            }
            state.chunks.append(bytes)
            state.bufferedBytes += bytes.count
            if state.bufferedBytes >= highWater {
                state.isReadingPaused = true
                return (nil, true)
            }
            return (nil, false)
        }
        waiter?.resume(returning: bytes)
        return pause
    }

    func finish() {
        let waiter = state.withLock { state in
            state.isFinished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    func fail(_ error: HTTPError) {
        let waiter = state.withLock { state in
            if state.isFinished || state.failure != nil { return nil as CheckedContinuation<[UInt8]?, any Error>? }
            state.failure = error
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(throwing: error)
    }

    /// The response is complete; drop whatever body still arrives instead of buffering it.
    func abandon() {
        state.withLock { state in
            state.isAbandoned = true
            state.chunks = []
            state.head = 0
            state.bufferedBytes = 0
        }
    }

    /// Why the body failed, if it has.
    var failure: HTTPError? { state.withLock { $0.failure } }

    /// Whether `100 Continue` is still owed, that is, the handler never asked for the body.
    var isContinuePending: Bool { state.withLock { $0.needsContinue } }

    // MARK: Handler side

    func next() async throws -> [UInt8]? {
        let first = state.withLock { take(&$0) }
        signalLoop(first)
        switch first.step {
        case .value(let chunk): return chunk
        case .failure(let error): throw error
        case .wait: break
        }
        return try await withCheckedThrowingContinuation { continuation in
            let second = state.withLock { state in
                let taken = take(&state)
                if case .wait = taken.step { state.waiter = continuation }
                return taken
            }
            signalLoop(second)
            switch second.step {
            case .value(let chunk): continuation.resume(returning: chunk)
            case .failure(let error): continuation.resume(throwing: error)
            case .wait: break
            }
        }
    }

    private enum Step {
        case value([UInt8]?)
        case failure(HTTPError)
        case wait
    }

    private struct Taken {
        var step: Step
        var sendContinue = false
        var resumeReading = false
    }

    /// The next chunk, end or failure under the lock, and which loop messages that calls for.
    private func take(_ state: inout State) -> Taken {
        var taken = Taken(step: .wait)
        if state.needsContinue {
            state.needsContinue = false
            taken.sendContinue = true
        }
        if state.head < state.chunks.count {
            let chunk = state.chunks[state.head]
            state.head += 1
            if state.head == state.chunks.count {
                state.chunks.removeAll(keepingCapacity: true)
                state.head = 0
            }
            state.bufferedBytes -= chunk.count
            if state.isReadingPaused && state.bufferedBytes <= lowWater {
                state.isReadingPaused = false
                taken.resumeReading = true
            }
            taken.step = .value(chunk)
        } else if let failure = state.failure {
            taken.step = .failure(failure)
        } else if state.isFinished {
            taken.step = .value(nil)
        }
        return taken
    }

    /// Posted outside the lock, and before suspending, so the loop can act while the handler waits.
    private func signalLoop(_ taken: Taken) {
        if taken.sendContinue { connection.post(.sendContinue(connection.id)) }
        if taken.resumeReading { connection.post(.resumeReading(connection.id)) }
    }
}
