import EdgeSyncCommandLine
import Foundation

let status = await EdgeAgentCommand.main(arguments: Array(CommandLine.arguments.dropFirst()))
exit(status.rawValue)
