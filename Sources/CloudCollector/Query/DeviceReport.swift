import EdgeSyncProtocol

/// The `/v1/devices` document: per device and stream what arrived, what is missing, what the edge
/// dropped, how far behind the data is and whether the gateway's clock can be trusted. Derived from
/// `StreamFacts` and the current time alone, so it is tested without a database or a clock.
package struct DevicesReport: Sendable, Hashable, Codable {
    package var now: Int64
    package var devices: [Device]

    /// Range lists longer than this are cut (counts stay exact) and the stream says `ranges_truncated`.
    package static let maximumListedRanges = 1000

    package struct Device: Sendable, Hashable, Codable {
        package var device: String
        package var lastSeen: Int64?
        package var newestTimestamp: Int64?
        package var lagSeconds: Double?
        package var readings: UInt64
        package var gapReadings: UInt64
        package var droppedReadings: UInt64
        package var completeness: Double?
        /// Skew of the stream that delivered last.
        package var clockSkewSeconds: Double?
        package var implausibleTimestamps: Bool
        /// Batches this collector refused since it started (400, 413, 415: the edge quarantines
        /// them, or splits on 413), the readings they held when that could be told, and the last
        /// refusal. Not gaps: the edge was told, and keeps them aside with the reason.
        package var refusedBatches: UInt64 = 0
        package var refusedReadings: UInt64 = 0
        package var lastRefusal: RefusalLog.Refusal?
        package var streams: [Stream]

        enum CodingKeys: String, CodingKey {
            case device, readings, completeness, streams
            case refusedBatches = "refused_batches"
            case refusedReadings = "refused_readings"
            case lastRefusal = "last_refusal"
            case lastSeen = "last_seen"
            case newestTimestamp = "newest_timestamp"
            case lagSeconds = "lag_seconds"
            case gapReadings = "gap_readings"
            case droppedReadings = "dropped_readings"
            case clockSkewSeconds = "clock_skew_seconds"
            case implausibleTimestamps = "implausible_timestamps"
        }

        // Explicit nulls: every device has the same keys.
        package func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(device, forKey: .device)
            try container.encode(lastSeen, forKey: .lastSeen)
            try container.encode(newestTimestamp, forKey: .newestTimestamp)
            try container.encode(lagSeconds, forKey: .lagSeconds)
            try container.encode(readings, forKey: .readings)
            try container.encode(gapReadings, forKey: .gapReadings)
            try container.encode(droppedReadings, forKey: .droppedReadings)
            try container.encode(completeness, forKey: .completeness)
            try container.encode(clockSkewSeconds, forKey: .clockSkewSeconds)
            try container.encode(implausibleTimestamps, forKey: .implausibleTimestamps)
            try container.encode(refusedBatches, forKey: .refusedBatches)
            try container.encode(refusedReadings, forKey: .refusedReadings)
            try container.encode(lastRefusal, forKey: .lastRefusal)
            try container.encode(streams, forKey: .streams)
        }
    }

    package struct Stream: Sendable, Hashable, Codable {
        /// The 64-bit stream id as a decimal string (JSON numbers lose precision above 2^53).
        package var stream: String
        package var received: [SequenceRange]
        package var gaps: [SequenceRange]
        package var dropped: [SequenceRange]
        package var rangesTruncated: Bool
        package var readings: UInt64
        package var gapReadings: UInt64
        package var droppedReadings: UInt64
        package var completeness: Double?
        package var lastSeen: Int64?
        package var newestTimestamp: Int64?
        package var oldestTimestamp: Int64?
        package var lagSeconds: Double?
        package var clockSkewSeconds: Double?
        package var lastClockSkewSeconds: Double?
        package var clockSkewSamples: Int64
        package var futureReadings: Int64
        package var pastReadings: Int64
        package var implausibleTimestamps: Bool
        /// What the edge's processing rules did to this stream's readings, as last reported
        /// (`POST /v1/processing`); readings a rule dropped or reduced are not gaps. Empty when the
        /// edge has no rules or never reported.
        package var processing: [ProcessingCountsReport.Rule] = []

        enum CodingKeys: String, CodingKey {
            case stream, received, gaps, dropped, readings, completeness, processing
            case rangesTruncated = "ranges_truncated"
            case gapReadings = "gap_readings"
            case droppedReadings = "dropped_readings"
            case lastSeen = "last_seen"
            case newestTimestamp = "newest_timestamp"
            case oldestTimestamp = "oldest_timestamp"
            case lagSeconds = "lag_seconds"
            case clockSkewSeconds = "clock_skew_seconds"
            case lastClockSkewSeconds = "last_clock_skew_seconds"
            case clockSkewSamples = "clock_skew_samples"
            case futureReadings = "future_readings"
            case pastReadings = "past_readings"
            case implausibleTimestamps = "implausible_timestamps"
        }

        // Explicit nulls: every stream has the same keys.
        package func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(stream, forKey: .stream)
            try container.encode(received, forKey: .received)
            try container.encode(gaps, forKey: .gaps)
            try container.encode(dropped, forKey: .dropped)
            try container.encode(rangesTruncated, forKey: .rangesTruncated)
            try container.encode(readings, forKey: .readings)
            try container.encode(gapReadings, forKey: .gapReadings)
            try container.encode(droppedReadings, forKey: .droppedReadings)
            try container.encode(completeness, forKey: .completeness)
            try container.encode(lastSeen, forKey: .lastSeen)
            try container.encode(newestTimestamp, forKey: .newestTimestamp)
            try container.encode(oldestTimestamp, forKey: .oldestTimestamp)
            try container.encode(lagSeconds, forKey: .lagSeconds)
            try container.encode(clockSkewSeconds, forKey: .clockSkewSeconds)
            try container.encode(lastClockSkewSeconds, forKey: .lastClockSkewSeconds)
            try container.encode(clockSkewSamples, forKey: .clockSkewSamples)
            try container.encode(futureReadings, forKey: .futureReadings)
            try container.encode(pastReadings, forKey: .pastReadings)
            try container.encode(implausibleTimestamps, forKey: .implausibleTimestamps)
            try container.encode(processing, forKey: .processing)
        }
    }

    /// - Parameters:
    ///   - skewTolerance: a smoothed skew larger than this (either way) flags the clock.
    package init(
        streams: [StreamFacts], refusals: [String: RefusalLog.Entry] = [:], now: Int64,
        skewToleranceNanoseconds: Int64 = 300_000_000_000, processing: [StreamKey: [ProcessingCountsReport.Rule]] = [:]
    ) {
        self.now = now
        var byDevice: [String: [Stream]] = [:]
        var order: [String] = []
        var skewOfLatest: [String: (Int64, Double)] = [:]
        for facts in streams {
            if byDevice[facts.device] == nil { order.append(facts.device) }
            var stream = Self.stream(facts, now: now, skewTolerance: skewToleranceNanoseconds)
            stream.processing = processing[StreamKey(device: facts.device, stream: facts.stream)] ?? []
            byDevice[facts.device, default: []].append(stream)
            if let skew = facts.skewNanoseconds, let seen = facts.lastSeen,
                (skewOfLatest[facts.device]?.0 ?? .min) <= seen
            {
                skewOfLatest[facts.device] = (seen, skew)
            }
        }
        // A device whose every batch was refused has no stream yet, and is listed all the same.
        for device in refusals.keys.sorted() where byDevice[device] == nil {
            order.append(device)
            byDevice[device] = []
        }
        devices = order.map { device in
            let streams = byDevice[device] ?? []
            let readings = streams.reduce(0) { $0 &+ $1.readings }
            let gaps = streams.reduce(0) { $0 &+ $1.gapReadings }
            let newest = streams.compactMap(\.newestTimestamp).max()
            let refused = refusals[device]
            return Device(
                device: device, lastSeen: streams.compactMap(\.lastSeen).max(), newestTimestamp: newest,
                lagSeconds: newest.map { Self.seconds(now, minus: $0) }, readings: readings, gapReadings: gaps,
                droppedReadings: streams.reduce(0) { $0 &+ $1.droppedReadings },
                completeness: Self.completeness(received: readings, gaps: gaps),
                clockSkewSeconds: skewOfLatest[device].map { $0.1 / 1e9 },
                implausibleTimestamps: streams.contains(where: \.implausibleTimestamps),
                refusedBatches: refused?.batches ?? 0, refusedReadings: refused?.readings ?? 0,
                lastRefusal: refused?.last, streams: streams)
        }
    }

    private static func stream(_ facts: StreamFacts, now: Int64, skewTolerance: Int64) -> Stream {
        // Dropped readings are neither received nor missing: gaps are what is below the highest
        // sequence number known (received or dropped) and in neither set.
        var known = facts.received
        for range in facts.dropped.ranges { _ = known.insert(range) }
        let gaps = known.gaps
        var droppedOnly = facts.dropped
        for range in facts.received.ranges { _ = droppedOnly.remove(range) }
        let gapCount = gaps.reduce(0) { $0 &+ $1.count }
        let received = facts.received.count
        let limit = maximumListedRanges
        let skewFlag = facts.skewNanoseconds.map { abs($0) > Double(skewTolerance) } ?? false
        return Stream(
            stream: String(facts.stream), received: Array(facts.received.ranges.prefix(limit)),
            gaps: Array(gaps.prefix(limit)), dropped: Array(facts.dropped.ranges.prefix(limit)),
            rangesTruncated: facts.received.ranges.count > limit || gaps.count > limit
                || facts.dropped.ranges.count > limit,
            readings: received, gapReadings: gapCount, droppedReadings: droppedOnly.count,
            completeness: completeness(received: received, gaps: gapCount), lastSeen: facts.lastSeen,
            newestTimestamp: facts.newestTimestamp, oldestTimestamp: facts.oldestTimestamp,
            lagSeconds: facts.newestTimestamp.map { seconds(now, minus: $0) },
            clockSkewSeconds: facts.skewNanoseconds.map { $0 / 1e9 },
            lastClockSkewSeconds: facts.lastSkewNanoseconds.map { Double($0) / 1e9 },
            clockSkewSamples: facts.skewSamples, futureReadings: facts.futureReadings,
            pastReadings: facts.pastReadings,
            implausibleTimestamps: facts.futureReadings > 0 || facts.pastReadings > 0 || skewFlag)
    }

    /// received / (received + gaps); `nil` when nothing is known yet.
    static func completeness(received: UInt64, gaps: UInt64) -> Double? {
        let total = Double(received) + Double(gaps)
        return total > 0 ? Double(received) / total : nil
    }

    static func seconds(_ a: Int64, minus b: Int64) -> Double {
        // In Double: the difference of two Int64 can overflow Int64.
        (Double(a) - Double(b)) / 1e9
    }
}
