import EdgeSyncCommandLine
import Foundation

// `cloud-collector serve | token add|list|revoke`: a dispatcher over CloudCollector.
let arguments = Array(CommandLine.arguments.dropFirst())
let status: ExitCode
do {
    switch arguments.first {
    case "serve": status = try await ServeCommand.run(Array(arguments.dropFirst()))
    case "token": status = try TokenCommand.run(Array(arguments.dropFirst()))
    case "demo": status = try await DemoCommand.run(Array(arguments.dropFirst()))
    case "config" where arguments.dropFirst().first == "check":
        status = try ConfigCheckCommand.run(Array(arguments.dropFirst(2)))
    case "--help", "-h", "help":
        print(usage, terminator: "")
        status = .success
    case let other?: throw UsageError("unknown command \"\(other)\"")
    case nil: throw UsageError("missing command")
    }
} catch let error as UsageError {
    standardError("cloud-collector: \(error)\n\(usage)")
    status = .usage
} catch {
    standardError("cloud-collector: \(error)\n")
    status = .failure
}
exit(status.rawValue)
