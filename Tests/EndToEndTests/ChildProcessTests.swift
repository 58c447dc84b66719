import EdgeSyncTestSupport
import Foundation
import Testing

/// The test support that starts the project's binaries: a child that hangs fails its test instead
/// of stalling the suite, and a grandchild holding the output pipe open does not hold the test.
@Suite struct ChildProcessTests {
    static let shell = URL(fileURLWithPath: "/bin/sh")

    @Test func aChildThatDoesNotExitInTimeIsKilledAndTheRunFails() async throws {
        let started = ContinuousClock.now
        await #expect(throws: ChildProcess.Failure.self) {
            _ = try await ChildProcess.run(Self.shell, ["-c", "echo waiting; exec sleep 120"], timeout: .milliseconds(300))
        }
        // Killed: far sooner than the child's own 120 s.
        #expect(ContinuousClock.now - started < .seconds(60))
    }

    @Test func aGrandchildHoldingTheOutputOpenDoesNotHoldTheRun() async throws {
        let started = ContinuousClock.now
        let output = try await ChildProcess.run(
            Self.shell, ["-c", "sleep 20 & echo parent-done"], outputGrace: .milliseconds(300))
        #expect(output.status == 0)
        #expect(output.stdout.contains("parent-done"))
        #expect(ContinuousClock.now - started < .seconds(15))
    }

    @Test func aQuickChildReturnsItsOutputAndStatus() async throws {
        let output = try await ChildProcess.run(Self.shell, ["-c", "echo out; echo err >&2; exit 3"])
        #expect(output.status == 3)
        #expect(output.stdout == "out\n")
        #expect(output.stderr == "err")
    }
}
