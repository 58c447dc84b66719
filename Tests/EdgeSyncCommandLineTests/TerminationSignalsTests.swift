import Testing

@testable import EdgeSyncCommandLine

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct TerminationSignalsTests {
    @Test func aSIGTERMArrivesAsAnEventInsteadOfKillingTheProcess() async {
        let signals = TerminationSignals.stream()
        kill(getpid(), SIGTERM)
        var iterator = signals.makeAsyncIterator()
        #expect(await iterator.next() == SIGTERM)
    }
}
