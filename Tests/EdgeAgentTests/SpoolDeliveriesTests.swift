import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

@testable import EdgeAgent

/// The spool's `deliveries` table: delivery records committed with their readings, and spools
/// written by the release before the table existed.
@Suite struct SpoolDeliveriesTests {
    func page(_ index: Int, _ byte: UInt8) -> DeliveryRecord.Page {
        DeliveryRecord.Page(index: index, bytes: [UInt8](repeating: byte, count: MQTTDeliveryLog.pageBytes))
    }

    /// A spool file exactly as the previous release created it (spool format 1: meta, chunks and
    /// dropped, no deliveries table), holding three readings.
    func writePreviousReleaseSpool(in directory: String, device: String) throws {
        let database = try SQLiteDatabase(path: Spool.databasePath(in: directory))
        try database.execute("PRAGMA auto_vacuum = INCREMENTAL")
        try database.execute(
            """
            CREATE TABLE meta(key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;
            CREATE TABLE chunks(
                first_seq INTEGER PRIMARY KEY,
                last_seq INTEGER NOT NULL,
                readings INTEGER NOT NULL,
                oldest_timestamp INTEGER NOT NULL,
                bytes INTEGER NOT NULL,
                quarantine TEXT,
                payload BLOB NOT NULL
            );
            CREATE TABLE dropped(
                first_seq INTEGER PRIMARY KEY,
                last_seq INTEGER NOT NULL,
                reported INTEGER NOT NULL DEFAULT 0
            );
            INSERT INTO meta(key, value) VALUES ('format', 1), ('stream', 4242), ('next_seq', 4),
                ('dropped_readings', 0), ('created_at', 1700000000), ('device', '\(device)'),
                ('fsync', 'full'), ('when_full', 'reject'), ('max_bytes', '');
            """)
        let batch = Batch(
            device: device, stream: 4242, firstSequence: 1, seriesKeys: ["old,site=a value"],
            readings: (0..<3).map { Reading(series: 0, timestamp: 1_700_000_000_000_000_000 + Int64($0), value: 1.5) })
        let payload = try BatchEncoder().encode(batch)
        let insert = try database.prepare(
            "INSERT INTO chunks(first_seq, last_seq, readings, oldest_timestamp, bytes, quarantine, payload) VALUES (1, 3, 3, 1700000000000000000, ?1, NULL, ?2)"
        )
        try insert.bind(payload.count, at: 1)
        try insert.bind(bytes: payload, at: 2)
        try insert.run()
    }

    @Test func aSpoolOfThePreviousReleaseOpensAndTakesDeliveryRecords() async throws {
        try await withTemporaryDirectory { directory in
            try writePreviousReleaseSpool(in: directory, device: "gateway-1")
            var spool = try await Spool.open(spoolConfiguration(directory))
            #expect(spool.movedAsideFile == nil)
            #expect(spool.stream == 4242)
            #expect(try await spool.deliveryPages(client: "agent").isEmpty)
            let range = try await spool.append(
                seriesKeys: ["mqtt,topic=a value"], readings: [Reading(series: 0, timestamp: 5, value: 2)],
                deliveries: DeliveryRecord(client: "agent", pages: [page(0, 7), page(3, 9)]))
            #expect(range.range == SequenceRange(4, 4))
            spool = try await Spool.open(spoolConfiguration(directory))
            #expect(try await spool.deliveryPages(client: "agent") == [page(0, 7), page(3, 9)])
            let stored = try await storedReadings(spool)
            #expect(stored.map(\.seq) == [1, 2, 3, 4])
            #expect(stored.map(\.key) == ["old,site=a value", "old,site=a value", "old,site=a value", "mqtt,topic=a value"])
            // The old tables are as they were, so the previous release still opens this file.
            let database = try SQLiteDatabase(path: Spool.databasePath(in: directory))
            _ = try database.prepare(
                "SELECT first_seq, last_seq, readings, oldest_timestamp, bytes, quarantine, payload FROM chunks LIMIT 0")
            let format = try database.prepare("SELECT value FROM meta WHERE key = 'format'")
            #expect(try format.step() && format.int64(at: 0) == 1)
        }
    }

    @Test func pagesAreReplacedWholeAndANewSessionClearsTheOldOnes() async throws {
        try await withTemporaryDirectory { directory in
            let spool = try await Spool.open(spoolConfiguration(directory))
            let reading = [Reading(series: 0, timestamp: 5, value: 2)]
            _ = try await spool.append(
                seriesKeys: ["k value"], readings: reading,
                deliveries: DeliveryRecord(client: "agent", pages: [page(0, 1), page(1, 1)]))
            _ = try await spool.append(
                seriesKeys: ["k value"], readings: reading,
                deliveries: DeliveryRecord(client: "agent", pages: [page(1, 2)]))
            #expect(try await spool.deliveryPages(client: "agent") == [page(0, 1), page(1, 2)])
            _ = try await spool.append(
                seriesKeys: ["k value"], readings: reading,
                deliveries: DeliveryRecord(client: "agent", pages: [page(5, 3)], replacesAll: true))
            #expect(try await spool.deliveryPages(client: "agent") == [page(5, 3)])
            // Another client identifier (the configuration changed): the old one's pages go.
            #expect(try await spool.deliveryPages(client: "renamed").isEmpty)
            #expect(try await spool.deliveryPages(client: "agent").isEmpty)
        }
    }

    @Test func aRefusedAppendStoresNoDeliveryRecord() async throws {
        try await withTemporaryDirectory { directory in
            var configuration = spoolConfiguration(directory)
            configuration.maxBytes = Spool.Configuration.minimumMaxBytes
            let spool = try await Spool.open(configuration)
            var refused = false
            for seed in UInt64(0)..<400 where !refused {
                let readings = makeReadings(500, seed: seed, incompressible: true)
                do {
                    _ = try await spool.append(
                        seriesKeys: ["sensor,site=s0 value"],
                        readings: readings.map { Reading(series: 0, timestamp: $0.timestamp, value: $0.value) },
                        deliveries: DeliveryRecord(client: "agent", pages: [page(Int(seed % 256), UInt8(seed % 250) + 1)]))
                } catch {
                    #expect((error as? SpoolError)?.kind == .full, "\(error)")
                    refused = true
                    let pages = try await spool.deliveryPages(client: "agent")
                    #expect(!pages.contains(page(Int(seed % 256), UInt8(seed % 250) + 1)))
                    #expect(pages.count == Int(min(seed, 256)))
                }
            }
            #expect(refused, "the capped spool never filled up")
        }
    }
}
