import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// SIGTERM and SIGINT as an `AsyncSequence`: a long-running command awaits the first one and shuts
/// down between units of work instead of dying in the middle of one.
package enum TerminationSignals {
    /// Starts catching SIGTERM and SIGINT (their default action, termination, is disabled while the
    /// stream is alive) and yields each signal number as it arrives.
    package static func stream() -> AsyncStream<Int32> {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        let queue = DispatchQueue(label: "edge-sync.signals")
        let sources = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
        let retained = SignalSources(sources: sources)
        continuation.onTermination = { _ in retained.cancel() }
        return stream
    }
}

/// Keeps the dispatch sources alive for as long as the stream is, and cancels them with it.
private final class SignalSources: @unchecked Sendable {
    // Set once in init; DispatchSource.cancel is thread-safe.
    private let sources: [any DispatchSourceSignal]

    init(sources: [any DispatchSourceSignal]) { self.sources = sources }

    func cancel() {
        for source in sources { source.cancel() }
        // Nobody listens any more: let the signals terminate the process again.
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
    }
}
