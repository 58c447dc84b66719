import Testing

@testable import EdgeSyncCommandLine

@Suite struct ArgumentParserTests {
    let parser = ArgumentParser(
        options: [
            .value("--data-dir", "DIR", help: "spool directory"),
            .value("--format", "lp|csv", help: "input format"),
            .flag("--json", help: "machine-readable output"),
            ArgumentParser.Option("--tag", .value(placeholder: "K=V", isRepeatable: true), help: "extra tag"),
        ],
        positionals: ["FILE"]
    )

    @Test func readsValuesFlagsAndPositionals() throws {
        let parsed = try parser.parse([
            "--data-dir", "/tmp/x", "--json", "--format=csv", "in.lp", "--tag", "a=1", "--tag=b=2",
        ])
        #expect(parsed.value("--data-dir") == "/tmp/x")
        #expect(parsed.value("--format") == "csv")
        #expect(parsed.isSet("--json"))
        #expect(parsed.positionals == ["in.lp"])
        #expect(parsed.allValues("--tag") == ["a=1", "b=2"])
    }

    @Test func aLoneDashAndEverythingAfterDoubleDashArePositional() throws {
        #expect(try parser.parse(["-"]).positionals == ["-"])
        #expect(try parser.parse(["--", "--json"]).positionals == ["--json"])
    }

    @Test(arguments: [
        (["--data-dir"], UsageError("needs a value", setting: "--data-dir")),
        (["--datadir", "x"], UsageError("unknown option", setting: "--datadir")),
        (["--json=yes"], UsageError("takes no value", setting: "--json")),
        (["--format", "lp", "--format", "csv"], UsageError("given more than once", setting: "--format")),
        (["a", "b"], UsageError("unexpected argument \"b\"")),
    ])
    func mistakesNameTheArgument(arguments: [String], expected: UsageError) {
        #expect(throws: expected) { try parser.parse(arguments) }
    }

    @Test func typedAccessorsNameTheFlagAndTheBadValue() throws {
        let parsed = try parser.parse(["--format", "xml"])
        #expect(throws: UsageError("expected lp or csv, found \"xml\"", setting: "--format")) {
            try parsed.value("--format", as: "lp or csv") { ["lp", "csv"].contains($0) ? $0 : nil }
        }
        #expect(throws: UsageError("is required", setting: "--data-dir")) { try parsed.required("--data-dir") }
        #expect(throws: UsageError("missing argument FILE")) { try parsed.positional(0, name: "FILE") }
    }

    @Test func helpListsEveryOption() {
        let lines = parser.helpText.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0].contains("--data-dir DIR") && lines[0].hasSuffix("spool directory"))
    }
}

@Suite struct ConfigurationFileTests {
    @Test func readsNestedTypedValues() throws {
        let file = try ConfigurationFile(
            bytes: Array(
                #"{"device": "gw-1", "limits": {"max_bytes": 1048576, "ratio": 0.5}, "tls": true, "x": null}"#.utf8),
            source: "agent.json")
        #expect(try file.string("device") == "gw-1")
        #expect(try file.integer("limits.max_bytes", in: 1...Int64.max) == 1_048_576)
        #expect(try file.number("limits.ratio") == 0.5)
        #expect(try file.bool("tls") == true)
        #expect(try file.string("x") == nil)
        #expect(try file.string("absent") == nil)
        try file.rejectUnknownKeys()
    }

    @Test func anUnreadKeyIsReportedWithItsPath() throws {
        let file = try ConfigurationFile(
            bytes: Array(#"{"device": "gw-1", "limits": {"max_bytes": 1, "max_byte": 2}}"#.utf8), source: "agent.json")
        _ = try file.string("device")
        _ = try file.integer("limits.max_bytes")
        #expect(throws: UsageError("unknown configuration key", setting: "agent.json: limits.max_byte")) {
            try file.rejectUnknownKeys()
        }
    }

    @Test func wrongTypesAndRangesNameTheKey() throws {
        let file = try ConfigurationFile(
            bytes: Array(#"{"a": "1", "b": 1.5, "c": 0, "d": [1], "e": true}"#.utf8), source: "c.json")
        #expect(throws: UsageError("expected an integer, found a string", setting: "c.json: a")) {
            try file.integer("a")
        }
        #expect(throws: UsageError("expected an integer, found a number", setting: "c.json: b")) {
            try file.integer("b")
        }
        #expect(throws: UsageError("0 is out of range 1...10", setting: "c.json: c")) {
            try file.integer("c", in: 1...10)
        }
        #expect(throws: UsageError("expected an array of strings, found an array", setting: "c.json: d")) {
            try file.stringArray("d")
        }
        #expect(throws: UsageError("expected a number, found a boolean", setting: "c.json: e")) { try file.number("e") }
    }

    @Test(arguments: ["", "{", "[1, 2]", "\"text\"", "\u{FF}\u{FE}"])
    func malformedFilesAreRejectedNamingTheFile(text: String) {
        let error = #expect(throws: UsageError.self) {
            try ConfigurationFile(bytes: Array(text.utf8), source: "bad.json")
        }
        #expect(error?.setting == "bad.json")
    }

    @Test func aMissingFileIsAUsageErrorNamingIt() {
        let error = #expect(throws: UsageError.self) { try ConfigurationFile(path: "/nonexistent/edge-sync.json") }
        #expect(error?.setting == "/nonexistent/edge-sync.json")
    }
}

@Suite struct ProgressTests {
    @Test func rendersABarWithRateAndETA() {
        let line = ProgressLine(done: 2_500_000, total: 10_000_000, elapsedSeconds: 2, unit: "readings")
        #expect(line.rendered(barWidth: 10) == "[##........] 25% 2,500,000/10,000,000 readings  1.3 M/s  eta 6s")
    }

    @Test func withoutATotalShowsCountAndRate() {
        #expect(
            ProgressLine(done: 999, total: nil, elapsedSeconds: 1, unit: "lines").rendered() == "999 lines  999.0/s")
    }

    @Test func aDisabledReporterWritesNothingButCounts() {
        let reporter = ProgressReporter(unit: "readings", isEnabled: false, write: { _ in Issue.record("wrote") })
        reporter.advance(by: 5)
        reporter.advance(by: 7)
        reporter.finish()
        #expect(reporter.done == 12)
    }

    @Test func anEnabledReporterEndsWithTheFinalLine() {
        final class Sink: @unchecked Sendable {  // written only from this test's thread
            var text = ""
        }
        let sink = Sink()
        let reporter = ProgressReporter(unit: "r", total: 4, interval: .seconds(3600), isEnabled: true) {
            sink.text += $0
        }
        reporter.advance(by: 1)  // first update draws
        reporter.advance(by: 3)  // within the interval: no draw
        reporter.finish()
        #expect(sink.text.components(separatedBy: "\r").count == 3)
        #expect(sink.text.hasSuffix("\n"))
        #expect(sink.text.contains("100% 4/4 r"))
    }
}

@Suite struct LogLineTests {
    @Test func logLinesReadAsTextOnATerminalAndStayKeyValueElsewhere() {
        let line = "level=warn event=retry range=1-10 wait_ms=250 reason=\"503\""
        #expect(LogLine.forTerminal(line, isTerminal: false) == line)
        #expect(
            LogLine.forTerminal(line, isTerminal: true, now: 45_296_000_000_000)
                == "12:34:56 WARN  retry range=1-10 wait_ms=250 reason=\"503\"")
        #expect(LogLine.forTerminal("not a log line", isTerminal: true) == "not a log line")
    }
}
