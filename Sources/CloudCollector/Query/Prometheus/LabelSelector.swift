import PrometheusRemoteWrite

/// Label matchers ready to test series: regexes compiled once (`LabelRegex`, linear time), and what
/// storage can narrow the search by (an exact device, a key prefix from an exact `__name__`).
package struct LabelSelector: Sendable {
    package struct Matcher: Sendable {
        package var name: String
        package var kind: ReadRequest.LabelMatcher.Kind
        package var value: String
        var regex: LabelRegex?

        /// Whether a label value (`""` for an absent label) passes.
        func passes(_ labelValue: String) -> Bool {
            switch kind {
            case .equal: labelValue.utf8.elementsEqual(value.utf8)
            case .notEqual: !labelValue.utf8.elementsEqual(value.utf8)
            case .regexMatch: regex?.matches(labelValue) ?? false
            case .regexNoMatch: !(regex?.matches(labelValue) ?? false)
            }
        }
    }

    package private(set) var matchers: [Matcher]

    /// Compiles `matchers`; a pattern `LabelRegex` refuses is a 400 that names the matcher.
    package init(_ matchers: [ReadRequest.LabelMatcher]) throws(CollectorError) {
        self.matchers = []
        for matcher in matchers {
            var compiled = Matcher(name: matcher.name, kind: matcher.kind, value: matcher.value, regex: nil)
            if matcher.kind == .regexMatch || matcher.kind == .regexNoMatch {
                do {
                    compiled.regex = try LabelRegex(matcher.value)
                } catch {
                    throw CollectorError(
                        .badRequest, "invalid_regex",
                        "matcher \(matcher.name)\(matcher.kind.symbol)\"\(matcher.value.clipped)\": \(error)")
                }
            }
            self.matchers.append(compiled)
        }
    }

    /// The device every matching series has, when a matcher says `device="…"`.
    var device: String? {
        matchers.first { $0.kind == .equal && $0.name == PrometheusLabels.deviceLabel && !$0.value.isEmpty }?.value
    }

    /// A key prefix every matching series has (from `__name__="…"`), or `""`.
    var keyPrefix: String {
        guard let name = matchers.first(where: { $0.kind == .equal && $0.name == PrometheusLabels.nameLabel })
        else { return "" }
        return PrometheusLabels.keyPrefix(forName: name.value)
    }

    /// Whether the labels (without `stream`) pass every matcher that is not about `stream`.
    func passesSeries(_ labels: [(name: String, value: String)]) -> Bool {
        matchers.allSatisfy { matcher in
            matcher.name == PrometheusLabels.streamLabel
                || matcher.passes(PrometheusLabels.value(of: matcher.name, in: labels))
        }
    }

    /// Whether `stream` passes the matchers about `stream`.
    func passesStream(_ stream: UInt64) -> Bool {
        let text = String(stream)
        return matchers.allSatisfy { $0.name != PrometheusLabels.streamLabel || $0.passes(text) }
    }

    /// Whether every matcher matches the empty value: such a selector selects everything, which
    /// Prometheus refuses for `match[]`.
    var matchesEverything: Bool { matchers.allSatisfy { $0.passes("") } }
}

/// A PromQL series selector as the labels API takes it in `match[]`: `name`, `name{…}` or `{…}`,
/// with matchers `label op "value"` (`=`, `!=`, `=~`, `!~`; double, single or back quotes; Go
/// string escapes in the quoted forms).
package enum SeriesSelectorParser {
    package static func parse(_ text: String) throws(CollectorError) -> [ReadRequest.LabelMatcher] {
        var scalars = Substring(text).unicodeScalars[...]
        var matchers: [ReadRequest.LabelMatcher] = []
        func fail(_ reason: String) -> CollectorError {
            CollectorError(.badRequest, "invalid_selector", "match[] \"\(text.clipped)\": \(reason)")
        }
        func skipSpace() {
            while let first = scalars.first, first == " " || first == "\t" || first == "\n" { scalars.removeFirst() }
        }
        func identifier(colon: Bool) -> String {
            var name = ""
            while let first = scalars.first,
                ("a"..."z").contains(first) || ("A"..."Z").contains(first)
                    || ("0"..."9").contains(first) || first == "_" || (colon && first == ":")
            {
                if name.isEmpty, ("0"..."9").contains(first) { break }
                name.unicodeScalars.append(first)
                scalars.removeFirst()
            }
            return name
        }
        skipSpace()
        let name = identifier(colon: true)
        if !name.isEmpty { matchers.append(ReadRequest.LabelMatcher(PrometheusLabels.nameLabel, .equal, name)) }
        skipSpace()
        if scalars.first == "{" {
            scalars.removeFirst()
            while true {
                skipSpace()
                if scalars.first == "}" {
                    scalars.removeFirst()
                    break
                }
                let label = identifier(colon: false)
                guard !label.isEmpty else { throw fail("expected a label name") }
                skipSpace()
                let kind: ReadRequest.LabelMatcher.Kind
                let rest = String(String.UnicodeScalarView(scalars.prefix(2)))
                if rest == "=~" {
                    kind = .regexMatch
                } else if rest == "!~" {
                    kind = .regexNoMatch
                } else if rest == "!=" {
                    kind = .notEqual
                } else if rest.hasPrefix("=") {
                    kind = .equal
                } else {
                    throw fail("expected =, !=, =~ or !~ after \(label)")
                }
                scalars.removeFirst(kind == .equal ? 1 : 2)
                skipSpace()
                let value = try quoted(&scalars, fail: fail)
                matchers.append(ReadRequest.LabelMatcher(label, kind, value))
                skipSpace()
                if scalars.first == "," {
                    scalars.removeFirst()
                } else if scalars.first != "}" {
                    throw fail("expected , or } after a matcher")
                }
            }
        }
        skipSpace()
        guard scalars.isEmpty else { throw fail("unexpected text after the selector") }
        guard !matchers.isEmpty else { throw fail("a selector needs a metric name or at least one matcher") }
        return matchers
    }

    private static func quoted(
        _ scalars: inout Substring.UnicodeScalarView.SubSequence, fail: (String) -> CollectorError
    ) throws(CollectorError) -> String {
        guard let quote = scalars.first, quote == "\"" || quote == "'" || quote == "`" else {
            throw fail("expected a quoted value")
        }
        scalars.removeFirst()
        var value = String.UnicodeScalarView()
        while let scalar = scalars.first {
            scalars.removeFirst()
            if scalar == quote { return String(value) }
            if scalar == "\\", quote != "`" {
                guard let escaped = scalars.first else { break }
                scalars.removeFirst()
                switch escaped {
                case "n": value.append("\n")
                case "t": value.append("\t")
                case "r": value.append("\r")
                case "\\", "\"", "'": value.append(escaped)
                default: throw fail("unsupported escape \\\(escaped) in a quoted value")
                }
                continue
            }
            value.append(scalar)
        }
        throw fail("a quoted value is not closed")
    }
}
