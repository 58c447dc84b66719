import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncSQLite

/// The `deliveries` table: `DeliveryRecord` pages written in the group-commit transaction of the
/// readings they describe. Added after spool format 1 shipped: it is created when missing, at open,
/// so a spool written by an earlier release opens unchanged, and an earlier release that opens a
/// spool with this table ignores it.
extension SpoolStore {
    static let deliveriesTable = """
        CREATE TABLE IF NOT EXISTS deliveries(
            client TEXT NOT NULL,
            page INTEGER NOT NULL,
            bytes BLOB NOT NULL,
            PRIMARY KEY (client, page)
        ) WITHOUT ROWID
        """

    /// Creates the table in a spool that predates it (a no-op otherwise).
    func createDeliveriesTableIfMissing() throws {
        try database.execute(Self.deliveriesTable)
    }

    /// Writes the delivery records of `writes`; runs inside the commit transaction.
    func recordDeliveries(_ writes: [PendingWrite]) throws {
        for write in writes {
            guard let record = write.deliveries else { continue }
            if record.replacesAll {
                let clear = try database.statement("DELETE FROM deliveries WHERE client = ?1")
                try clear.bind(record.client, at: 1)
                try clear.run()
            }
            let upsert = try database.statement(
                "INSERT OR REPLACE INTO deliveries(client, page, bytes) VALUES (?1, ?2, ?3)")
            for page in record.pages {
                try upsert.bind(record.client, at: 1)
                try upsert.bind(page.index, at: 2)
                try upsert.bind(bytes: page.bytes, at: 3)
                try upsert.run()
            }
        }
    }

    /// Every page stored for `client`, in page order; pages of other clients are deleted (an agent
    /// has one MQTT client identifier; a renamed one starts a new session at the broker).
    func deliveryPages(client: String) throws -> [DeliveryRecord.Page] {
        try database.transaction(.immediate) { db throws in
            let others = try db.statement("DELETE FROM deliveries WHERE client != ?1")
            try others.bind(client, at: 1)
            try others.run()
            let select = try db.statement("SELECT page, bytes FROM deliveries WHERE client = ?1 ORDER BY page")
            try select.bind(client, at: 1)
            defer { select.reset() }
            var pages: [DeliveryRecord.Page] = []
            while try select.step() {
                let bytes = select.withBlob(at: 1) { Array($0) }
                pages.append(DeliveryRecord.Page(index: Int(select.int64(at: 0)), bytes: bytes))
            }
            return pages
        }
    }
}

extension Spool {
    /// Stores readings like `appendAdmitting(seriesKeys:readings:)`, and `deliveries` in the same
    /// transaction: both are durable together or neither is (when the series limit refuses every
    /// reading, nothing is written).
    package func append(seriesKeys: [String], readings: [Reading], deliveries: DeliveryRecord)
        async throws(SpoolError) -> Spool.Admitted
    {
        try await submit(
            PendingWrite(seriesKeys: seriesKeys, readings: readings, deliveries: deliveries), dropsOverLimit: true)
    }

    /// The delivery pages stored for `client` (and none for any other client, from now on).
    package func deliveryPages(client: String) async throws(SpoolError) -> [DeliveryRecord.Page] {
        try await run("reading delivery records") { store in try store.deliveryPages(client: client) }
    }
}
