import EdgeAgent
import EdgeSyncTestSupport
import EdgeSyncProtocol
import Foundation
import Testing

@Suite struct LineProtocolParserTests {
    func parse(_ text: String, line: Int = 1) throws(InputError) -> [IncomingReading] {
        var readings: [IncomingReading] = []
        var parser = LineProtocolParser()
        try parser.parse(ArraySlice(text.utf8), lineNumber: line, defaultTimestamp: 42, into: &readings)
        return readings
    }

    @Test func fieldsBecomeOneReadingEachWithSortedTagsInTheKey() throws {
        let readings = try parse("weather,site=b01,floor=2 temp=21.5,hum=40i,ok=t,count=7u 1700000000000000000")
        #expect(
            readings == [
                IncomingReading(
                    seriesKey: "weather,floor=2,site=b01 temp", timestamp: 1_700_000_000_000_000_000, value: 21.5),
                IncomingReading(
                    seriesKey: "weather,floor=2,site=b01 hum", timestamp: 1_700_000_000_000_000_000, value: 40),
                IncomingReading(
                    seriesKey: "weather,floor=2,site=b01 ok", timestamp: 1_700_000_000_000_000_000, value: 1),
                IncomingReading(
                    seriesKey: "weather,floor=2,site=b01 count", timestamp: 1_700_000_000_000_000_000, value: 7),
            ])
    }

    @Test func missingTimestampUsesTheDefaultAndCommentsAndBlankLinesAreSkipped() throws {
        #expect(try parse("m v=1")[0].timestamp == 42)
        #expect(try parse("# a comment").isEmpty)
        #expect(try parse("   \r").isEmpty)
        #expect(try parse("m v=-1.5e3 -5\r")[0] == IncomingReading(seriesKey: "m v", timestamp: -5, value: -1500))
    }

    @Test func escapesRoundTripThroughTheSeriesKey() throws {
        let readings = try parse(#"my\ meas\,x,tag\=k=a\ b\\c field\ one=1 5"#)
        let key = try #require(readings.first?.seriesKey)
        let parts = try #require(LineProtocolSeriesKey.parse(key))
        #expect(parts.measurement == "my meas,x")
        #expect(parts.tags.map { [$0.0, $0.1] } == [["tag=k", #"a b\c"#]])
        #expect(parts.field == "field one")
        #expect(LineProtocolSeriesKey.make(measurement: parts.measurement, tags: parts.tags, field: parts.field) == key)
    }

    @Test func keysWithGraphemeClustersSpanningADelimiterStillSplitBack() throws {
        // U+0605 is a prepended mark: as Characters, "\u{605} " is one grapheme with the space.
        let readings = try parse("x\u{605},t=\u{605} f\u{605}=1 1")
        let key = try #require(readings.first?.seriesKey)
        let parts = try #require(LineProtocolSeriesKey.parse(key), "\(key.debugDescription)")
        #expect(parts.measurement == "x\u{605}" && parts.field == "f\u{605}")
        #expect(parts.tags.map { [$0.0, $0.1] } == [["t", "\u{605}"]])
    }

    @Test(arguments: [
        ("m,a=1,b=2 f", "m", [["a", "1"], ["b", "2"]], "f"),
        ("m f", "m", [], "f"),
        (#"a\=b,c\,d=e\ f g\\h"#, "a=b", [["c,d", "e f"]], #"g\h"#),
    ])
    func seriesKeysParseBack(key: String, measurement: String, tags: [[String]], field: String) throws {
        let parts = try #require(LineProtocolSeriesKey.parse(key))
        #expect(parts.measurement == measurement && parts.field == field)
        #expect(parts.tags.map { [$0.0, $0.1] } == tags)
    }

    @Test(arguments: ["m", "m,a=1", "m a=1 b", "m,a b c", "m,a= b=1"])
    func keysThatNoMakeCouldProduceAreRefused(_ key: String) {
        if key == "m" || key == "m,a=1" { #expect(LineProtocolSeriesKey.parse(key) == nil) }
    }

    @Test(arguments: [
        ("m", "expected a space and fields"),
        ("m ", "expected a space and fields"),
        ("m  ,", "field key is empty"),
        (",a=1 v=1", "measurement is empty"),
        ("m,a v=1", "expected '=' after the tag key"),
        ("m,=1 v=1", "tag key is empty"),
        ("m,a= v=1", "value of tag \"a\" is empty"),
        ("m v", "expected '=' after the field key"),
        ("m v=", "expected a number, found \"\""),
        ("m v=abc", "field \"v\": expected a number, found \"abc\""),
        ("m v=NaN", "expected a number"),
        ("m v=inf", "expected a number"),
        ("m v=0x10", "expected a number"),
        ("m v=12x", "expected a number"),
        ("m v=99999999999999999999i", "out of the 64-bit range"),
        ("m v=9223372036854775808i", "out of the 64-bit range"),
        ("m v=-9223372036854775809i", "out of the 64-bit range"),
        ("m v=18446744073709551616u", "out of the 64-bit range"),
        ("m v=-1u", "expected a number"),
        ("m v=1.5i", "expected a number"),
        ("m v=tru", "expected a number"),
        ("m v=1e", "expected a number"),
        ("m v=.", "expected a number"),
        ("m v=--1", "expected a number"),
        ("m v=1e999", "expected a number"),
        ("m,a=1=2,b v=1", "expected '=' after the tag key"),
        ("m,t=1,u=2,t=3 v=1", "tag \"t\" appears twice"),
        ("m v=\"text", "no closing quote"),
        ("m v=\"text\\\"", "no closing quote"),
        ("m v=\"a\"b", "unexpected text after the string value"),
        ("m s=\"x\",v=oops", "expected a number"),
        ("m v=1,v=2", "field \"v\" appears twice"),
        ("m v=1 12a", "timestamp: expected an integer (ns since the epoch)"),
        ("m v=1 1 2", "unexpected text after the timestamp"),
        ("m v=1 99999999999999999999", "timestamp"),
        ("m v=1,", "field key is empty"),
    ])
    func malformedLinesNameTheProblemAndTheLine(line: String, message: String) {
        #expect {
            _ = try parse(line, line: 7)
        } throws: { error in
            let error = error as? InputError
            return error?.line == 7 && error?.description.contains(message) == true
        }
    }

    @Test func stringFieldsAreSkippedAndCountedAndTheLinesOtherFieldsStored() throws {
        var parser = LineProtocolParser()
        var readings: [IncomingReading] = []
        // Telegraf's system input: uptime_format is a string between two numbers.
        let line = #"system,host=a load1=0.5,uptime_format="1 day, \"2\":03\\",n_users=2i 9"#
        try parser.parse(ArraySlice(line.utf8), lineNumber: 1, defaultTimestamp: 0, into: &readings)
        #expect(
            readings == [
                IncomingReading(seriesKey: "system,host=a load1", timestamp: 9, value: 0.5),
                IncomingReading(seriesKey: "system,host=a n_users", timestamp: 9, value: 2),
            ])
        #expect(parser.skippedStringFields == 1)
        // Only strings: nothing stored, no error.
        try parser.parse(ArraySlice(#"m s="x",t="" 1"#.utf8), lineNumber: 2, defaultTimestamp: 0, into: &readings)
        #expect(readings.count == 2 && parser.skippedStringFields == 3)
        // A bad line counts nothing.
        #expect(throws: InputError.self) {
            try parser.parse(ArraySlice(#"m s="x",v=x 1"#.utf8), lineNumber: 3, defaultTimestamp: 0, into: &readings)
        }
        #expect(parser.skippedStringFields == 3)
    }

    @Test(arguments: [
        ("9007199254740992i", 9_007_199_254_740_992.0, false),
        ("-9007199254740992i", -9_007_199_254_740_992.0, false),
        ("9007199254740993i", 9_007_199_254_740_992.0, true),
        ("-9007199254740993i", -9_007_199_254_740_992.0, true),
        ("9223372036854775807i", 9_223_372_036_854_775_808.0, true),
        ("-9223372036854775808i", -9_223_372_036_854_775_808.0, false),
        ("18446744073709551615u", 18_446_744_073_709_551_616.0, true),
        ("1152921504606846976u", 1_152_921_504_606_846_976.0, false),
        ("0u", 0.0, false),
    ])
    func integersBeyond2To53AreRoundedToTheNearestDoubleAndCounted(text: String, value: Double, rounded: Bool) throws {
        var parser = LineProtocolParser()
        var readings: [IncomingReading] = []
        try parser.parse(ArraySlice("m v=\(text) 1".utf8), lineNumber: 1, defaultTimestamp: 0, into: &readings)
        #expect(readings.map(\.value) == [value])
        #expect(parser.roundedIntegers == (rounded ? 1 : 0))
    }

    @Test func aQuotedNewlineStaysInsideItsLineAndAnUnclosedQuoteDoesNotSwallowTheRest() throws {
        var parser = LineProtocolParser()
        var block = ReadingBlock()
        let text = Array("a s=\"two\nlines\",v=1 1\nb,t=\"q v=2 2\n# \"\nc v=\"open 3\nd v=4 4\n".utf8)
        var bad = BadLines()
        try text.withUnsafeBufferPointer { buffer throws(InputError) in
            _ = try parser.parseLines(buffer, defaultTimestamp: 0, into: &block, skippingBadLines: &bad)
        }
        #expect(block.incomingReadings.map(\.seriesKey) == ["a v", #"b,t="q v"#, "d v"])
        #expect(bad.count == 1 && bad.first?.line == 4 && bad.firstText == #"c v="open 3"#)
    }

    @Test func badLinesAreSkippedAndTheFirstIsNamedWhenAskedTo() throws {
        var parser = LineProtocolParser()
        var block = ReadingBlock()
        var bad = BadLines()
        let long = String(repeating: "x", count: 70_000)
        let text = Array(("a v=1 1\nb v=x 2\nc v=3 3\n" + long + "\nd v=\u{FF} 4").utf8)
        let lines = try text.withUnsafeBufferPointer { buffer throws(InputError) in
            try parser.parseLines(buffer, defaultTimestamp: 0, into: &block, skippingBadLines: &bad)
        }
        #expect(lines == 5)
        #expect(block.incomingReadings.map(\.seriesKey) == ["a v", "c v"])
        #expect(bad.count == 3)
        #expect(bad.first == InputError(line: 2, column: 5, "field \"v\": expected a number, found \"x\""))
        #expect(bad.firstText == "b v=x 2")
        // The limit still ends the request.
        #expect(throws: InputError.self) {
            var scratch = ReadingBlock()
            var ignored = BadLines()
            _ = try text.withUnsafeBufferPointer { buffer throws(InputError) in
                try parser.parseLines(
                    buffer, defaultTimestamp: 0, maximumReadings: 1, into: &scratch, skippingBadLines: &ignored)
            }
        }
    }

    @Test func invalidUTF8IsRefused() {
        var readings: [IncomingReading] = []
        let bytes: [UInt8] = Array("m,a=".utf8) + [0xC3, 0x28] + Array(" v=1".utf8)
        #expect(throws: InputError(line: 3, "the line is not valid UTF-8")) {
            var parser = LineProtocolParser()
            try parser.parse(bytes[...], lineNumber: 3, defaultTimestamp: 0, into: &readings)
        }
        #expect(readings.isEmpty)
    }

    @Test func anOversizedSeriesKeyIsRefused() {
        #expect(throws: InputError.self) { _ = try parse("m,t=\(String(repeating: "x", count: 1100)) v=1 1") }
    }
}

@Suite struct CSVParserTests {
    func parse(_ lines: [String]) throws(InputError) -> [IncomingReading] {
        var parser = CSVParser()
        var readings: [IncomingReading] = []
        for (index, line) in lines.enumerated() {
            try parser.parse(ArraySlice(line.utf8), lineNumber: index + 1, into: &readings)
        }
        return readings
    }

    @Test func wideRowsBecomeReadingsAndEmptyCellsAreAbsent() throws {
        let readings = try parse(["temp, time ,hum", "21.5,1000,", " ,2024-05-01T12:00:00.25+02:00,40", "", "# note"])
        #expect(
            readings == [
                IncomingReading(seriesKey: "temp", timestamp: 1000, value: 21.5),
                IncomingReading(seriesKey: "hum", timestamp: 1_714_557_600_250_000_000, value: 40),
            ])
    }

    @Test(arguments: [
        (["a,b", "1,2"], 1, "exactly one column named"),
        (["time,a,a"], 1, "appears twice"),
        (["time,"], 1, "series name must be"),
        (["time,a", "1,2,3"], 2, "expected 2 cells"),
        (["time,a", "yesterday,2"], 2, "column \"time\": expected integer nanoseconds or an RFC 3339 time"),
        (["time,a", "1,x"], 2, "column \"a\": expected a number, found \"x\""),
        (["time,a", "1,\"2\""], 2, "quoted cells are not supported"),
        (["time,a", "2024-13-01T00:00:00Z,1"], 2, "RFC 3339"),
        (["time,a", "2024-01-01T00:00:00+0200,1"], 2, "RFC 3339"),
    ])
    func badInputNamesLineAndColumn(lines: [String], line: Int, message: String) {
        #expect {
            _ = try parse(lines)
        } throws: { error in
            (error as? InputError)?.line == line && (error as? InputError)?.description.contains(message) == true
        }
    }
}

@Suite struct LineReaderTests {
    func lines(of bytes: [UInt8], chunk: Int, maximum: Int = 100) async throws -> [String] {
        var pipe: [Int32] = [0, 0]
        #expect(Foundation.pipe(&pipe) == 0)
        let writer = pipe[1]
        let thread = Thread {
            bytes.withUnsafeBytes { _ = write(writer, $0.baseAddress, $0.count) }
            close(writer)
        }
        thread.start()
        defer { close(pipe[0]) }
        var out: [String] = []
        try await LineReader(fileDescriptor: pipe[0], maximumLineBytes: maximum, chunkBytes: chunk).forEachLine {
            line, number in
            out.append("\(number):" + String(decoding: line, as: UTF8.self))
        }
        return out
    }

    @Test(arguments: [1, 2, 3, 7, 64])
    func linesAreTheSameWhateverTheReadSize(chunk: Int) async throws {
        let text = "a\nbb\r\n\nlast-without-newline"
        #expect(
            try await lines(of: Array(text.utf8), chunk: chunk) == ["1:a", "2:bb\r", "3:", "4:last-without-newline"])
    }

    @Test func anOversizedLineIsAnErrorWithItsNumber() async throws {
        let text = "ok\n" + String(repeating: "x", count: 500) + "\nnext\n"
        await #expect(throws: InputError(line: 2, "the line is longer than 100 bytes")) {
            _ = try await lines(of: Array(text.utf8), chunk: 16)
        }
    }
}

@Suite struct LineProtocolFastPathTests {
    @Test func numbersMatchTheStandardLibraryParser() throws {
        var random = SeededRandom(seed: 7)
        var parser = LineProtocolParser()
        for _ in 0..<20_000 {
            let text: String
            switch random.next() % 4 {
            case 0: text = String(Double(bitPattern: random.next() & 0x7FEF_FFFF_FFFF_FFFF) * (random.next() % 2 == 0 ? 1 : -1))
            case 1: text = String(format: "%.\(random.next() % 8)f", Double(Int64(bitPattern: random.next()) % 1_000_000) / 997)
            case 2: text = "\(random.next() % 10_000_000)e\(random.next() % 2 == 0 ? "-" : "+")\(random.next() % 40)"
            default: text = "0.\(String(repeating: "0", count: Int(random.next() % 5)))\(random.next() % 1_000_000_000)"
            }
            var readings: [IncomingReading] = []
            try parser.parse(ArraySlice("m v=\(text) 1".utf8), lineNumber: 1, defaultTimestamp: 0, into: &readings)
            let expected = try #require(Double(text))
            #expect(readings.first?.value.bitPattern == expected.bitPattern, "\(text)")
        }
    }

    @Test func integersUpToTwoToTheFiftyThirdAreExact() throws {
        var parser = LineProtocolParser()
        var readings: [IncomingReading] = []
        let line = "m a=9007199254740992i,b=-9007199254740992i,c=9007199254740992u,d=-0i 1"
        try parser.parse(ArraySlice(line.utf8), lineNumber: 1, defaultTimestamp: 0, into: &readings)
        #expect(readings.map(\.value) == [9_007_199_254_740_992, -9_007_199_254_740_992, 9_007_199_254_740_992, 0])
    }

    @Test(arguments: [
        ("ns", Int64(5)), ("n", 5), ("us", 5_000), ("u", 5_000), ("ms", 5_000_000), ("s", 5_000_000_000),
        ("m", 300_000_000_000), ("h", 18_000_000_000_000),
    ])
    func precisionScalesTimestamps(name: String, nanoseconds: Int64) throws {
        var parser = LineProtocolParser(precision: try #require(TimestampPrecision(influxName: name)))
        var readings: [IncomingReading] = []
        try parser.parse(ArraySlice("m v=1 5".utf8), lineNumber: 1, defaultTimestamp: 0, into: &readings)
        #expect(readings.first?.timestamp == nanoseconds)
    }

    @Test func aTimestampThatOverflowsAtItsPrecisionIsRefused() {
        var parser = LineProtocolParser(precision: .seconds)
        var readings: [IncomingReading] = []
        #expect(throws: InputError.self) {
            try parser.parse(ArraySlice("m v=1 9223372037".utf8), lineNumber: 1, defaultTimestamp: 0, into: &readings)
        }
        #expect(TimestampPrecision(influxName: "weeks") == nil)
    }

    @Test func spellingsOfOneSeriesShareItsKeyAndTheCacheSurvivesAReset() throws {
        var parser = LineProtocolParser()
        var block = ReadingBlock()
        let lines = ["m,b=2,a=1 v=1 1", "m,a=1,b=2 v=2 2", #"m,a=1,b=2 v=3,w=4 3"#, "m,a=1,b=2 v=5 4"]
        for (index, line) in lines.enumerated() {
            try parser.parse(ArraySlice(line.utf8), lineNumber: index + 1, defaultTimestamp: 0, into: &block)
        }
        #expect(block.seriesKeys == ["m,a=1,b=2 v", "m,a=1,b=2 w"])
        #expect(block.readings.map(\.series) == [0, 0, 0, 1, 0])
        // Many distinct series push the interner past its bound; keys stay right across the reset.
        for index in 0..<(SeriesInterner.maximumEntries + 10) {
            try parser.parse(
                ArraySlice("s\(index % 70_000) v=1 1".utf8), lineNumber: 1, defaultTimestamp: 0, into: &block)
        }
        try parser.parse(ArraySlice("m,a=1,b=2 v=6 5".utf8), lineNumber: 1, defaultTimestamp: 0, into: &block)
        #expect(block.incomingReadings.last == IncomingReading(seriesKey: "m,a=1,b=2 v", timestamp: 5, value: 6))
        #expect(Set(block.seriesKeys).count == block.seriesKeys.count)
        #expect(block.incomingReadings[SeriesInterner.maximumEntries].seriesKey == "s\(SeriesInterner.maximumEntries - 5) v")
    }

    @Test func aBodyIsTakenWholeOrNotAtAllAndBadLinesAreNamed() throws {
        var parser = LineProtocolParser()
        var block = ReadingBlock()
        let good = Array("a v=1 1\n\n# c\nb v=2 2\n".utf8)
        let lines = try good.withUnsafeBufferPointer { buffer throws(InputError) in
            try parser.parseLines(buffer, defaultTimestamp: 0, into: &block)
        }
        #expect(lines == 4)
        #expect(block.count == 2)
        let bad = Array("a v=1 1\nb v=x 2\nc v=3".utf8)
        #expect(throws: InputError(line: 2, column: 5, "field \"v\": expected a number, found \"x\"")) {
            var scratch = ReadingBlock()
            _ = try bad.withUnsafeBufferPointer { buffer throws(InputError) in
                try parser.parseLines(buffer, defaultTimestamp: 0, into: &scratch)
            }
        }
        let long = Array("a v=1 1\n".utf8) + Array(repeating: UInt8(ascii: "x"), count: 70_000)
        #expect(throws: InputError(line: 2, "the line is longer than 65536 bytes")) {
            var scratch = ReadingBlock()
            _ = try long.withUnsafeBufferPointer { buffer throws(InputError) in
                try parser.parseLines(buffer, defaultTimestamp: 0, into: &scratch)
            }
        }
    }
}
