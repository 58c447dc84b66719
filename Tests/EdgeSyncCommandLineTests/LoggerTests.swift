import EdgeSyncLogging
import Synchronization
import Testing

/// The one place log fields are escaped: a record is always one logfmt line, whatever its values hold.
@Suite struct LoggerTests {
    final class Records: Sendable {
        let all = Mutex<[Logger.Record]>([])
        var logger: Logger { Logger(label: "test") { [self] record in all.withLock { $0.append(record) } } }
        var lines: [String] { all.withLock { $0.map { $0.logfmt() } } }
    }

    @Test func bareValuesStayBareAndFreeTextIsQuoted() {
        let records = Records()
        records.logger.warning("retry", ["range": "1-10", "wait_ms": 250, "reason": .quoted("503")])
        #expect(records.lines == [#"level=warning event=retry range=1-10 wait_ms=250 reason="503""#])
        #expect(records.all.withLock { $0.first?.label } == "test")
    }

    @Test func theAgentSpellsWarningWarn() {
        let record = Logger.Record(level: .warning, label: "a", event: "bad_line", fields: [("input", "tcp")])
        #expect(record.logfmt(warningName: "warn") == "level=warn event=bad_line input=tcp")
    }

    @Test(arguments: [
        ("a b", #""a b""#), ("", #""""#), (#"say "hi""#, #""say \"hi\"""#), ("k=v", #""k=v""#),
        ("back\\slash", "back\\slash"), ("line\nbreak", #""line\nbreak""#), ("tab\there", #""tab\there""#),
        ("bell\u{07}", "\"bell \""), ("ünïcode", "ünïcode"),
    ])
    func hostileValuesAreEscapedOntoOneLine(value: String, written: String) {
        let records = Records()
        records.logger.error("e", ["v": Logger.Value(value, quoted: false)])
        let line = records.lines[0]
        #expect(line == "level=error event=e v=" + written)
        #expect(!line.contains("\n") && !line.contains("\r"))
    }

    @Test func quotedValuesEscapeBackslashes() {
        let records = Records()
        records.logger.info("e", ["path": .quoted(#"C:\dir "x""#)])
        #expect(records.lines == [#"level=info event=e path="C:\\dir \"x\"""#])
    }

    @Test func recordsBelowTheMinimumAreNeverBuilt() {
        let built = Mutex(0)
        var logger = Logger(label: "quiet") { _ in }
        logger.minimumLevel = .error
        func expensive() -> Logger.Value {
            built.withLock { $0 += 1 }
            return "x"
        }
        logger.info("skipped", ["v": expensive()])
        logger.error("kept", ["v": expensive()])
        #expect(built.withLock { $0 } == 1)
    }

    @Test func childLoggersExtendTheLabel() {
        let records = Records()
        records.logger.child("inputs").child("tcp").info("listening")
        #expect(records.all.withLock { $0.map(\.label) } == ["test.inputs.tcp"])
        #expect(Logger.discard.minimumLevel == .error)
    }
}
