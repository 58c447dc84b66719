import EdgeSyncCommandLine
import Testing

@testable import EdgeAgent

@Suite struct ProcessingConfigurationTests {
    let parser = ArgumentParser(options: AgentConfiguration.options)
    static let base = #""data_dir": "/a", "device": "gw", "collector": {"url": "http://c:1"}"#

    func configuration(rules: String) throws -> AgentConfiguration {
        let text = #"{\#(Self.base), "processing": {"rules": \#(rules)}}"#
        let file = try ConfigurationFile(bytes: Array(text.utf8), source: "agent.json")
        return try AgentConfiguration(file: file, arguments: parser.parse([]), environment: ["EDGE_AGENT_TOKEN": "t"])
    }

    @Test func everyRuleTypeIsReadFromTheFile() throws {
        let parsed = try configuration(
            rules: """
                [
                  {"name": "plausible", "type": "validate", "measurement": "weather", "field": "temp*",
                   "tags": {"site": "b*"}, "min": -40, "max": 85, "max_future_seconds": 300,
                   "max_past_seconds": 86400, "action": "flag", "flag_tag": "quality"},
                  {"type": "convert", "field": "temp_f", "scale": 0.5, "offset": -16, "rename_field": "temp_c",
                   "rename_tags": {"site": "location"}, "drop_tags": ["sensor"], "add_tags": {"unit": "C"}},
                  {"name": "no-debug", "type": "drop", "tags": {"host": "test-*"}},
                  {"name": "steady", "type": "deadband", "delta": 0.05, "heartbeat_seconds": 600},
                  {"name": "minutes", "type": "downsample", "every_seconds": 60, "aggregate": ["min", "max"]},
                  {"name": "all", "type": "downsample", "every_seconds": 1.5, "aggregate": "all"},
                  {"name": "lossy", "type": "error_bound", "bound": 0.01}
                ]
                """)
        let rules = parsed.processing
        #expect(rules.map(\.name) == ["plausible", "convert-2", "no-debug", "steady", "minutes", "all", "lossy"])
        var validation = ProcessingRule.Validation()
        validation.minimum = -40
        validation.maximum = 85
        validation.maximumFuture = 300_000_000_000
        validation.maximumPast = 86_400_000_000_000
        validation.action = .flag(tag: "quality")
        #expect(rules[0].action == .validate(validation))
        #expect(
            rules[0].match
                == SeriesMatch(measurement: Glob("weather"), field: Glob("temp*"), tags: ["site": Glob("b*")]))
        guard case .convert(let conversion) = rules[1].action else { Issue.record("not a conversion"); return }
        #expect(conversion.scale == 0.5 && conversion.offset == -16 && conversion.field == "temp_c")
        #expect(conversion.renameTags == ["site": "location"] && conversion.dropTags == ["sensor"])
        #expect(rules[2].action == .drop)
        #expect(rules[3].action == .deadband(.init(delta: 0.05, heartbeat: 600_000_000_000)))
        #expect(rules[4].action == .downsample(.init(window: 60_000_000_000, aggregates: [.min, .max])))
        #expect(rules[5].action == .downsample(.init(window: 1_500_000_000, aggregates: [.last, .mean, .min, .max])))
        #expect(rules[6].action == .errorBound(0.01))
        #expect(try configuration(rules: "[]").processing.isEmpty)
    }

    /// Each bad configuration and the key its error must name.
    static let badRules: [(rules: String, setting: String)] = [
        (#"{"type": "drop"}"#, "processing.rules"),
        (#"[{"name": "x"}]"#, "processing.rules[0].type"),
        (#"[{"type": "smooth"}]"#, "processing.rules[0].type"),
        (#"["drop"]"#, "processing.rules[0]"),
        (#"[{"type": "drop"}, {"type": "validate", "maxx": 3}]"#, "processing.rules[1].maxx"),
        (#"[{"type": "drop", "delta": 3}]"#, "processing.rules[0].delta"),
        (#"[{"type": "validate", "min": 5, "max": 1}]"#, "processing.rules[0].min"),
        (#"[{"type": "validate", "max": "high"}]"#, "processing.rules[0].max"),
        (#"[{"type": "validate", "max": 1, "action": "warn"}]"#, "processing.rules[0].action"),
        (#"[{"type": "validate", "max": 1, "flag_tag": "q"}]"#, "processing.rules[0].flag_tag"),
        (#"[{"type": "validate", "allow_non_finite": true}]"#, "processing.rules[0].allow_non_finite"),
        (#"[{"type": "validate", "allow_non_finite": "yes"}]"#, "processing.rules[0].allow_non_finite"),
        (#"[{"type": "validate", "max_future_seconds": -1}]"#, "processing.rules[0].max_future_seconds"),
        (#"[{"type": "convert"}]"#, "processing.rules[0].type"),
        (#"[{"type": "convert", "scale": "2"}]"#, "processing.rules[0].scale"),
        (#"[{"type": "convert", "rename_field": ""}]"#, "processing.rules[0].rename_field"),
        (#"[{"type": "convert", "add_tags": {"unit": 3}}]"#, "processing.rules[0].add_tags.unit"),
        (#"[{"type": "convert", "drop_tags": "host"}]"#, "processing.rules[0].drop_tags"),
        (#"[{"type": "convert", "drop_tags": [1]}]"#, "processing.rules[0].drop_tags[0]"),
        (#"[{"type": "deadband"}]"#, "processing.rules[0].delta"),
        (#"[{"type": "deadband", "delta": -1}]"#, "processing.rules[0].delta"),
        (#"[{"type": "deadband", "delta": 1, "heartbeat_seconds": 0}]"#, "processing.rules[0].heartbeat_seconds"),
        (#"[{"type": "downsample"}]"#, "processing.rules[0].every_seconds"),
        (#"[{"type": "downsample", "every_seconds": 60, "aggregate": "median"}]"#, "processing.rules[0].aggregate"),
        (#"[{"type": "downsample", "every_seconds": 60, "aggregate": []}]"#, "processing.rules[0].aggregate"),
        (
            #"[{"type": "downsample", "every_seconds": 60, "aggregate": ["min", "min"]}]"#,
            "processing.rules[0].aggregate[1]"
        ),
        (#"[{"type": "error_bound"}]"#, "processing.rules[0].bound"),
        (#"[{"type": "error_bound", "bound": 0}]"#, "processing.rules[0].bound"),
        (#"[{"type": "drop", "measurement": 3}]"#, "processing.rules[0].measurement"),
        (#"[{"type": "drop", "tags": ["a"]}]"#, "processing.rules[0].tags"),
        (#"[{"type": "drop", "name": "has space"}]"#, "processing.rules[0].name"),
        (#"[{"type": "drop", "name": "x"}, {"type": "drop", "name": "x"}]"#, "processing.rules[1].name"),
    ]

    @Test(arguments: badRules)
    func aBadRuleIsRefusedNamingItsKey(rules: String, setting: String) {
        do {
            _ = try configuration(rules: rules)
            Issue.record("accepted \(rules)")
        } catch {
            #expect((error as? UsageError)?.setting == "agent.json: \(setting)", "\(rules): \(error)")
        }
    }

    @Test func anUnknownKeyBesideTheRulesIsRefused() {
        let text = #"{\#(Self.base), "processing": {"rules": [], "rulez": []}}"#
        #expect(throws: UsageError.self) {
            let file = try ConfigurationFile(bytes: Array(text.utf8), source: "agent.json")
            _ = try AgentConfiguration(file: file, arguments: parser.parse([]), environment: ["EDGE_AGENT_TOKEN": "t"])
        }
        let many = "[" + Array(repeating: #"{"type": "drop"}"#, count: 257).joined(separator: ",") + "]"
        #expect(throws: UsageError.self) { try configuration(rules: many) }
    }
}
