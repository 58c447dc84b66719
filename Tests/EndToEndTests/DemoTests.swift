import EdgeSyncTestSupport
import Foundation
import Testing

/// The quick start's main job: `cloud-collector demo` runs real agents against a real collector,
/// shows progress, and stops cleanly on Ctrl-C, leaving nothing behind.
@Suite(.serialized) struct DemoTests {
    @Test func theDemoSyncsSimulatedGatewaysAndStopsCleanlyOnSIGINT() async throws {
        let demo = try ChildProcess(
            try ChildProcess.productURL("cloud-collector"),
            ["demo", "--gateways", "2", "--sensors", "5", "--rate", "10", "--listen", "127.0.0.1:0"])
        defer { demo.kill() }
        // A progress line showing readings stored from both running gateways.
        _ = try await demo.waitForLine { line in
            guard line.hasPrefix("stored "), line.contains("gateways running 2/2") else { return false }
            let count = line.dropFirst("stored ".count).prefix { $0.isNumber || $0 == "," }
            return (Int(count.replacingOccurrences(of: ",", with: "")) ?? 0) > 0
        }
        demo.kill(SIGINT)
        #expect(await demo.waitForExit() == 0)
        await demo.waitForOutputToClose()
        let output = demo.stdoutText
        #expect(output.contains("dashboard   http://127.0.0.1:"), "\(output)")
        #expect(output.contains("demo: stopped. The collector stored"), "\(output)")
        let files = try #require(output.split(separator: "\n").first { $0.contains("files ") })
        let directory = String(files.split(separator: " ", omittingEmptySubsequences: true)[1])
        #expect(!FileManager.default.fileExists(atPath: directory), "the demo removes its directory")
    }
}
