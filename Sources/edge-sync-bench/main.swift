import Foundation

/// Every scenario the benchmark knows; add new ones here.
let scenarios: [any BenchmarkScenario.Type] = [
    CodecBenchmark.self,
    HTTPBenchmark.self,
    IngestBenchmark.self,
    PostgresIngestBenchmark.self,
    SpoolBenchmark.self,
    TransportBenchmark.self,
    ReplayBenchmark.self,
    InputsBenchmark.self,
    QueryBenchmark.self,
    RemoteReadBenchmark.self,
    RemoteWriteBenchmark.self,
    SyncsBenchmark.self,
    LifecycleBenchmark.self,
    StreamBenchmark.self,
    ProcessingBenchmark.self,
    StorageBenchmark.self,
]

@MainActor func usage() -> String {
    var text = """
        usage: edge-sync-bench <scenario> [--data DIR] [scenario options]

        Run in a release build: swift run -c release edge-sync-bench <scenario>
        --data DIR   folder with the real datasets (default: ../shared/data beside the package)

        scenarios:

        """
    for scenario in scenarios {
        text += "  \(scenario.name.padding(toLength: 12, withPad: " ", startingAt: 0))  \(scenario.summary)\n"
    }
    return text
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let selected = arguments.first, !selected.hasPrefix("-") else {
    FileHandle.standardError.write(Data(usage().utf8))
    exit(arguments.contains("--help") || arguments.contains("-h") ? 0 : 64)
}
arguments.removeFirst()
guard let scenario = scenarios.first(where: { $0.name == selected }) else {
    FileHandle.standardError.write(Data("edge-sync-bench: unknown scenario '\(selected)'\n\n\(usage())".utf8))
    exit(64)
}

var dataDirectory = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    .deletingLastPathComponent().appendingPathComponent("shared/data")
if let flag = arguments.firstIndex(of: "--data") {
    guard flag + 1 < arguments.count else {
        FileHandle.standardError.write(Data("edge-sync-bench: --data needs a folder\n".utf8))
        exit(64)
    }
    dataDirectory = URL(fileURLWithPath: arguments[flag + 1])
    arguments.removeSubrange(flag...flag + 1)
}

#if DEBUG
FileHandle.standardError.write(Data("edge-sync-bench: warning: debug build; numbers are meaningless, use -c release\n".utf8))
#endif

do {
    try await scenario.run(BenchmarkOptions(dataDirectory: dataDirectory, arguments: arguments))
} catch {
    FileHandle.standardError.write(Data("edge-sync-bench \(selected): \(error)\n".utf8))
    exit(1)
}
