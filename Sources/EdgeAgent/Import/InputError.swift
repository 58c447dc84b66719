/// A line of input that cannot be turned into readings: what is wrong and exactly where.
///
/// `description` reads `line 14: field "temp": expected a number, found "abc"`.
package struct InputError: Error, CustomStringConvertible, Sendable, Hashable {
    /// 1-based line number in the input.
    package var line: Int
    /// 1-based byte column where the problem starts, when known.
    package var column: Int?
    package var reason: String

    package init(line: Int, column: Int? = nil, _ reason: String) {
        self.line = line
        self.column = column
        self.reason = reason
    }

    package var description: String {
        if let column { return "line \(line), column \(column): \(reason)" }
        return "line \(line): \(reason)"
    }
}
