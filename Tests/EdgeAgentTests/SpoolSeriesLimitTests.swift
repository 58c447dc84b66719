import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import HTTPCore
import Synchronization
import Testing

@testable import EdgeAgent

/// `spool.max_series`: a cardinality bomb across many writes stops at the limit, durably.
@Suite struct SpoolSeriesLimitTests {
    final class Clock: Sendable {
        let date = Mutex(Date(timeIntervalSince1970: 1_700_000_000))
        func advance(days: Double) { date.withLock { $0 += days * 86_400 } }
        var now: Date { date.withLock { $0 } }
    }

    func configuration(_ directory: String, limit: Int?, clock: Clock) -> Spool.Configuration {
        var configuration = spoolConfiguration(directory)
        configuration.maxSeries = limit
        configuration.seriesClock = { clock.now }
        return configuration
    }

    func readings(_ keys: [String]) -> (keys: [String], readings: [Reading]) {
        (keys, keys.indices.map { Reading(series: $0, timestamp: Int64($0), value: Double($0)) })
    }

    @Test func newSeriesPastTheLimitAreRefusedAcrossWritesAndRestarts() async throws {
        try await withTemporaryDirectory { directory in
            let clock = Clock()
            var spool = try await Spool.open(configuration(directory, limit: 3, clock: clock))
            let first = readings(["a v", "b v"])
            _ = try await spool.append(seriesKeys: first.keys, readings: first.readings)
            // All or nothing for a plain append: one new series too many refuses the write.
            let bomb = readings(["c v", "d v"])
            await #expect(throws: SpoolError.self) {
                _ = try await spool.append(seriesKeys: bomb.keys, readings: bomb.readings)
            }
            #expect(try await storedReadings(spool).count == 2)
            // Admitting: known series and new ones up to the limit are stored, the rest counted.
            let mixed = readings(["a v", "c v", "d v", "e v"])
            let admitted = try await spool.appendAdmitting(seriesKeys: mixed.keys, readings: mixed.readings)
            #expect(admitted.refusedReadings == 2 && admitted.refusedSeries == 2 && admitted.seriesLimit == 3)
            #expect(admitted.range?.count == 2)
            #expect(try await storedReadings(spool).map(\.key) == ["a v", "b v", "a v", "c v"])
            // Many small writes of new series: none gets in.
            for index in 0..<50 {
                let one = readings(["bomb\(index) v"])
                let outcome = try await spool.appendAdmitting(seriesKeys: one.keys, readings: one.readings)
                #expect(outcome.range == nil && outcome.refusedReadings == 1)
            }
            var status = try await spool.status()
            #expect(status.series == 3 && status.maxSeries == 3 && status.seriesRefusedReadings == 2 + 2 + 50)
            // Counted durably: a restart keeps the count.
            spool = try await Spool.open(configuration(directory, limit: 3, clock: clock))
            let after = readings(["f v"])
            #expect(try await spool.appendAdmitting(seriesKeys: after.keys, readings: after.readings).range == nil)
            #expect(try await spool.append(seriesKeys: ["b v"], readings: [Reading(series: 0, timestamp: 9, value: 9)]).count == 1)
            // Series not written since before yesterday are forgotten.
            clock.advance(days: 1)
            let today = readings(["a v"])
            _ = try await spool.append(seriesKeys: today.keys, readings: today.readings)
            clock.advance(days: 1)
            // b and c were last written two days ago; a yesterday: two places are free.
            let fresh = readings(["g v", "h v", "i v"])
            let outcome = try await spool.appendAdmitting(seriesKeys: fresh.keys, readings: fresh.readings)
            #expect(outcome.refusedSeries == 1 && outcome.range?.count == 2)
            status = try await spool.status()
            #expect(status.series == 3)
        }
    }

    @Test func withoutALimitNothingIsTrackedOrRefused() async throws {
        try await withTemporaryDirectory { directory in
            let spool = try await Spool.open(configuration(directory, limit: nil, clock: Clock()))
            let many = readings((0..<500).map { "s\($0) v" })
            #expect(try await spool.appendAdmitting(seriesKeys: many.keys, readings: many.readings).refusedReadings == 0)
            let status = try await spool.status()
            #expect(status.series == 0 && status.maxSeries == nil)
        }
    }

    @Test func anHTTPWritePastTheLimitIsAPartialWriteNamingTheSetting() async throws {
        try await withTemporaryDirectory { directory in
            let spool = try await Spool.open(configuration(directory, limit: 2, clock: Clock()))
            let inputs = InputEndpoints(sink: spool)
            let body = Array("m,s=a v=1 1\nm,s=b v=2 2\nm,s=c v=3 3\nm,s=a v=4 4".utf8)
            let response = try await inputs.respond(
                to: request("POST", "/write?db=x", body: body), context: HTTPRequestContext())
            #expect(response.status.code == 400)
            let text = response.bodyText
            #expect(
                text.contains("partial write") && text.contains("the 2 distinct series spool.max_series")
                    && text.contains("dropped=1"), "\(text)")
            #expect(try await storedReadings(spool).map(\.value) == [1, 2, 4])
            #expect(inputs.statistics.seriesLimitedReadings.load(ordering: .relaxed) == 1)
            // Every series of the request new past the limit: nothing stored, still a 400 naming it.
            let none = try await inputs.respond(
                to: request("POST", "/write?db=x", body: Array("m,s=d v=5 5".utf8)), context: HTTPRequestContext())
            #expect(none.status.code == 400)
            #expect(none.bodyText.contains("nothing from this request was stored"), "\(none.bodyText)")
            #expect(try await spool.status().seriesRefusedReadings == 2)
        }
    }
}
