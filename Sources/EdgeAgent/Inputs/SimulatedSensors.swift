import EdgeSyncCodec
import EdgeSyncLogging
import EdgeSyncProtocol
import Synchronization

/// A built-in producer for demos and benchmarks: `sensors` sensors, each reading `rateHz` times a
/// second, with values that look like real instruments (a mean-reverting random walk rounded to the
/// instrument's resolution, so the codec sees realistic decimals).
///
/// Sensor `i` reads one quantity, cycling through temperature (°C, 0.01), relative humidity (%, 0.1),
/// pressure (hPa, 0.1) and supply voltage (V, 0.001); its series key is
/// `sim,sensor=s0001 temperature` (line protocol naming, see `LineProtocolSeriesKey`).
package final class SimulatedSensors: Sendable {
    package struct Configuration: Sendable, Equatable {
        package var sensors: Int
        package var rateHz: Double
        /// Same seed, same values: runs can be compared.
        package var seed: UInt64 = 1

        package init(sensors: Int, rateHz: Double) {
            self.sensors = sensors
            self.rateHz = rateHz
        }

        /// Wall time between appends: one reading per sensor per tick up to 10 Hz, above that 100 ms
        /// worth of readings per sensor per tick.
        var tick: Duration { rateHz <= 10 ? .nanoseconds(Int64(1e9 / rateHz)) : .milliseconds(100) }
        /// Readings per sensor per tick, on average (above 10 Hz the fraction is carried from tick to tick).
        var readingsPerSensorPerTick: Double { rateHz <= 10 ? 1 : rateHz / 10 }

        /// One tick's append fits in one spool append (at most 1,000,000 readings).
        package var isFeasible: Bool {
            Double(sensors) * readingsPerSensorPerTick.rounded(.up) <= Double(DecodingLimits.default.maximumReadings)
        }
    }

    package struct Counters: Sendable, Equatable {
        package var readingsStored = 0
        package var readingsRefused = 0
        package var ticks = 0
    }

    private struct Instrument {
        var field: String
        var mean: Double
        var spread: Double
        var resolution: Double
    }

    private static let instruments = [
        Instrument(field: "temperature", mean: 21.5, spread: 3, resolution: 0.01),
        Instrument(field: "humidity", mean: 45, spread: 10, resolution: 0.1),
        Instrument(field: "pressure", mean: 1013.2, spread: 8, resolution: 0.1),
        Instrument(field: "voltage", mean: 3.3, spread: 0.05, resolution: 0.001),
    ]

    package let configuration: Configuration
    private let sink: any ReadingSink
    private let clock: any Clock<Duration>
    private let now: @Sendable () -> Int64
    private let logger: Logger
    private let state = Mutex(Counters())

    package init(
        configuration: Configuration, sink: any ReadingSink, clock: any Clock<Duration> = ContinuousClock(),
        now: @escaping @Sendable () -> Int64 = InputEndpoints.wallClock,
        logger: Logger = .discard
    ) {
        precondition(configuration.sensors > 0 && configuration.rateHz > 0)
        self.configuration = configuration
        self.sink = sink
        self.clock = clock
        self.now = now
        self.logger = logger
    }

    package var counters: Counters { state.withLock { $0 } }

    /// The series keys, in sensor order.
    package var seriesKeys: [String] {
        (0..<configuration.sensors).map { sensor in
            let name = "s" + String(repeating: "0", count: max(0, 4 - String(sensor + 1).count)) + String(sensor + 1)
            return LineProtocolSeriesKey.make(
                measurement: "sim", tags: [("sensor", name)], field: Self.instruments[sensor % Self.instruments.count].field)
        }
    }

    /// Produces until cancelled (or `ticks` ticks, when given); each tick is one durable append.
    package func run(ticks limit: Int? = nil) async {
        let keys = seriesKeys
        var random = SplitMix64(seed: configuration.seed)
        var levels = (0..<configuration.sensors).map { Self.instruments[$0 % Self.instruments.count].mean }
        let spacing = Int64(1e9 / configuration.rateHz)
        var owed = 0.0
        var done = 0
        while limit.map({ done < $0 }) ?? true, !Task.isCancelled {
            let start = now()
            owed += configuration.readingsPerSensorPerTick
            let perTick = Int(owed)
            owed -= Double(perTick)
            var readings: [Reading] = []
            readings.reserveCapacity(configuration.sensors * perTick)
            for step in 0..<perTick {
                for sensor in 0..<configuration.sensors {
                    let instrument = Self.instruments[sensor % Self.instruments.count]
                    // Mean-reverting walk: drifts, never wanders off.
                    let noise = (random.nextUnit() - 0.5) * instrument.spread * 0.05
                    levels[sensor] += (instrument.mean - levels[sensor]) * 0.01 + noise
                    // Dividing whole units by an exact power of ten gives the double nearest the decimal.
                    let scale = (1 / instrument.resolution).rounded()
                    let value = (levels[sensor] * scale).rounded() / scale
                    readings.append(Reading(series: sensor, timestamp: start + Int64(step) * spacing, value: value))
                }
            }
            do {
                _ = try await sink.appendWhole(seriesKeys: keys, readings: readings)
                state.withLock {
                    $0.readingsStored += readings.count
                    $0.ticks += 1
                }
            } catch {
                state.withLock {
                    $0.readingsRefused += readings.count
                    $0.ticks += 1
                }
                logger.warning(
                    "simulated_readings_refused", ["readings": "\(readings.count)", "error": .quoted(error.message)])
            }
            done += 1
            do {
                try await clock.sleep(for: configuration.tick, tolerance: nil)
            } catch {
                return
            }
        }
    }
}

/// A small, fast, seedable generator (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }
}
