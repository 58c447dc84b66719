import Synchronization
import Testing

@testable import EdgeAgent

/// The gate that bounds gzip inflation across connections.
@Suite struct InflationGateTests {
    private final class Tally: Sendable {
        private let state = Mutex((running: 0, most: 0, finished: 0))

        func enter() {
            state.withLock {
                $0.running += 1; $0.most = max($0.most, $0.running)
            }
        }
        func leave() {
            state.withLock {
                $0.running -= 1; $0.finished += 1
            }
        }
        var most: Int { state.withLock { $0.most } }
        var finished: Int { state.withLock { $0.finished } }
    }

    @Test func neverMoreThanTheLimitRunAndEveryoneGetsATurn() async throws {
        let gate = InflationGate(limit: 2)
        let tally = Tally()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    try? await gate.withPermit { () async throws(InputFailure) in
                        tally.enter()
                        await Task.yield()
                        tally.leave()
                    }
                }
            }
        }
        #expect(tally.most <= 2)
        #expect(tally.finished == 40)
    }

    @Test func aFailingHolderGivesItsTurnBack() async throws {
        let gate = InflationGate(limit: 1)
        await #expect(throws: InputFailure.self) {
            try await gate.withPermit { () async throws(InputFailure) in
                throw InputFailure(.badRequest, "test", "refused")
            }
        }
        let ran = try await gate.withPermit { () async throws(InputFailure) in true }
        #expect(ran)
    }
}
