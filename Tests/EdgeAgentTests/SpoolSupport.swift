import EdgeAgent
import EdgeSyncCodec
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation

/// Readings whose values are unique per (seed, index), so a test can tell every one apart.
func makeReadings(_ count: Int, seed: UInt64, series: Int = 3, incompressible: Bool = false) -> [IncomingReading] {
    var random = SeededRandom(seed: seed)
    return (0..<count).map { index in
        let value =
            incompressible
            ? Double(bitPattern: random.next() & 0x7FEF_FFFF_FFFF_FFFF) : Double(seed) * 1e6 + Double(index)
        return IncomingReading(
            seriesKey: "sensor,site=s\(index % series) value",
            timestamp: 1_700_000_000_000_000_000 + Int64(index) * 1_000_000_000,
            value: value)
    }
}

func spoolConfiguration(_ directory: String, device: String = "gateway-1") -> Spool.Configuration {
    var configuration = Spool.Configuration(dataDirectory: directory, device: device)
    configuration.onDamagedFile = { _ in }
    return configuration
}

/// Every stored reading, flattened to (seq, key, timestamp, value), in sequence order.
func storedReadings(_ spool: Spool) async throws -> [(seq: UInt64, key: String, timestamp: Int64, value: Double)] {
    var out: [(UInt64, String, Int64, Double)] = []
    for (batch, _) in try await spool.allStoredBatches() {
        for (offset, reading) in batch.readings.enumerated() {
            out.append(
                (
                    batch.firstSequence + UInt64(offset), batch.seriesKeys[reading.series], reading.timestamp,
                    reading.value
                ))
        }
    }
    return out
}

func fileBytes(_ directory: String) -> Int64 {
    SQLiteDatabase.fileSizes(ofDatabaseAt: Spool.databasePath(in: directory)).total
}
