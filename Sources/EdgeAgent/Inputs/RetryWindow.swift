import EdgeSyncCodec
import Synchronization

/// Producer retries at the edge: remembers the readings the HTTP inputs stored recently, so a client
/// that resends a write after losing the answer (InfluxDB clients and Telegraf do, on timeouts and
/// 5xx) does not store every reading twice.
///
/// A reading whose series key, timestamp and value bits are identical to one stored within the
/// window is dropped and counted as a retry; two different values at one timestamp are both kept.
/// Readings are remembered as 128-bit seeded fingerprints of (key bytes, timestamp, value bits), so
/// a false match needs a 128-bit collision. The window is the last `maximumEntries` stored
/// readings, none older than `maximumAge`; memory is 48-64 bytes per remembered reading.
///
/// A retry often arrives while the first attempt is still being written (the client timed out, not
/// the agent): readings identical to ones in flight wait for that attempt's outcome, then are
/// dropped if it stored them or admitted if it failed. Only readings that reached the spool are
/// remembered, so a write refused with 503 and retried is stored.
package final class RetryWindow: Sendable {
    package struct Configuration: Sendable, Equatable {
        /// How long a stored reading is remembered.
        package var maximumAge: Duration = .seconds(300)
        /// Most readings remembered; beyond it the oldest are forgotten first.
        package var maximumEntries = 262_144

        package init() {}
    }

    package let configuration: Configuration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let state: Mutex<State>
    private let seeds = (UInt64.random(in: .min ... .max), UInt64.random(in: .min ... .max))

    /// The fingerprints one admitted write holds in flight, to hand back to `finish`.
    package struct Admission: Sendable {
        fileprivate var fingerprints: [Fingerprint]
        /// Readings dropped as retries.
        package var retries: Int
    }

    fileprivate struct Fingerprint: Hashable, Sendable {
        var high: UInt64
        var low: UInt64
    }

    private struct State {
        var remembered: Set<Fingerprint> = []
        /// In storing order, for forgetting the oldest; `start` is the first live element.
        var order: [Fingerprint] = []
        var start = 0
        /// When each run of `order` was stored: (end index in `order`, instant).
        var stored: [(end: Int, at: ContinuousClock.Instant)] = []
        var storedStart = 0
        var inFlight: [Fingerprint: Int] = [:]
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    package init(
        configuration: Configuration = Configuration(),
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.configuration = configuration
        self.now = now
        state = Mutex(State())
    }

    package var rememberedCount: Int { state.withLock { $0.remembered.count } }
    /// Writes waiting for an identical write in flight to finish.
    package var waitingWrites: Int { state.withLock { $0.waiters.count } }

    /// Removes from `block` the readings stored within the window, waiting while identical ones are
    /// in flight; the rest are marked in flight until `finish`.
    package func admit(_ block: inout ReadingBlock) async -> Admission {
        let fingerprints = fingerprints(of: block)
        var keep = [Bool](repeating: true, count: fingerprints.count)
        var pending = Array(fingerprints.indices)
        while true {
            let waiting = state.withLock { state -> [Int] in
                expire(&state)
                var waiting: [Int] = []
                for index in pending {
                    if state.remembered.contains(fingerprints[index]) {
                        keep[index] = false
                    } else if state.inFlight[fingerprints[index]] != nil {
                        waiting.append(index)
                    }
                }
                // Checked and marked under one lock: two writes of the same readings cannot both pass.
                if waiting.isEmpty {
                    for index in fingerprints.indices where keep[index] {
                        state.inFlight[fingerprints[index], default: 0] += 1
                    }
                }
                return waiting
            }
            if waiting.isEmpty { break }
            await withCheckedContinuation { continuation in
                let stillBusy = state.withLock { state in
                    let busy = waiting.contains { state.inFlight[fingerprints[$0]] != nil }
                    if busy { state.waiters.append(continuation) }
                    return busy
                }
                if !stillBusy { continuation.resume() }
            }
            pending = waiting
        }
        let admitted = fingerprints.indices.filter { keep[$0] }.map { fingerprints[$0] }
        let retries = fingerprints.count - admitted.count
        if retries > 0 {
            var kept = ReadingBlock()
            for (index, reading) in block.incomingReadings.enumerated() where keep[index] { kept.append(reading) }
            block = kept
        }
        return Admission(fingerprints: admitted, retries: retries)
    }

    /// Ends an admitted write: its readings are remembered when `stored`, and whoever waits on them
    /// looks again.
    package func finish(_ admission: Admission, stored: Bool) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            for fingerprint in admission.fingerprints {
                if let count = state.inFlight[fingerprint], count > 1 {
                    state.inFlight[fingerprint] = count - 1
                } else {
                    state.inFlight[fingerprint] = nil
                }
            }
            if stored, !admission.fingerprints.isEmpty {
                for fingerprint in admission.fingerprints where state.remembered.insert(fingerprint).inserted {
                    state.order.append(fingerprint)
                }
                state.stored.append((state.order.count, now()))
                expire(&state)
            }
            let waiters = state.waiters
            state.waiters.removeAll()
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Forgets readings beyond the count or older than the age; compacts the arrays now and then.
    private func expire(_ state: inout State) {
        let oldest = now() - configuration.maximumAge
        while state.storedStart < state.stored.count, state.stored[state.storedStart].at < oldest {
            let end = state.stored[state.storedStart].end
            while state.start < end {
                state.remembered.remove(state.order[state.start])
                state.start += 1
            }
            state.storedStart += 1
        }
        while state.order.count - state.start > configuration.maximumEntries {
            state.remembered.remove(state.order[state.start])
            state.start += 1
        }
        if state.start > 4096, state.start * 2 > state.order.count {
            let shift = state.start
            state.order.removeFirst(shift)
            state.start = 0
            state.stored.removeFirst(state.storedStart)
            state.storedStart = 0
            for index in state.stored.indices { state.stored[index].end = max(0, state.stored[index].end - shift) }
        }
    }

    /// Two seeded hashes of each series key, continued over the reading's timestamp and value bits.
    private func fingerprints(of block: ReadingBlock) -> [Fingerprint] {
        let keyHashes = block.seriesKeys.map { key -> (UInt64, UInt64) in
            var key = key
            return key.withUTF8 { bytes in
                (
                    SeriesInterner.hash(UnsafeRawBufferPointer(bytes), seed: seeds.0),
                    SeriesInterner.hash(UnsafeRawBufferPointer(bytes), seed: seeds.1)
                )
            }
        }
        return block.readings.map { reading in
            let (high, low) = keyHashes[reading.series]
            let time = UInt64(bitPattern: reading.timestamp)
            let value = reading.value.bitPattern
            return Fingerprint(high: Self.mix(Self.mix(high, time), value), low: Self.mix(Self.mix(low, value), time))
        }
    }

    @inline(__always)
    private static func mix(_ hash: UInt64, _ word: UInt64) -> UInt64 {
        var mixed = (hash ^ word) &* 0xFF51_AFD7_ED55_8CCD
        mixed ^= mixed >> 33
        mixed = mixed &* 0xC4CE_B9FE_1A85_EC53
        return mixed ^ (mixed >> 29)
    }
}
