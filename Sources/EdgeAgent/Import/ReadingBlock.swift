import EdgeSyncCodec

/// Readings gathered for one spool append, with each series key stored once.
///
/// Parsers append to a block and hand `seriesKeys` and `readings` to
/// `Spool.append(seriesKeys:readings:)`, so no reading carries its own string. The line protocol
/// parser appends by interned series id (an array lookup); other inputs append by key.
package struct ReadingBlock: Sendable {
    package private(set) var seriesKeys: [String] = []
    package private(set) var readings: [Reading] = []
    private var localByKey: [ExactString: Int] = [:]
    /// Interned series id → index in `seriesKeys` + 1 (0: not in this block yet).
    private var localByID: [Int32] = []
    private var usedIDs: [Int32] = []
    private var internerGeneration = 0

    package init() {}

    package var count: Int { readings.count }
    package var isEmpty: Bool { readings.isEmpty }

    package mutating func append(_ reading: IncomingReading) {
        readings.append(
            Reading(series: local(forKey: reading.seriesKey), timestamp: reading.timestamp, value: reading.value))
    }

    package mutating func append(contentsOf incoming: some Sequence<IncomingReading>) {
        for reading in incoming { append(reading) }
    }

    /// Appends a reading of the series the interner knows as `id` (`key` is asked for only the first
    /// time the id appears in this block).
    mutating func append(
        id: Int32, generation: Int, key: @autoclosure () -> String, timestamp: Int64, value: Double
    ) {
        if generation != internerGeneration {
            for used in usedIDs where Int(used) < localByID.count { localByID[Int(used)] = 0 }
            usedIDs.removeAll(keepingCapacity: true)
            internerGeneration = generation
        }
        let slot = Int(id)
        if slot >= localByID.count { localByID.append(contentsOf: repeatElement(0, count: slot + 1 - localByID.count)) }
        var local = Int(localByID[slot]) - 1
        if local < 0 {
            local = self.local(forKey: key())
            localByID[slot] = Int32(local + 1)
            usedIDs.append(id)
        }
        readings.append(Reading(series: local, timestamp: timestamp, value: value))
    }

    private mutating func local(forKey key: String) -> Int {
        if let known = localByKey[ExactString(key)] { return known }
        let local = seriesKeys.count
        seriesKeys.append(key)
        localByKey[ExactString(key)] = local
        return local
    }

    /// Empties the block, keeping its storage for the next one.
    package mutating func removeAll() {
        seriesKeys.removeAll(keepingCapacity: true)
        readings.removeAll(keepingCapacity: true)
        localByKey.removeAll(keepingCapacity: true)
        for used in usedIDs where Int(used) < localByID.count { localByID[Int(used)] = 0 }
        usedIDs.removeAll(keepingCapacity: true)
    }

    /// The readings with their keys spelled out (tests and small callers).
    package var incomingReadings: [IncomingReading] {
        readings.map { IncomingReading(seriesKey: seriesKeys[$0.series], timestamp: $0.timestamp, value: $0.value) }
    }
}
