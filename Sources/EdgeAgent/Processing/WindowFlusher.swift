import EdgeSyncLogging

/// Stores the downsample windows of series that went quiet, on a timer, while the agent runs.
///
/// A window is stored when a later window of its series starts; a sensor that stops would leave
/// its last window in memory until shutdown (or the series-cache limit). Every `interval` this asks
/// the sink to store the windows that took no reading for one window width of their rule, so a
/// quiet series' last window reaches the spool at most a width plus an interval late.
///
/// `run()` ends by cancellation (the agent's shutdown, which stores every open window itself). The
/// clock is injected so tests advance time instead of waiting.
package struct WindowFlusher: Sendable {
    package let sink: ProcessingSink
    package let interval: Duration
    private let sleep: @Sendable (Duration) async throws -> Void
    package let logger: Logger
    /// Called after each check with the readings it stored (tests await it).
    package var onCheck: @Sendable (Int) -> Void = { _ in }

    package init(sink: ProcessingSink, interval: Duration, clock: some Clock<Duration>, logger: Logger) {
        self.sink = sink
        self.interval = interval
        self.sleep = { duration in try await clock.sleep(for: duration) }
        self.logger = logger
    }

    /// Half the shortest window, between 1 s and 60 s: a quiet window is stored within 1.5 widths
    /// (or a width plus a minute) of its last reading, and a check costs one pass over the series.
    package static func interval(shortestWindow nanoseconds: Int64) -> Duration {
        .nanoseconds(min(max(nanoseconds / 2, 1_000_000_000), 60_000_000_000))
    }

    package func run() async {
        while true {
            do {
                try await sleep(interval)
            } catch {
                return
            }
            do {
                onCheck(try await sink.flushQuietWindows())
            } catch {
                // The windows stay open (the sink put them back): stored at the next check.
                logger.warning("processing_windows_not_stored", ["error": .quoted(error.message)])
                onCheck(0)
            }
        }
    }
}
