import EdgeSyncProtocol

/// One entry of `processing.rules` in `agent.json`: which series it applies to and what it does to
/// their readings. Rules are applied in order, after parsing and before the spool commit
/// (`ProcessingSink`); each rule sees the series as the rules before it left it (a rule after a
/// rename matches the new name). `Docs/configuration.md` lists the keys.
package struct ProcessingRule: Sendable, Hashable {
    /// Unique among the rules; names the rule in counters, `status`, `/metrics` and the collector.
    package var name: String
    package var match: SeriesMatch
    package var action: Action

    package init(name: String, match: SeriesMatch = SeriesMatch(), action: Action) {
        self.name = name
        self.match = match
        self.action = action
    }

    package enum Action: Sendable, Hashable {
        case validate(Validation)
        case convert(Conversion)
        /// Drops every reading of the matched series.
        case drop
        case deadband(Deadband)
        case downsample(Downsample)
        /// The codec's lossy mode: each value is rounded to the coarsest decimal step within this
        /// absolute bound (`ErrorBound`); every reading is kept.
        case errorBound(Double)
    }

    /// The rule's type as configured (`"validate"`, `"deadband"`, …).
    package var typeName: String {
        switch action {
        case .validate: "validate"
        case .convert: "convert"
        case .drop: "drop"
        case .deadband: "deadband"
        case .downsample: "downsample"
        case .errorBound: "error_bound"
        }
    }

    /// A plausible range and time window; readings outside are dropped or kept and flagged.
    package struct Validation: Sendable, Hashable {
        package var minimum: Double?
        package var maximum: Double?
        /// NaN and infinities are invalid (default true).
        package var rejectsNonFinite = true
        /// Timestamps more than this many nanoseconds after the agent's clock are invalid.
        package var maximumFuture: Int64?
        /// Timestamps more than this many nanoseconds before the agent's clock are invalid.
        package var maximumPast: Int64?
        package var action = InvalidAction.drop

        package init() {}

        package enum InvalidAction: Sendable, Hashable {
            case drop
            /// Keeps the reading in a sibling series with the tag `tag=<rule name>` added, so the
            /// original series holds only valid readings. Later reducing rules skip it.
            case flag(tag: String)
        }
    }

    /// Unit conversion (`value * scale + offset`) and renaming of the series.
    package struct Conversion: Sendable, Hashable {
        package var scale = 1.0
        package var offset = 0.0
        package var measurement: String?
        package var field: String?
        /// Tag renames, old name → new name (applied before `addTags`).
        package var renameTags: [String: String] = [:]
        package var dropTags: Set<String> = []
        /// Tags added (or overwritten).
        package var addTags: [String: String] = [:]

        package init() {}

        var changesValues: Bool { scale != 1 || offset != 0 }
    }

    /// Stores a reading only when it differs by more than `delta` from the last one stored of its
    /// series, or when `heartbeat` nanoseconds have passed since that one (so a silent sensor and a
    /// steady value look different). Holding the last stored value reproduces every dropped reading
    /// within `delta`.
    package struct Deadband: Sendable, Hashable {
        package var delta: Double
        package var heartbeat: Int64

        package init(delta: Double, heartbeat: Int64) {
            self.delta = delta
            self.heartbeat = heartbeat
        }
    }

    /// One reading per window of `window` nanoseconds (aligned to the Unix epoch) per aggregate.
    package struct Downsample: Sendable, Hashable {
        package var window: Int64
        /// With one aggregate the series keeps its key; with several each is a series of its own
        /// with `_<aggregate>` appended to the field.
        package var aggregates: [Aggregate]

        package init(window: Int64, aggregates: [Aggregate]) {
            self.window = window
            self.aggregates = aggregates
        }

        package enum Aggregate: String, Sendable, Hashable, CaseIterable {
            /// The window's last reading, at its own time.
            case last
            /// The mean of the window's values, at the window's start.
            case mean
            /// The smallest value, at the time of its (first) reading.
            case min
            /// The largest value, at the time of its (first) reading.
            case max
        }
    }
}

/// Which series a rule applies to: globs (`*`, `?`) on the measurement, the field and tag values.
/// A tag pattern needs the tag to be present. An empty match applies to every series.
package struct SeriesMatch: Sendable, Hashable {
    package var measurement: Glob?
    package var field: Glob?
    package var tags: [String: Glob] = [:]

    package init(measurement: Glob? = nil, field: Glob? = nil, tags: [String: Glob] = [:]) {
        self.measurement = measurement
        self.field = field
        self.tags = tags
    }

    func matches(_ series: SeriesName) -> Bool {
        if let measurement, !measurement.matches(series.measurement) { return false }
        if let field, !field.matches(series.field) { return false }
        for (name, pattern) in tags {
            guard let value = series.tag(name), pattern.matches(value) else { return false }
        }
        return true
    }
}

/// A series key split into its parts, as the rules see and change it. Tag names compare byte for
/// byte, as the series key does.
struct SeriesName {
    var measurement: String
    var tags: [(name: String, value: String)]
    var field: String

    init?(key: String) {
        guard let parts = LineProtocolSeriesKey.parse(key) else { return nil }
        measurement = parts.measurement
        tags = parts.tags.map { (name: $0.0, value: $0.1) }
        field = parts.field
    }

    var key: String {
        LineProtocolSeriesKey.make(measurement: measurement, tags: tags.map { ($0.name, $0.value) }, field: field)
    }

    func tag(_ name: String) -> String? {
        tags.first { $0.name.utf8.elementsEqual(name.utf8) }?.value
    }

    /// Sets tag `name` to `value`, replacing it when present.
    mutating func setTag(_ name: String, _ value: String) {
        if let index = tags.firstIndex(where: { $0.name.utf8.elementsEqual(name.utf8) }) {
            tags[index].value = value
        } else {
            tags.append((name, value))
        }
    }

    mutating func apply(_ conversion: ProcessingRule.Conversion) {
        if let measurement = conversion.measurement { self.measurement = measurement }
        if let field = conversion.field { self.field = field }
        if !conversion.renameTags.isEmpty {
            // Renamed all at once, so `a→b, b→a` swaps; a rename onto an existing tag replaces it.
            var renamed: [(name: String, value: String)] = []
            for tag in tags {
                let name = conversion.renameTags.first { $0.key.utf8.elementsEqual(tag.name.utf8) }?.value ?? tag.name
                renamed.removeAll { $0.name.utf8.elementsEqual(name.utf8) }
                renamed.append((name, tag.value))
            }
            tags = renamed
        }
        if !conversion.dropTags.isEmpty {
            tags.removeAll { tag in conversion.dropTags.contains { $0.utf8.elementsEqual(tag.name.utf8) } }
        }
        for (name, value) in conversion.addTags.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            setTag(name, value)
        }
    }
}

/// A shell-style pattern over bytes: `*` any run, `?` one byte, everything else itself.
package struct Glob: Sendable, Hashable, CustomStringConvertible {
    package let pattern: String
    private let bytes: [UInt8]
    private let kind: Kind

    private enum Kind: Hashable {
        case any, exact, wildcard
    }

    package init(_ pattern: String) {
        self.pattern = pattern
        bytes = Array(pattern.utf8)
        if pattern == "*" {
            kind = .any
        } else if bytes.contains(where: { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") }) {
            kind = .wildcard
        } else {
            kind = .exact
        }
    }

    package var description: String { pattern }

    package func matches(_ text: String) -> Bool {
        switch kind {
        case .any: return true
        case .exact: return text.utf8.elementsEqual(bytes)
        case .wildcard: return Self.match(bytes[...], Array(text.utf8)[...])
        }
    }

    /// Iterative matching with one backtrack point for the last `*`: linear-ish, never exponential.
    private static func match(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        var p = pattern.startIndex
        var t = text.startIndex
        var star: Int?
        var starText = t
        while t < text.endIndex {
            if p < pattern.endIndex, pattern[p] == UInt8(ascii: "*") {
                star = p
                p += 1
                starText = t
            } else if p < pattern.endIndex, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if let star {
                p = star + 1
                starText += 1
                t = starText
            } else {
                return false
            }
        }
        while p < pattern.endIndex, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.endIndex
    }
}
