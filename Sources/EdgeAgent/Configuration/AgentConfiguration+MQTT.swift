import EdgeSyncCommandLine
import Foundation

extension AgentConfiguration {
    /// The `inputs.mqtt` section (`Docs/configuration.md`), or nil when it has no `broker`.
    static func mqttInput(from file: ConfigurationFile, device: String) throws(UsageError) -> MQTTInput.Configuration? {
        func setting(_ key: String) -> String { "\(file.source): inputs.mqtt.\(key)" }
        let brokerText = try file.string("inputs.mqtt.broker")
        let topics = try file.stringArray("inputs.mqtt.topics")
        let clientID = try file.string("inputs.mqtt.client_id")
        let username = try file.string("inputs.mqtt.username")
        let passwordFile = try file.string("inputs.mqtt.password_file")
        let keepAlive = try file.integer("inputs.mqtt.keep_alive_seconds", in: 0...65535)
        let qos = try file.integer("inputs.mqtt.qos", in: 0...1)
        let version = try file.string("inputs.mqtt.protocol", as: "\"3.1.1\" or \"5\"", MQTTVersion.init(name:))
        let expiry = try file.integer("inputs.mqtt.session_expiry_seconds", in: 1...Int64(UInt32.max))
        let receiveMaximum = try file.integer("inputs.mqtt.receive_maximum", in: 1...65535)
        let packetBytes = try file.integer("inputs.mqtt.max_packet_bytes", in: 1024...(256 << 20))
        let backoffInitial = try file.integer("inputs.mqtt.reconnect_initial_ms", in: 1...3_600_000)
        let backoffMaximum = try file.integer("inputs.mqtt.reconnect_max_seconds", in: 1...86400)
        let rules = try mqttRules(file.value("inputs.mqtt.rules"), setting: setting("rules"))
        guard let brokerText else {
            if topics != nil || clientID != nil || !rules.isEmpty {
                throw UsageError("is required when inputs.mqtt has other settings", setting: setting("broker"))
            }
            return nil
        }
        guard let broker = ListenAddress.parse(brokerText), brokerText.contains(":"), broker.port > 0 else {
            throw UsageError("expected HOST:PORT, found \"\(brokerText)\"", setting: setting("broker"))
        }
        let filters = topics ?? rules.map(\.filter)
        guard !filters.isEmpty else {
            throw UsageError(
                "needs at least one topic filter (or rules to derive them from)", setting: setting("topics"))
        }
        for filter in filters {
            guard let problem = mqttFilterProblem(filter) else { continue }
            throw UsageError("\"\(filter)\": \(problem)", setting: setting("topics"))
        }
        let identifier = clientID ?? "edge-agent-\(device)"
        guard !identifier.isEmpty, identifier.utf8.count <= 256 else {
            throw UsageError("must be 1...256 bytes", setting: setting("client_id"))
        }
        var password: [UInt8]?
        if let passwordFile {
            guard let data = FileManager.default.contents(atPath: passwordFile) else {
                throw UsageError("cannot read \(passwordFile)", setting: setting("password_file"))
            }
            // A trailing newline is an editor's, not the password's.
            var bytes = Array(data)
            while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
            guard bytes.count <= 65535 else {
                throw UsageError("longer than 65535 bytes", setting: setting("password_file"))
            }
            password = bytes
        }
        if password != nil, username == nil {
            throw UsageError("a password needs inputs.mqtt.username", setting: setting("password_file"))
        }
        let connect = MQTTPacketEncoder.Connect(
            version: version ?? .v5, clientID: identifier, keepAliveSeconds: UInt16(keepAlive ?? 30), cleanStart: false,
            sessionExpirySeconds: UInt32(expiry ?? 7 * 86400), receiveMaximum: UInt16(receiveMaximum ?? 65535),
            username: username, password: password)
        var configuration = MQTTInput.Configuration(
            host: broker.host, port: broker.port,
            session: MQTTSession.Configuration(connect: connect, filters: filters, qos: UInt8(qos ?? 1)))
        configuration.mapping = MQTTTopicMapping(rules: rules)
        if let packetBytes { configuration.limits.maximumPacketBytes = Int(packetBytes) }
        if let backoffInitial { configuration.backoff.initialBackoff = .milliseconds(backoffInitial) }
        if let backoffMaximum { configuration.backoff.maximumBackoff = .seconds(backoffMaximum) }
        guard configuration.backoff.maximumBackoff >= configuration.backoff.initialBackoff else {
            throw UsageError(
                "must not be below inputs.mqtt.reconnect_initial_ms", setting: setting("reconnect_max_seconds"))
        }
        return configuration
    }

    /// What is wrong with a subscription filter (MQTT 4.7), or nil.
    static func mqttFilterProblem(_ filter: String) -> String? {
        let levels = filter.utf8.split(separator: 0x2F, omittingEmptySubsequences: false)
        guard !filter.isEmpty, filter.utf8.count <= 1024, !filter.utf8.contains(0) else {
            return "must be 1...1024 bytes without NUL"
        }
        for (index, level) in levels.enumerated() {
            if level.contains(0x23), !(level.elementsEqual([0x23]) && index == levels.count - 1) {
                return "\"#\" must be a whole level and the last"
            }
            if level.contains(0x2B), !level.elementsEqual([0x2B]) { return "\"+\" must be a whole level" }
        }
        return nil
    }

    private static let ruleKeys: Set<String> = [
        "topic", "measurement", "field", "format", "time_key", "time_precision",
    ]

    /// `inputs.mqtt.rules`: an array of objects with `topic` and optional `measurement`, `field`,
    /// `format`, `time_key`, `time_precision`.
    static func mqttRules(_ value: JSONValue?, setting: String) throws(UsageError) -> [MQTTTopicMapping.Rule] {
        guard let value else { return [] }
        guard case .array(let elements) = value else {
            throw UsageError("expected an array of objects", setting: setting)
        }
        var rules: [MQTTTopicMapping.Rule] = []
        for (index, element) in elements.enumerated() {
            let at = "\(setting)[\(index)]"
            guard case .object(let members) = element else { throw UsageError("expected an object", setting: at) }
            if let unknown = members.keys.sorted().first(where: { !ruleKeys.contains($0) }) {
                throw UsageError(
                    "unknown key \"\(unknown)\" (allowed: \(ruleKeys.sorted().joined(separator: ", ")))", setting: at)
            }
            func text(_ key: String) throws(UsageError) -> String? {
                guard let member = members[key] else { return nil }
                guard case .string(let string) = member else {
                    throw UsageError("expected a string", setting: "\(at).\(key)")
                }
                return string
            }
            guard let topic = try text("topic") else { throw UsageError("is required", setting: "\(at).topic") }
            var format = MQTTTopicMapping.PayloadFormat.auto
            if let name = try text("format") {
                guard let parsed = MQTTTopicMapping.PayloadFormat(rawValue: name) else {
                    throw UsageError(
                        "expected one of \(MQTTTopicMapping.PayloadFormat.allCases.map(\.rawValue).joined(separator: ", ")), found \"\(name)\"",
                        setting: "\(at).format")
                }
                format = parsed
            }
            var precision = TimestampPrecision.nanoseconds
            if let name = try text("time_precision") {
                guard let parsed = TimestampPrecision(influxName: name) else {
                    throw UsageError(
                        "expected ns, us, ms, s, m or h, found \"\(name)\"", setting: "\(at).time_precision")
                }
                precision = parsed
            }
            do {
                rules.append(
                    try MQTTTopicMapping.Rule(
                        template: topic, measurement: try text("measurement") ?? MQTTTopicMapping.defaultMeasurement,
                        field: try text("field") ?? "value", format: format,
                        timeKey: try text("time_key") ?? "timestamp",
                        timePrecision: precision))
            } catch let error as MQTTMappingError {
                throw UsageError(error.message, setting: "\(at).topic")
            } catch let error as UsageError {
                throw error
            } catch {
                throw UsageError("\(error)", setting: at)
            }
        }
        return rules
    }
}
