import EdgeSyncCodec
import EdgeSyncSQLite
import Foundation

/// The per-spool series limit (`spool.max_series`): how many distinct series the spool takes within
/// the current and the previous UTC day, so that a cardinality bomb spread over many requests cannot
/// grow the series sent to the collector (and the spool's key tables) without bound.
///
/// Durable in the spool's `series` table (key, last UTC day written), written in the commit
/// transaction of the readings: a key when it is new, and again at most once per day while it is
/// written, so the steady state adds no writes. In memory (owned by `Spool` under a mutex): a
/// per-process seeded hash of each key to its day, about 40 bytes per series, plus the keys that
/// writes in flight registered.
struct SeriesCatalog: Sendable {
    let limit: Int
    private(set) var days: [Int: Int32] = [:]
    /// Keys registered by writes not committed yet: hash → how many writes.
    private var reserved: [Int: Int] = [:]
    private(set) var today: Int32 = 0
    /// Readings refused since the process started (for `/metrics`).
    private(set) var refusedReadings = 0
    private(set) var refusedWrites = 0

    init(limit: Int) {
        self.limit = limit
    }

    var count: Int { days.count + reserved.keys.lazy.filter { days[$0] == nil }.count }

    /// What one write may store.
    struct Admission: Sendable {
        /// Per series index of the write: true when its readings are refused.
        var refused: [Bool]
        var refusedSeries = 0
        /// Keys to write to the `series` table with the readings (new ones, and known ones first
        /// written today).
        var catalogKeys: [String] = []
        var reservedHashes: [Int] = []
        var day: Int32
    }

    mutating func load(_ rows: [(key: String, day: Int32)], today: Int32) {
        self.today = today
        for row in rows where row.day >= today - 1 {
            days[ExactString(row.key).hashValue] = max(days[ExactString(row.key).hashValue] ?? 0, row.day)
        }
    }

    mutating func admit(_ keys: [String], day: Int32) -> Admission {
        if day > today {
            today = day
            days = days.filter { $0.value >= day - 1 }
        }
        var admission = Admission(refused: [Bool](repeating: false, count: keys.count), day: today)
        var current = count
        for (index, key) in keys.enumerated() {
            let hash = ExactString(key).hashValue
            if let known = days[hash] {
                if known < today {
                    days[hash] = today
                    admission.catalogKeys.append(key)
                }
                continue
            }
            if reserved[hash] == nil {
                guard current < limit else {
                    admission.refused[index] = true
                    admission.refusedSeries += 1
                    continue
                }
                current += 1
            }
            reserved[hash, default: 0] += 1
            admission.reservedHashes.append(hash)
            admission.catalogKeys.append(key)
        }
        return admission
    }

    /// The write of `admission` committed (`stored`) or failed.
    mutating func finish(_ admission: Admission, stored: Bool) {
        for hash in admission.reservedHashes {
            let left = (reserved[hash] ?? 1) - 1
            reserved[hash] = left > 0 ? left : nil
            if stored { days[hash] = max(days[hash] ?? 0, admission.day) }
        }
    }

    mutating func countRefused(readings: Int) {
        refusedReadings += readings
        refusedWrites += 1
    }

    /// Days since 1970-01-01 in UTC.
    static func day(of date: Date) -> Int32 {
        Int32(clamping: Int((date.timeIntervalSince1970 / 86_400).rounded(.down)))
    }
}

/// The `series` table (added after spool format 1 shipped, created when missing at open).
extension SpoolStore {
    func createSeriesTableIfMissing() throws {
        try database.execute(
            "CREATE TABLE IF NOT EXISTS series(key TEXT PRIMARY KEY, day INTEGER NOT NULL) WITHOUT ROWID")
    }

    /// Writes the catalog keys of `writes` and forgets series not written since before yesterday;
    /// runs inside the commit transaction.
    func recordSeries(_ writes: [PendingWrite]) throws {
        for write in writes where !write.catalogKeys.isEmpty {
            if write.seriesDay > seriesSweptDay {
                let sweep = try database.statement("DELETE FROM series WHERE day < ?1")
                try sweep.bind(Int64(write.seriesDay) - 1, at: 1)
                try sweep.run()
                seriesSweptDay = write.seriesDay
            }
            let upsert = try database.statement("INSERT OR REPLACE INTO series(key, day) VALUES (?1, ?2)")
            for key in write.catalogKeys {
                try upsert.bind(key, at: 1)
                try upsert.bind(Int64(write.seriesDay), at: 2)
                try upsert.run()
            }
        }
    }

    func loadSeries(since day: Int32) throws -> [(key: String, day: Int32)] {
        let select = try database.statement("SELECT key, day FROM series WHERE day >= ?1")
        try select.bind(Int64(day), at: 1)
        defer { select.reset() }
        var rows: [(String, Int32)] = []
        while try select.step() {
            rows.append((select.text(at: 0) ?? "", Int32(clamping: select.int64(at: 1))))
        }
        return rows
    }

    /// Series written today or yesterday, and readings refused over the limit since the spool was created.
    func seriesStatus(today: Int32) throws -> (series: Int64, refused: Int64) {
        let count = try database.statement("SELECT count(*) FROM series WHERE day >= ?1")
        try count.bind(Int64(today) - 1, at: 1)
        defer { count.reset() }
        try count.step()
        return (count.int64(at: 0), try metaInteger("series_refused_readings") ?? 0)
    }

    /// Adds to the durable count of readings refused over the limit.
    func addRefusedSeriesReadings(_ count: Int) throws {
        try database.execute(
            "INSERT INTO meta(key, value) VALUES ('series_refused_readings', \(count)) ON CONFLICT(key) DO UPDATE SET value = value + \(count)"
        )
    }
}
