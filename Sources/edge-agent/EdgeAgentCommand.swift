import EdgeAgent
import EdgeSyncCommandLine

/// One `edge-agent` subcommand. Add new ones to `EdgeAgentCommand.subcommands`.
protocol Subcommand: Sendable {
    /// The words that select it: `["import"]`, `["spool", "check"]`.
    static var names: [[String]] { get }
    static var summary: String { get }
    /// Hidden commands (test helpers) are left out of `--help`.
    static var isHidden: Bool { get }
    static var arguments: ArgumentParser { get }
    /// Text after `usage: edge-agent <name> `.
    static var usage: String { get }
    static func run(_ arguments: ParsedArguments) async throws -> ExitCode
}

extension Subcommand {
    static var isHidden: Bool { false }
}

/// Picks the subcommand from the first words, parses its flags and turns failures into exit codes.
enum EdgeAgentCommand {
    static let subcommands: [any Subcommand.Type] = [
        RunCommand.self, DrainCommand.self, ImportCommand.self, StatusCommand.self, SpoolCheckCommand.self,
        ConfigCheckCommand.self,
    ]

    static func main(arguments: [String]) async -> ExitCode {
        guard let first = arguments.first, first != "--help", first != "-h", first != "help" else {
            StandardError.write(help())
            return arguments.isEmpty ? .usage : .success
        }
        let match = subcommands.lazy.compactMap { command -> (any Subcommand.Type, Int)? in
            for name in command.names where arguments.starts(with: name) { return (command, name.count) }
            return nil
        }.first
        guard let (command, consumed) = match else {
            StandardError.print("edge-agent: unknown command \"\(first)\"\n")
            StandardError.write(help())
            return .usage
        }
        let name = command.names[0].joined(separator: " ")
        let rest = arguments.dropFirst(consumed)
        if rest.contains("--help") || rest.contains("-h") {
            print("usage: edge-agent \(name) \(command.usage)\n\n\(command.summary)\n\n\(command.arguments.helpText)")
            return .success
        }
        do {
            let parsed = try command.arguments.parse(rest)
            return try await command.run(parsed)
        } catch let error as UsageError {
            StandardError.print("edge-agent \(name): \(error)")
            StandardError.print("usage: edge-agent \(name) \(command.usage)  (see edge-agent \(name) --help)")
            return .usage
        } catch {
            StandardError.print("edge-agent \(name): \(error)")
            return .failure
        }
    }

    static func help() -> String {
        var text = "usage: edge-agent <command> [options]\n\ncommands:\n"
        for command in subcommands where !command.isHidden {
            let name = command.names[0].joined(separator: " ")
            text += "  \(name.padding(toLength: 12, withPad: " ", startingAt: 0))  \(command.summary)\n"
        }
        return text + "\nedge-agent <command> --help shows a command's options.\n"
    }
}

/// The flags every command that opens the spool shares (parsed in the library).
enum SpoolOptions {
    static let dataDirectory = Spool.Configuration.dataDirectoryOption
    static let all = Spool.Configuration.options

    static func configuration(_ arguments: ParsedArguments) throws(UsageError) -> Spool.Configuration {
        var configuration = try Spool.Configuration(arguments: arguments)
        configuration.onDamagedFile = { message in StandardError.print("edge-agent: \(message)") }
        return configuration
    }
}

extension SpoolError {
    /// The exit status a command reports for this error.
    var exitCode: ExitCode {
        switch kind {
        case .full, .diskFull: .temporaryFailure
        case .ioError: .ioError
        case .damaged: .dataError
        case .invalidInput, .deviceMismatch: .usage
        case .seriesLimit: .dataError
        case .notFound: .failure
        case .storage: .failure
        }
    }
}
