import EdgeSyncProtocol

/// One series as `/v1/series` lists it. First and last timestamps come from the query index in
/// two seeks each; a count would cost a scan of the series, so it is not part of the listing.
package struct SeriesSummary: Sendable, Hashable, Codable {
    package var device: String
    package var series: String
    /// Oldest and newest reading timestamp stored, in nanoseconds since the epoch (`nil` when the
    /// series has no readings yet).
    package var firstTimestamp: Int64?
    package var lastTimestamp: Int64?

    package init(device: String, series: String, firstTimestamp: Int64?, lastTimestamp: Int64?) {
        self.device = device
        self.series = series
        self.firstTimestamp = firstTimestamp
        self.lastTimestamp = lastTimestamp
    }

    enum CodingKeys: String, CodingKey {
        case device, series
        case firstTimestamp = "first_timestamp"
        case lastTimestamp = "last_timestamp"
    }

    // Explicit nulls: every entry has the same keys.
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(device, forKey: .device)
        try container.encode(series, forKey: .series)
        try container.encode(firstTimestamp, forKey: .firstTimestamp)
        try container.encode(lastTimestamp, forKey: .lastTimestamp)
    }
}

/// A series resolved to its storage id; what reading and aggregate queries take.
package struct SeriesReference: Sendable, Hashable {
    package var device: String
    package var key: String
    package var id: Int64

    package init(device: String, key: String, id: Int64) {
        self.device = device
        self.key = key
        self.id = id
    }
}

/// A place in a series' readings in query order: by timestamp, ties broken by storage id.
package struct ReadingPosition: Sendable, Hashable, Comparable {
    package var timestamp: Int64
    package var readingID: Int64

    package init(timestamp: Int64, readingID: Int64) {
        self.timestamp = timestamp
        self.readingID = readingID
    }

    package static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.timestamp, lhs.readingID) < (rhs.timestamp, rhs.readingID)
    }
}

/// One reading as queries return it, with its exact value.
package struct QueriedReading: Sendable, Hashable {
    package var position: ReadingPosition
    package var value: Double
    package var stream: UInt64
    package var seq: Int64

    package init(position: ReadingPosition, value: Double, stream: UInt64, seq: Int64) {
        self.position = position
        self.value = value
        self.stream = stream
        self.seq = seq
    }

    package var timestamp: Int64 { position.timestamp }
}

/// What one time bucket of `/v1/aggregate` holds. `min`, `max` and `mean` leave out NaN readings
/// (they are counted) and are `nil` when the bucket holds only NaNs.
package struct AggregateBucket: Sendable, Hashable, Codable {
    /// Start of the bucket, nanoseconds since the epoch: `from + k * step`.
    package var start: Int64
    package var count: Int64
    package var min: Double?
    package var max: Double?
    package var mean: Double?

    package init(start: Int64, count: Int64, min: Double?, max: Double?, mean: Double?) {
        self.start = start
        self.count = count
        self.min = min
        self.max = max
        self.mean = mean
    }

    // Explicit nulls: every bucket has the same keys.
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(start, forKey: .start)
        try container.encode(count, forKey: .count)
        try container.encode(min, forKey: .min)
        try container.encode(max, forKey: .max)
        try container.encode(mean, forKey: .mean)
    }
}

/// What storage knows about one stream, as `/v1/devices` needs it; `DeviceReport` derives the rest.
package struct StreamFacts: Sendable, Hashable {
    package var device: String
    package var stream: UInt64
    package var received: SequenceRangeSet
    package var dropped: SequenceRangeSet
    /// When the stream's received ranges last changed (nanoseconds, the collector's clock).
    package var lastSeen: Int64?
    package var newestTimestamp: Int64?
    package var oldestTimestamp: Int64?
    /// Smoothed and latest receive time minus batch `sentAt`, in nanoseconds.
    package var skewNanoseconds: Double?
    package var lastSkewNanoseconds: Int64?
    package var skewSamples: Int64
    package var futureReadings: Int64
    package var pastReadings: Int64

    package init(
        device: String, stream: UInt64, received: SequenceRangeSet, dropped: SequenceRangeSet, lastSeen: Int64?,
        newestTimestamp: Int64? = nil, oldestTimestamp: Int64? = nil, skewNanoseconds: Double? = nil,
        lastSkewNanoseconds: Int64? = nil, skewSamples: Int64 = 0, futureReadings: Int64 = 0, pastReadings: Int64 = 0
    ) {
        self.device = device
        self.stream = stream
        self.received = received
        self.dropped = dropped
        self.lastSeen = lastSeen
        self.newestTimestamp = newestTimestamp
        self.oldestTimestamp = oldestTimestamp
        self.skewNanoseconds = skewNanoseconds
        self.lastSkewNanoseconds = lastSkewNanoseconds
        self.skewSamples = skewSamples
        self.futureReadings = futureReadings
        self.pastReadings = pastReadings
    }
}

/// Read-only questions about central data; SQLite now (`SQLiteReadingQueries`), PostgreSQL later
/// with the same shape. Every method answers from committed data on its own read connection and
/// holds no transaction open between calls, so a long export never blocks the writer or checkpoints.
package protocol ReadingQueries: Sendable {
    /// Series of `device` (all devices when `nil`) whose key starts with `prefix`, ordered by
    /// device and key, at most `limit` of them.
    func series(device: String?, prefix: String, limit: Int) async throws -> [SeriesSummary]

    /// The stored series `key` of `device`, or `nil` when there is none.
    func series(device: String, key: String) async throws -> SeriesReference?

    /// Where a page of at most `limit` readings in `[from, to)` after `after` ends: the position of
    /// its last reading, and whether more readings follow it. `nil` when there is no reading.
    func pageEnd(
        of series: SeriesReference, after: ReadingPosition?, from: Int64, to: Int64, limit: Int
    ) async throws -> (last: ReadingPosition, hasMore: Bool)?

    /// At most `limit` readings in `[from, to)`, after `after` and up to `through` (inclusive), in
    /// query order.
    func readings(
        of series: SeriesReference, after: ReadingPosition?, through: ReadingPosition, from: Int64, to: Int64,
        limit: Int
    ) async throws -> [QueriedReading]

    /// Count, min, max and mean per `step`-long bucket of `[from, to)`, computed by the database;
    /// empty buckets are left out.
    func aggregate(of series: SeriesReference, from: Int64, to: Int64, step: Int64) async throws -> [AggregateBucket]

    /// Every stream with its ranges and stats, ordered by device and stream.
    func streams() async throws -> [StreamFacts]
}
