import EdgeSyncCodec
import EdgeSyncTestSupport

enum Fixtures {
    /// Float64 values that break naive encoders.
    static let edgeValues: [Double] = [
        0, -0.0, 1, -1, .infinity, -.infinity, .nan, -.nan,
        Double(bitPattern: 0x7FF0_0000_0000_0001),  // signalling NaN
        Double(bitPattern: 0x7FF8_DEAD_BEEF_0001),  // NaN with payload
        Double(bitPattern: 0xFFF4_0000_0000_1234),  // negative NaN with payload
        .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude,
        Double(bitPattern: 0x000F_FFFF_FFFF_FFFF),  // largest subnormal
        .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .ulpOfOne, 0.1, 0.2, 0.30000000000000004,
        1e300, -1e-300, 9_007_199_254_740_992, 4.611686018427388e18, 123_456_789_012_345_680,
        13.200000000000044, 21.37, -40.5, 1_500_000,
    ]

    static func batch(
        readings: [Reading], seriesCount: Int, firstSequence: UInt64 = 1, device: String = "gw-7"
    ) -> Batch {
        Batch(
            device: device, stream: 0xDEAD_BEEF_0123_4567, firstSequence: firstSequence,
            seriesKeys: (0..<seriesCount).map { "sensor.\($0),unit=c" }, readings: readings,
            sentAt: 1_732_000_000_123_456_789)
    }

    /// Readings of several shapes: smooth decimals, integers, noise, constant, mixed in one batch.
    static func randomBatch(seed: UInt64, count: Int, seriesCount: Int) -> Batch {
        var random = SeededRandom(seed: seed)
        var time = Int64.random(in: -1_000_000_000_000_000_000...2_000_000_000_000_000_000, using: &random)
        var levels = (0..<seriesCount).map { _ in Double.random(in: -100...100, using: &random) }
        let shapes = (0..<seriesCount).map { _ in Int.random(in: 0..<6, using: &random) }
        let ordered = Bool.random(using: &random)
        var readings: [Reading] = []
        readings.reserveCapacity(count)
        for index in 0..<count {
            let series = ordered ? index % seriesCount : Int.random(in: 0..<seriesCount, using: &random)
            time &+= Int64.random(in: 0...3, using: &random) == 0 ? Int64.random(in: -5_000...10_000_000_000, using: &random) : 1_000_000_000
            levels[series] += Double.random(in: -0.5...0.5, using: &random)
            let value: Double
            switch shapes[series] {
            case 0: value = (levels[series] * 100).rounded() / 100
            case 1: value = levels[series].rounded()
            case 2: value = Double(bitPattern: random.next())
            case 3: value = 42.5
            case 4: value = Fixtures.edgeValues.randomElement(using: &random) ?? 0
            default: value = levels[series]
            }
            readings.append(Reading(series: series, timestamp: time, value: value))
        }
        return batch(readings: readings, seriesCount: seriesCount, firstSequence: UInt64.random(in: 1...1 << 40, using: &random))
    }
}
