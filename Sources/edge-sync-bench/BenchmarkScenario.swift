import Foundation

/// One benchmark scenario of `edge-sync-bench`, selected by name on the command line.
protocol BenchmarkScenario {
    /// The word that selects this scenario: `edge-sync-bench <name>`.
    static var name: String { get }
    /// One line for `edge-sync-bench --help`.
    static var summary: String { get }
    /// Runs the scenario and prints its table to standard output.
    static func run(_ options: BenchmarkOptions) async throws
}

/// Options shared by every scenario.
struct BenchmarkOptions: Sendable {
    /// Folder holding the real datasets (`CGM.csv.gz`, `cycling.csv.gz`, `sea_surface_temperature.csv.gz`).
    var dataDirectory: URL
    /// Remaining arguments, for scenario-specific flags.
    var arguments: [String]
}

/// A benchmark failure that names what went wrong; printed without a stack trace, exit status 1.
struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Prints rows as an aligned plain-text table (also valid Markdown).
struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    init(_ header: String...) { self.header = header }

    mutating func append(_ row: String...) { rows.append(row) }

    func render() -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            let padded = cells.enumerated().map { index, cell in
                cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }
            return "| " + padded.joined(separator: " | ") + " |"
        }
        var out = [line(header), "|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|"]
        out += rows.map(line)
        return out.joined(separator: "\n")
    }
}
