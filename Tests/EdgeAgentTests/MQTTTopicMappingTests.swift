import EdgeSyncCommandLine
import Testing

@testable import EdgeAgent

@Suite struct MQTTTopicMappingTests {
    func map(_ mapping: MQTTTopicMapping, _ topic: String, _ payload: String) throws(MQTTMappingError)
        -> [IncomingReading]
    {
        var parser = LineProtocolParser()
        var block = ReadingBlock()
        try mapping.map(
            MQTTPublish(topic: Array(topic.utf8), payload: Array(payload.utf8)), now: 42, parser: &parser,
            into: &block)
        return block.incomingReadings
    }

    @Test func aTemplateTurnsLevelsIntoTagsAndAValueIntoAReading() throws {
        let mapping = MQTTTopicMapping(rules: [try .init(template: "sensors/{site}/{sensor}", measurement: "env")])
        #expect(
            try map(mapping, "sensors/north/t1", " 21.5\n")
                == [IncomingReading(seriesKey: "env,sensor=t1,site=north value", timestamp: 42, value: 21.5)])
        // Not matched (one level too many, or too few): the default rule keeps the whole topic.
        #expect(
            try map(mapping, "sensors/north/t1/x", "1")
                == [IncomingReading(seriesKey: "mqtt,topic=sensors/north/t1/x value", timestamp: 42, value: 1)])
        #expect(try map(mapping, "sensors/north", "1").first?.seriesKey == "mqtt,topic=sensors/north value")
        #expect(mapping.rules[0].filter == "sensors/+/+")
    }

    @Test func measurementAndFieldPlaceholdersAndWildcards() throws {
        let mapping = MQTTTopicMapping(rules: [
            try .init(template: "plant/{measurement}/+/{field}", format: .value),
            try .init(template: "home/{room}/#", measurement: "home"),
        ])
        #expect(
            try map(mapping, "plant/pump/7/rpm", "1500")
                == [IncomingReading(seriesKey: "pump rpm", timestamp: 42, value: 1500)])
        #expect(try map(mapping, "home/kitchen/a/b", "-3e2").first?.seriesKey == "home,room=kitchen value")
        // "#" also matches its parent level.
        #expect(try map(mapping, "home/hall", "1").first?.seriesKey == "home,room=hall value")
        #expect(mapping.rules.map(\.filter) == ["plant/+/+/+", "home/+/#"])
    }

    @Test func jsonFieldsWithATimestampInTheRulesPrecision() throws {
        let mapping = MQTTTopicMapping(rules: [
            try .init(template: "s/{id}", measurement: "air", timeKey: "ts", timePrecision: .milliseconds)
        ])
        let readings = try map(
            mapping, "s/9", #"{"temp": 21.5, "rh": 40, "ok": true, "ts": 1700000000123, "note": "x"}"#)
        #expect(
            readings == [
                IncomingReading(seriesKey: "air,id=9 ok", timestamp: 1_700_000_000_123_000_000, value: 1),
                IncomingReading(seriesKey: "air,id=9 rh", timestamp: 1_700_000_000_123_000_000, value: 40),
                IncomingReading(seriesKey: "air,id=9 temp", timestamp: 1_700_000_000_123_000_000, value: 21.5),
            ])
        var parser = LineProtocolParser()
        var block = ReadingBlock()
        let skipped = try mapping.map(
            MQTTPublish(topic: Array("s/1".utf8), payload: Array(#"{"v": 1, "a": "b", "c": null, "d": [1]}"#.utf8)),
            now: 0, parser: &parser, into: &block)
        #expect(skipped == 3)
        let rfc = try map(MQTTTopicMapping(), "x", #"{"v": 2, "timestamp": "2024-05-01T12:00:00Z"}"#)
        #expect(rfc == [IncomingReading(seriesKey: "mqtt,topic=x v", timestamp: 1_714_564_800_000_000_000, value: 2)])
    }

    @Test func lineProtocolPayloadsKeepTheirOwnSeries() throws {
        let readings = try map(MQTTTopicMapping(), "telegraf/host1", "cpu,host=a usage=1.5 10\nmem used=2i")
        #expect(
            readings == [
                IncomingReading(seriesKey: "cpu,host=a usage", timestamp: 10, value: 1.5),
                IncomingReading(seriesKey: "mem used", timestamp: 42, value: 2),
            ])
        let seconds = MQTTTopicMapping(rules: [try .init(template: "#", format: .lineProtocol, timePrecision: .seconds)]
        )
        #expect(try map(seconds, "a", "m v=1 5").first?.timestamp == 5_000_000_000)
    }

    /// Payloads that must be refused whole, each with what the error says.
    static let refused: [(format: MQTTTopicMapping.PayloadFormat, payload: String, says: String)] = [
        (.value, "", "not a decimal number"),
        (.value, "nan", "not a decimal number"),
        (.value, "inf", "not a decimal number"),
        (.value, "0x10", "not a decimal number"),
        (.value, "1e", "not a decimal number"),
        (.value, "1e999", "not a decimal number"),
        (.value, "1 2", "not a decimal number"),
        (.value, "-", "not a decimal number"),
        (.json, "{", "not valid JSON"),
        (.json, "[1, 2]", "expected an object"),
        (.json, #"{"a": "b"}"#, "no numeric member"),
        (.json, #"{"a": 9007199254740993}"#, "2^53"),
        (.json, #"{"a": 1, "timestamp": true}"#, "neither a number nor an RFC 3339"),
        (.json, #"{"a": 1, "timestamp": 9223372036854775807}"#, "out of range"),
        (.json, #"{"": 1}"#, "empty member name"),
        (.lineProtocol, "m", "line protocol"),
        (.lineProtocol, "m v=1\nm v=x", "line 2"),
        (.lineProtocol, "", "no readings"),
    ]

    @Test(arguments: 0..<refused.count) func malformedPayloadsAreRefusedWhole(_ index: Int) throws {
        let (format, payload, says) = Self.refused[index]
        let mapping = MQTTTopicMapping(rules: [
            try .init(template: "#", format: format, timePrecision: format == .json ? .milliseconds : .nanoseconds)
        ])
        let error = #expect(throws: MQTTMappingError.self) { try map(mapping, "t", payload) }
        #expect(error?.message.contains(says) == true, "\(payload): \(error?.message ?? "")")
    }

    @Test func aSeriesKeyOverTheLimitIsRefused() throws {
        let mapping = MQTTTopicMapping(rules: [try .init(template: "{long}")])
        let topic = String(repeating: "x", count: 70_000)
        #expect(throws: MQTTMappingError.self) { try map(mapping, topic, "1") }
    }

    @Test(arguments: ["", "a/#/b", "a/b#", "a/{x}/{x}", "a/{x}y", "a/{}+", "a/x+"])
    func badTemplatesAreRefused(_ template: String) {
        #expect(throws: MQTTMappingError.self) { try MQTTTopicMapping.Rule(template: template) }
    }

    @Test func theConfigurationReadsTheSectionAndNamesEveryBadSetting() throws {
        let good = try ConfigurationFile(
            bytes: Array(
                #"""
                {"inputs": {"mqtt": {"broker": "127.0.0.1:1883", "topics": ["sensors/#"], "qos": 1, "protocol": "3.1.1",
                 "keep_alive_seconds": 15, "rules": [{"topic": "sensors/{site}/{sensor}", "measurement": "env",
                 "format": "json", "time_key": "t", "time_precision": "s"}]}}}
                """#.utf8), source: "agent.json")
        let configuration = try #require(try AgentConfiguration.mqttInput(from: good, device: "gw-1"))
        try good.rejectUnknownKeys()
        #expect(configuration.host == "127.0.0.1" && configuration.port == 1883)
        #expect(configuration.session.filters == ["sensors/#"])
        #expect(configuration.session.connect.clientID == "edge-agent-gw-1")
        #expect(configuration.session.connect.version == .v311)
        #expect(configuration.session.connect.keepAliveSeconds == 15)
        #expect(configuration.mapping.rules.first?.timePrecision == .seconds)

        // Topics default to the rules' filters.
        let derived = try ConfigurationFile(
            bytes: Array(#"{"inputs": {"mqtt": {"broker": "b:1", "rules": [{"topic": "a/{x}"}]}}}"#.utf8), source: "f")
        #expect(try AgentConfiguration.mqttInput(from: derived, device: "d")?.session.filters == ["a/+"])

        let bad: [(String, String)] = [
            (#"{"broker": "nohost"}"#, "inputs.mqtt.broker"),
            (#"{"topics": ["a"]}"#, "inputs.mqtt.broker"),
            (#"{"broker": "h:1"}"#, "inputs.mqtt.topics"),
            (#"{"broker": "h:1", "topics": ["a/b#"]}"#, "inputs.mqtt.topics"),
            (#"{"broker": "h:1", "topics": ["a"], "qos": 2}"#, "inputs.mqtt.qos"),
            (#"{"broker": "h:1", "topics": ["a"], "protocol": "3"}"#, "inputs.mqtt.protocol"),
            (#"{"broker": "h:1", "topics": ["a"], "password_file": "/nonexistent"}"#, "inputs.mqtt.password_file"),
            (#"{"broker": "h:1", "rules": [{"topic": "a", "fromat": "json"}]}"#, "inputs.mqtt.rules[0]"),
            (#"{"broker": "h:1", "rules": [{"topic": "a/#/b"}]}"#, "inputs.mqtt.rules[0].topic"),
            (#"{"broker": "h:1", "rules": [{"topic": "a", "format": "xml"}]}"#, "inputs.mqtt.rules[0].format"),
        ]
        for (section, setting) in bad {
            let file = try ConfigurationFile(bytes: Array(#"{"inputs": {"mqtt": \#(section)}}"#.utf8), source: "f")
            let error = #expect(throws: UsageError.self) { try AgentConfiguration.mqttInput(from: file, device: "d") }
            #expect(error?.setting?.hasPrefix("f: \(setting)") == true, "\(section): \(String(describing: error))")
        }
    }
}
