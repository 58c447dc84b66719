/// One log event per line in logfmt: `level=warn event=retry range=1-10 wait_ms=250 reason="503"`.
///
/// A small value handed to each component (a label names the component), in the manner of
/// swift-log: libraries log through the `Logger` they are given and never print; the executable
/// decides where records go (standard error, made readable on a terminal) by the handler it builds
/// the root logger with. Field values are escaped in one place, `Record.logfmt`.
public struct Logger: Sendable {
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case debug, info, warning, error

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// One field's value: written bare when it needs no quotes, else quoted and escaped.
    public struct Value: Sendable, ExpressibleByStringInterpolation, ExpressibleByIntegerLiteral {
        public let text: String
        /// Quoted even when it has no space (messages, reasons, errors: a reader sees where they end).
        public let isQuoted: Bool

        public init(stringLiteral text: String) { self.init(text, quoted: false) }
        public init(integerLiteral value: Int) { self.init(String(value), quoted: false) }
        public init(_ text: String, quoted: Bool) {
            self.text = text
            self.isQuoted = quoted
        }

        /// Free text (an error, a reason): always in quotes.
        public static func quoted(_ text: String) -> Value { Value(text, quoted: true) }
        public static func quoted(_ error: any Error) -> Value { Value("\(error)", quoted: true) }
    }

    public struct Record: Sendable {
        public var level: Level
        /// The component that logged it (`edge-agent.inputs.tcp`, `cloud-collector.router`).
        public var label: String
        public var event: String
        public var fields: [(key: String, value: Value)]

        public init(level: Level, label: String, event: String, fields: [(key: String, value: Value)]) {
            self.level = level
            self.label = label
            self.event = event
            self.fields = fields
        }

        /// `level=… event=… key=value …`. `warningName` is how `.warning` is spelled (the agent's
        /// lines have always said `warn`, the collector's `warning`).
        public func logfmt(warningName: String = "warning") -> String {
            let name =
                switch level {
                case .debug: "debug"
                case .info: "info"
                case .warning: warningName
                case .error: "error"
                }
            var line = "level=\(name) event=\(event)"
            for (key, value) in fields {
                line += " \(key)=" + Self.escaped(value)
            }
            return line
        }

        /// A bare value unless it is empty or holds a space, `"`, `=` or a control character; in
        /// quotes `\` and `"` are escaped and line breaks become `\n`, so a record stays one line.
        static func escaped(_ value: Value) -> String {
            let needsQuotes =
                value.isQuoted || value.text.isEmpty
                || value.text.unicodeScalars.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0.value < 0x20 || $0.value == 0x7F }
            guard needsQuotes else { return value.text }
            var out = "\""
            for scalar in value.text.unicodeScalars {
                switch scalar {
                case "\\": out += "\\\\"
                case "\"": out += "\\\""
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += " "
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
    }

    public typealias Handler = @Sendable (Record) -> Void

    public let label: String
    /// Records below this level are not built at all (their fields are autoclosures).
    public var minimumLevel: Level
    private let handler: Handler

    public init(label: String, minimumLevel: Level = .info, handler: @escaping Handler) {
        self.label = label
        self.minimumLevel = minimumLevel
        self.handler = handler
    }

    /// Drops everything: the default where a caller does not care (tests, benchmarks).
    public static let discard = Logger(label: "discard", minimumLevel: .error) { _ in }

    /// The same destination for a part of this component: `logger.child("tcp")` logs as `label.tcp`.
    public func child(_ name: String) -> Logger {
        Logger(label: label + "." + name, minimumLevel: minimumLevel, handler: handler)
    }

    public func log(
        _ level: Level, _ event: String, _ fields: @autoclosure () -> KeyValuePairs<String, Value> = [:]
    ) {
        guard level >= minimumLevel else { return }
        handler(Record(level: level, label: label, event: event, fields: fields().map { ($0.key, $0.value) }))
    }

    /// The same with fields built at run time (a list whose length varies).
    public func log(_ level: Level, _ event: String, fieldList: @autoclosure () -> [(key: String, value: Value)]) {
        guard level >= minimumLevel else { return }
        handler(Record(level: level, label: label, event: event, fields: fieldList()))
    }

    public func debug(_ event: String, _ fields: @autoclosure () -> KeyValuePairs<String, Value> = [:]) {
        log(.debug, event, fields())
    }
    public func info(_ event: String, _ fields: @autoclosure () -> KeyValuePairs<String, Value> = [:]) {
        log(.info, event, fields())
    }
    public func warning(_ event: String, _ fields: @autoclosure () -> KeyValuePairs<String, Value> = [:]) {
        log(.warning, event, fields())
    }
    public func error(_ event: String, _ fields: @autoclosure () -> KeyValuePairs<String, Value> = [:]) {
        log(.error, event, fields())
    }
}
