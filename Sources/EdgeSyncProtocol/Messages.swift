/// The HTTP surface shared by the edge agent and the collector; `Docs/protocol.md` describes it.
package enum ProtocolPath {
    /// `POST`: one codec frame (`FrameHeader.mediaType`) or a run of frames (`FrameRun.mediaType`)
    /// per request, `Authorization: Bearer <token>`, the sender's clock in ``ProtocolHeader/sentAt``.
    package static let batches = "/v1/batches"
    /// `POST`: a `DroppedRangesReport` as JSON, `Authorization: Bearer <token>`.
    package static let droppedRanges = "/v1/dropped"
    /// `POST`: a `ProcessingCountsReport` as JSON, `Authorization: Bearer <token>`. Collectors that
    /// predate it answer 404; the edge then stops sending it (the counts stay in its spool).
    package static let processingCounts = "/v1/processing"
}

/// Request headers of the protocol beside the body.
package enum ProtocolHeader {
    /// The sender's wall clock when it sent the request, as decimal nanoseconds since the Unix epoch
    /// (a signed 64-bit integer). Outside the frame, so stored frames can be sent as they are; the
    /// collector takes it when present, else a version 2 frame's `sentAt`.
    package static let sentAt = "Edge-Sync-Sent-At"
}

/// The collector's 200 answer to `POST /v1/batches`, sent only after the batch is committed.
///
/// `acknowledged` names every range of the batch that is now durably stored (new or duplicate), so
/// the edge deletes exactly those from its spool.
package struct BatchAcknowledgement: Codable, Hashable, Sendable {
    package var device: String
    /// The stream id as a decimal string: JSON numbers above 2^53 lose precision in many parsers.
    package var stream: StreamID
    package var accepted: Int
    package var duplicates: Int
    package var acknowledged: [SequenceRange]

    package init(device: String, stream: UInt64, accepted: Int, duplicates: Int, acknowledged: [SequenceRange]) {
        self.device = device
        self.stream = StreamID(stream)
        self.accepted = accepted
        self.duplicates = duplicates
        self.acknowledged = acknowledged
    }
}

/// Ranges the edge removed from its spool without delivering them (drop-oldest policy), reported
/// so the collector's completeness view can tell "dropped at the edge" from "not received yet".
package struct DroppedRangesReport: Codable, Hashable, Sendable {
    package var device: String
    package var stream: StreamID
    package var dropped: [SequenceRange]

    package init(device: String, stream: UInt64, dropped: [SequenceRange]) {
        self.device = device
        self.stream = StreamID(stream)
        self.dropped = dropped
    }
}

/// What the edge's processing rules did to a stream's readings since its spool was created: per
/// rule, readings kept (passed on as themselves), dropped, flagged (kept in a sibling series),
/// reduced (not stored as themselves) and emitted (made by a downsample). Totals, so sending the same report twice, or an older one
/// after a newer, changes nothing: the collector keeps the largest value of each count.
package struct ProcessingCountsReport: Codable, Hashable, Sendable {
    package var device: String
    package var stream: StreamID
    package var rules: [Rule]

    package struct Rule: Codable, Hashable, Sendable {
        package var rule: String
        package var type: String
        package var dropped: Int64
        package var flagged: Int64
        package var reduced: Int64
        package var emitted: Int64
        /// Readings the rule passed on as themselves.
        package var kept: Int64

        package init(
            rule: String, type: String, kept: Int64 = 0, dropped: Int64, flagged: Int64, reduced: Int64, emitted: Int64
        ) {
            self.rule = rule
            self.type = type
            self.kept = kept
            self.dropped = dropped
            self.flagged = flagged
            self.reduced = reduced
            self.emitted = emitted
        }
    }

    package init(device: String, stream: UInt64, rules: [Rule]) {
        self.device = device
        self.stream = StreamID(stream)
        self.rules = rules
    }
}

/// The body of every error response: a stable machine-readable `error` code and a human `message`.
package struct ErrorBody: Codable, Hashable, Sendable {
    package var error: String
    package var message: String

    package init(error: String, message: String) {
        self.error = error
        self.message = message
    }
}

/// A 64-bit stream id, written in JSON as a decimal string so no client rounds it.
package struct StreamID: Hashable, Sendable, Codable, CustomStringConvertible {
    package var value: UInt64

    package init(_ value: UInt64) { self.value = value }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = UInt64(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "stream id \"\(text)\" is not a decimal 64-bit unsigned integer")
        }
        self.value = value
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(value))
    }

    package var description: String { String(value) }
}
