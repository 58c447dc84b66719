/// A line of input that cannot be turned into readings: what is wrong and exactly where.
///
/// `description` reads `line 14: field "temp": expected a number, found "abc"`.
package struct InputError: Error, CustomStringConvertible, Sendable, Hashable {
    /// 1-based line number in the input.
    package var line: Int
    /// 1-based byte column where the problem starts, when known.
    package var column: Int?
    package var reason: String
    /// Not a bad line: the input holds more readings than the caller accepts at once (HTTP: 413).
    package var isLimitExceeded = false

    package init(line: Int, column: Int? = nil, _ reason: String, isLimitExceeded: Bool = false) {
        self.line = line
        self.column = column
        self.reason = reason
        self.isLimitExceeded = isLimitExceeded
    }

    package var description: String {
        if let column { return "line \(line), column \(column): \(reason)" }
        return "line \(line): \(reason)"
    }
}
