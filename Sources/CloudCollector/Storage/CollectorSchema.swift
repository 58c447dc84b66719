/// The collector's SQLite schema. Tables and the view are meant to be read by standard tools
/// (`sqlite3`, pandas, Grafana); `Docs/protocol.md` and decision 0004 describe them.
package enum CollectorSchema {
    /// 1: ingest tables. 2: the per-reading query index and `stream_stats` (issue 8). 3: the
    /// per-reading index replaced by `series_blocks` (decision 0010). 4: `series.max_block_span`,
    /// which bounds how many block entries a query window reads. A database of an older version is
    /// upgraded in place when a collector opens it (`SQLiteReadingStore.createSchema`).
    package static let version: Int64 = 4
    /// 5: the column-block layout (`storage.layout = blocks`, decision 0027): `reading_blocks` instead
    /// of `readings` and `series_blocks`. A separate number rather than a newer one, so that a
    /// collector of the previous release refuses a block database by name instead of reading an
    /// empty `readings` table, while row databases stay at 4 and remain readable by it.
    package static let blocksVersion: Int64 = 5

    /// The schema version of a database in `layout`.
    package static func version(of layout: ReadingLayout) -> Int64 {
        layout == .rows ? version : blocksVersion
    }

    /// The database file inside a data directory.
    package static let databaseFileName = "collector.sqlite"

    /// Builds `series_blocks` for readings stored before schema version 3: one block per run of
    /// consecutive reading_ids of one series (reading_id minus the row's rank within its series is
    /// constant exactly along such a run), then drops the per-reading index it replaces.
    package static let upgradeToBlocks = """
        DELETE FROM series_blocks;
        INSERT INTO series_blocks (series_id, min_timestamp, max_timestamp, first_reading_id, last_reading_id)
        SELECT series_id, min(timestamp), max(timestamp), min(reading_id), max(reading_id)
        FROM (SELECT series_id, timestamp, reading_id,
                     reading_id - row_number() OVER (PARTITION BY series_id ORDER BY reading_id) AS run
              FROM readings)
        GROUP BY series_id, run;
        DROP INDEX IF EXISTS readings_by_series_time;
        """

    /// Adds `series.max_block_span` to a version 1-3 database and fills it from its blocks.
    package static let upgradeToBlockSpans = """
        ALTER TABLE series ADD COLUMN max_block_span INTEGER NOT NULL DEFAULT 0;
        UPDATE series SET max_block_span = coalesce((SELECT max(\(clampedSpan)) FROM series_blocks AS b
                                                     WHERE b.series_id = series.series_id), 0);
        """

    /// `max_timestamp - min_timestamp` of a block, at most 2^63-1 (a hostile batch may hold both ends
    /// of the 64-bit range; SQL subtraction would overflow).
    static let clampedSpan = """
        CASE WHEN b.min_timestamp < 0 AND b.max_timestamp > b.min_timestamp + 9223372036854775807
             THEN 9223372036854775807 ELSE b.max_timestamp - b.min_timestamp END
        """

    package static let statements = """
        CREATE TABLE IF NOT EXISTS collector_schema (version INTEGER NOT NULL);

        -- Device tokens: only the SHA-256 of each token is kept.
        CREATE TABLE IF NOT EXISTS device_tokens (
            device TEXT PRIMARY KEY,
            token_hash BLOB NOT NULL UNIQUE,
            created_at INTEGER NOT NULL
        );

        -- One row per (device, stream). `stream` is the 64-bit id as a decimal string; `version`
        -- changes (to a new random value) with every commit that changes the stream's received
        -- ranges, so a collector can tell whether its cached ranges are current.
        CREATE TABLE IF NOT EXISTS streams (
            stream_ref INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            stream TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 0,
            last_seen INTEGER,
            UNIQUE (device, stream)
        );

        -- The sequence numbers each stream has delivered, as disjoint inclusive ranges.
        CREATE TABLE IF NOT EXISTS received_ranges (
            stream_ref INTEGER NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            PRIMARY KEY (stream_ref, first_seq)
        ) WITHOUT ROWID;

        -- Ranges the edge dropped by policy (spool full, drop-oldest), as reported by the device.
        CREATE TABLE IF NOT EXISTS dropped_ranges (
            stream_ref INTEGER NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            reported_at INTEGER NOT NULL,
            PRIMARY KEY (stream_ref, first_seq, last_seq)
        ) WITHOUT ROWID;

        -- `max_block_span`: the longest max_timestamp - min_timestamp of the series' blocks (schema
        -- 4). A block overlapping [start, end) ends before end + max_block_span, which bounds the
        -- block entries a query window reads.
        CREATE TABLE IF NOT EXISTS series (
            series_id INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            series_key TEXT NOT NULL,
            max_block_span INTEGER NOT NULL DEFAULT 0,
            UNIQUE (device, series_key)
        );

        -- Per-stream facts the ingest transaction keeps up to date, so `/v1/devices` never scans
        -- readings: the sender's clock skew (receive time minus the batch's sentAt, smoothed), the
        -- newest and oldest reading timestamps stored, and readings stamped implausibly far in the
        -- future or the past. Added in schema version 2.
        CREATE TABLE IF NOT EXISTS stream_stats (
            stream_ref INTEGER PRIMARY KEY,
            skew_ns REAL,
            last_skew_ns INTEGER,
            skew_samples INTEGER NOT NULL DEFAULT 0,
            newest_timestamp INTEGER,
            oldest_timestamp INTEGER,
            future_readings INTEGER NOT NULL DEFAULT 0,
            past_readings INTEGER NOT NULL DEFAULT 0
        );

        -- The downstream stream's outbox (decision 0019): messages for newly stored readings,
        -- written in the ingest transaction when a stream is configured, deleted once JetStream
        -- acknowledged them. Added without a version change: an older collector ignores it.
        CREATE TABLE IF NOT EXISTS stream_outbox (
            outbox_id INTEGER PRIMARY KEY,
            created_at INTEGER NOT NULL,
            subject TEXT NOT NULL,
            message_id TEXT NOT NULL,
            readings INTEGER NOT NULL,
            payload BLOB NOT NULL
        );
        -- Since decision 0025 the outbox holds each newly stored range as one codec frame; the
        -- relay turns it into messages. `stream_outbox` is still drained (rows of the first layout).
        CREATE TABLE IF NOT EXISTS stream_outbox_frames (
            outbox_id INTEGER PRIMARY KEY,
            created_at INTEGER NOT NULL,
            readings INTEGER NOT NULL,
            frame BLOB NOT NULL
        );
        """

    /// The row layout's tables (schema 4) and its `readings_view`.
    package static let rowStatements = """
        -- Rows append in arrival order (reading_id assigned by SQLite), so every insert lands on the
        -- right edge of the table's B-tree (decision 0004). (stream_ref, seq) is unique by the
        -- received-ranges protocol, not by an index: dedup never probes this table.
        -- `value` is NULL for NaN and +0 for -0.0 (what a SQLite REAL can hold); for those two cases
        -- `value_bits` holds the exact IEEE 754 bits as a signed 64-bit integer.
        CREATE TABLE IF NOT EXISTS readings (
            reading_id INTEGER PRIMARY KEY,
            stream_ref INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            series_id INTEGER NOT NULL,
            timestamp INTEGER NOT NULL,
            value REAL,
            value_bits INTEGER
        );

        -- Queries by series and time (`/v1/readings`, `/v1/aggregate`, `/v1/series`), decision 0010.
        -- A batch's rows are inserted grouped by series, so the rows one transaction stores for one
        -- series of one batch have consecutive reading_ids: one row here per such block, with the
        -- block's time span, instead of one index entry per reading. A query reads the blocks that
        -- overlap its time range by reading_id range. Added in schema version 3, replacing the
        -- per-reading index `readings_by_series_time` of version 2.
        CREATE TABLE IF NOT EXISTS series_blocks (
            series_id INTEGER NOT NULL,
            min_timestamp INTEGER NOT NULL,
            max_timestamp INTEGER NOT NULL,
            first_reading_id INTEGER NOT NULL,
            last_reading_id INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS series_blocks_by_start ON series_blocks (series_id, min_timestamp);
        -- Covering: a query walks the blocks ending at or after its start without reading the table.
        CREATE INDEX IF NOT EXISTS series_blocks_by_end
            ON series_blocks (series_id, max_timestamp, min_timestamp, first_reading_id, last_reading_id);

        -- The documented way to read central data: one row per reading.
        CREATE VIEW IF NOT EXISTS readings_view AS \(readingsView);
        """

    /// Drops the row layout's tables and view (only ever on a database without readings).
    static let dropRowTables = """
        DROP VIEW IF EXISTS readings_view;
        DROP TABLE IF EXISTS readings;
        DROP TABLE IF EXISTS series_blocks;
        """

    /// The column-block layout's tables (schema 5, decision 0027) and its `readings_view`.
    package static let blockStatements = """
        -- One row per block: the readings of one series from one batch's new range (at most
        -- `storage.block_readings` of them), compressed as a column block (sequence offsets,
        -- timestamps, values; the layout is in decision 0027), with a summary that
        -- aggregates use instead of decoding: `numbers` counts readings whose value is not NaN,
        -- `min_value` and `max_value` are over those (-0.0 as 0, as SQL compares), `sum` is their
        -- exact sum (fixed point, decision 0027). `data` is the last column, so reading the summary
        -- never touches the block's overflow pages.
        CREATE TABLE IF NOT EXISTS reading_blocks (
            block_id INTEGER PRIMARY KEY,
            series_id INTEGER NOT NULL,
            stream_ref INTEGER NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            readings INTEGER NOT NULL,
            min_timestamp INTEGER NOT NULL,
            max_timestamp INTEGER NOT NULL,
            numbers INTEGER NOT NULL,
            min_value REAL,
            max_value REAL,
            sum BLOB NOT NULL,
            data BLOB NOT NULL
        );
        -- Covering for window planning: blocks by series and end time, with their start and size.
        CREATE INDEX IF NOT EXISTS reading_blocks_by_end
            ON reading_blocks (series_id, max_timestamp, min_timestamp, readings);

        -- One row per reading needs the block decoder `edge_sync_block_readings`, a SQLite
        -- extension this package does not ship yet (decision 0027). Without it the view fails with
        -- "no such table: main.edge_sync_block_readings" rather than returning nothing; the
        -- comment inside the view says so to whoever reads `.schema readings_view`.
        CREATE VIEW IF NOT EXISTS readings_view AS
        -- Column-block database (storage.layout = blocks): readings are compressed in reading_blocks
        -- and this view needs the edge_sync_block_readings extension (not shipped yet). Without it,
        -- every query of this view fails; it never returns a subset. Per-block counts, time spans,
        -- minima and maxima without the extension: reading_blocks_view. See decision 0027.
        SELECT streams.device AS device,
               series.series_key AS series_key,
               r.timestamp AS timestamp,
               r.value AS value,
               streams.stream AS stream,
               r.seq AS seq,
               r.value_bits AS value_bits
        FROM reading_blocks AS b
        JOIN streams ON streams.stream_ref = b.stream_ref
        JOIN series ON series.series_id = b.series_id
        JOIN edge_sync_block_readings(b.data, b.first_seq) AS r;

        -- What plain SQL can read of a block database: one row per block with its summary. Every
        -- stored reading is in exactly one block; `readings` counts them, `value_count` those
        -- whose value is not NaN, over which `min_value` and `max_value` are taken.
        CREATE VIEW IF NOT EXISTS reading_blocks_view AS
        SELECT streams.device AS device,
               series.series_key AS series_key,
               streams.stream AS stream,
               b.first_seq AS first_seq,
               b.last_seq AS last_seq,
               b.readings AS readings,
               b.min_timestamp AS min_timestamp,
               b.max_timestamp AS max_timestamp,
               b.numbers AS value_count,
               b.min_value AS min_value,
               b.max_value AS max_value
        FROM reading_blocks AS b
        JOIN streams ON streams.stream_ref = b.stream_ref
        JOIN series ON series.series_id = b.series_id;
        """

    /// Drops the block layout's tables and view (only ever on a database without readings).
    static let dropBlockTables = """
        DROP VIEW IF EXISTS readings_view;
        DROP VIEW IF EXISTS reading_blocks_view;
        DROP TABLE IF EXISTS reading_blocks;
        """

    /// The body of `readings_view`, the same on SQLite and PostgreSQL.
    package static let readingsView = """
        SELECT streams.device AS device,
               series.series_key AS series_key,
               readings.timestamp AS timestamp,
               readings.value AS value,
               streams.stream AS stream,
               readings.seq AS seq,
               readings.value_bits AS value_bits
        FROM readings
        JOIN streams ON streams.stream_ref = readings.stream_ref
        JOIN series ON series.series_id = readings.series_id
        """
}
