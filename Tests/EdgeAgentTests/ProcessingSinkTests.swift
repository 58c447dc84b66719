import EdgeSyncCodec
import EdgeSyncMetrics
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import HTTPCore
import Testing

@testable import EdgeAgent

@Suite struct ProcessingSinkTests {
    static let second: Int64 = 1_000_000_000
    static let now: Int64 = 1_700_000_000 * second

    static let rules: [ProcessingRule] = {
        var range = ProcessingRule.Validation()
        range.minimum = 0
        range.maximum = 100
        var celsius = ProcessingRule.Conversion()
        celsius.scale = 0.1
        celsius.field = "celsius"
        return [
            ProcessingRule(name: "tenths", match: SeriesMatch(field: Glob("decicelsius")), action: .convert(celsius)),
            ProcessingRule(name: "range", match: SeriesMatch(measurement: Glob("room")), action: .validate(range)),
            ProcessingRule(name: "debug", match: SeriesMatch(tags: ["host": Glob("test")]), action: .drop),
            ProcessingRule(
                name: "steady", match: SeriesMatch(measurement: Glob("room")),
                action: .deadband(.init(delta: 0.5, heartbeat: 3600 * second))),
        ]
    }()

    func sink(_ inner: any ReadingSink) -> ProcessingSink {
        ProcessingSink(rules: Self.rules, capacity: 1000, inner: inner, now: { Self.now })
    }

    @Test func anHTTPWriteIsProcessedBeforeTheSpoolAndOnlyWhatIsKeptGetsSequences() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            let spool = try await Spool.open(spoolConfiguration(directory))
            let processing = sink(spool)
            let inputs = InputEndpoints(sink: processing, now: { Self.now })
            let body = Array(
                """
                room,host=a decicelsius=215 1700000000000000000
                room,host=a decicelsius=217 1700000001000000000
                room,host=a decicelsius=5000 1700000002000000000
                room,host=test decicelsius=1 1700000003000000000
                room,host=a decicelsius=230 1700000004000000000
                other v=1 1700000005000000000

                """.utf8)
            let response = try await inputs.respond(
                to: request("POST", "/write?db=x", body: body), context: HTTPRequestContext())
            #expect(response.status == .noContent)
            let stored = try await storedReadings(spool)
            #expect(stored.map(\.seq) == [1, 2, 3])
            #expect(stored.map(\.key) == ["room,host=a celsius", "room,host=a celsius", "other v"])
            #expect(stored.map(\.value) == [21.5, 23, 1])
            let counts = Dictionary(uniqueKeysWithValues: processing.counts.map { ($0.rule.name, $0.counts) })
            #expect(counts["tenths"] == ProcessingCounts(kept: 4))
            #expect(counts["range"] == ProcessingCounts(dropped: 1, kept: 3))
            #expect(counts["debug"] == ProcessingCounts(dropped: 1))
            #expect(counts["steady"] == ProcessingCounts(reduced: 1, kept: 2))
            // A write the rules drop whole is answered as stored, and stores nothing.
            let dropped = Array("room,host=test decicelsius=1 1700000006000000000\n".utf8)
            let again = try await inputs.respond(
                to: request("POST", "/write?db=x", body: dropped), context: HTTPRequestContext())
            #expect(again.status == .noContent)
            #expect(try await spool.status().nextSequence == 4)
        }
    }

    @Test func aRefusedWriteCountsNothingAndItsRetryIsProcessedAfresh() async throws {
        let inner = RecordingSink(refusing: .full)
        let processing = sink(inner)
        let keys = ["room,host=a decicelsius"]
        let readings = [
            Reading(series: 0, timestamp: Self.now, value: 200),
            Reading(series: 0, timestamp: Self.now + 1, value: 201),
        ]
        await #expect(throws: SpoolError.self) {
            try await processing.appendWhole(seriesKeys: keys, readings: readings)
        }
        #expect(processing.counts.allSatisfy { $0.counts.isZero })
        inner.refuse(nil)
        let range = try await processing.appendWhole(seriesKeys: keys, readings: readings)
        #expect(range == SequenceRange(1, 1))
        #expect(inner.readings.map(\.value) == [20])
        #expect(processing.counts[3].counts == ProcessingCounts(reduced: 1, kept: 1))
        // All of a write dropped: nothing reaches the spool, and the answer says so.
        let none = try await processing.appendWhole(seriesKeys: ["x,host=test v"], readings: [readings[0]])
        #expect(none == nil)
        let admitted = try await processing.appendAdmitting(seriesKeys: ["x,host=test v"], readings: [readings[0]])
        #expect(admitted.range == nil && admitted.refusedReadings == 0)
        #expect(inner.appends.count == 1)
        #expect(processing.counts[2].counts == ProcessingCounts(dropped: 2))
    }

    @Test func socketAndImportInputsWriteThroughTheRulesToo() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            let spool = try await Spool.open(spoolConfiguration(directory))
            let processing = sink(spool)
            let path = directory + "/in.lp"
            try "room,host=test decicelsius=1 1\nroom,host=test decicelsius=2 2\n".write(
                toFile: path, atomically: true, encoding: .utf8)
            let descriptor = open(path, O_RDONLY)
            defer { close(descriptor) }
            let result = try await Importer(sink: processing, format: .lineProtocol).run(fileDescriptor: descriptor)
            #expect(result.durableLines == 2 && result.readings == 0 && result.sequences == nil)
            let block = {
                var block = ReadingBlock()
                block.append(IncomingReading(seriesKey: "room,host=b decicelsius", timestamp: 5, value: 300))
                return block
            }()
            let outcome = processing.appendBlocking(block)
            #expect(try outcome.get() == SequenceRange(1, 1))
            #expect(try await storedReadings(spool).map(\.key) == ["room,host=b celsius"])
        }
    }

    @Test func openDownsampleWindowsAreStoredWhenFlushed() async throws {
        let inner = RecordingSink()
        let rule = ProcessingRule(
            name: "minute", action: .downsample(.init(window: 60 * Self.second, aggregates: [.mean])))
        let processing = ProcessingSink(rules: [rule], capacity: 10, inner: inner, now: { Self.now })
        let readings = (0..<6).map {
            Reading(series: 0, timestamp: Self.now + Int64($0) * Self.second, value: Double($0))
        }
        #expect(try await processing.appendWhole(seriesKeys: ["m v"], readings: readings) == nil)
        #expect(try await processing.flushWindows(idle: Self.second) == 0, "the window took a reading just now")
        #expect(try await processing.flushWindows(idle: nil) == 1)
        #expect(inner.readings.map(\.value) == [2.5])
        #expect(processing.counts[0].counts == ProcessingCounts(reduced: 6, emitted: 1))
        #expect(try await processing.flushWindows(idle: nil) == 0)
        var out = Exposition()
        processing.writeMetrics(into: &out)
        #expect(
            out.text.contains(
                #"edge_agent_processing_readings_total{rule="minute",type="downsample",outcome="reduced"} 6"#))
        #expect(
            out.text.contains(
                #"edge_agent_processing_readings_total{rule="minute",type="downsample",outcome="emitted"} 1"#))
    }
}
