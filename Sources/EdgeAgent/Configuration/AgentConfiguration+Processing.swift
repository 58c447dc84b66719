import EdgeSyncCommandLine

extension AgentConfiguration {
    /// Most rules in `processing.rules`.
    static let maximumProcessingRules = 256

    /// `processing.rules` (`Docs/configuration.md`): an array of objects, each with a `type` and that
    /// type's keys. Every error names the key, as `agent.json: processing.rules[2].max`.
    static func processingRules(from file: ConfigurationFile) throws(UsageError) -> [ProcessingRule] {
        try processingRules(file.value("processing.rules"), setting: "\(file.source): processing.rules")
    }

    static func processingRules(_ value: JSONValue?, setting: String) throws(UsageError) -> [ProcessingRule] {
        guard let value else { return [] }
        guard case .array(let elements) = value else {
            throw UsageError("expected an array of objects", setting: setting)
        }
        guard elements.count <= maximumProcessingRules else {
            throw UsageError("\(elements.count) rules; at most \(maximumProcessingRules)", setting: setting)
        }
        var rules: [ProcessingRule] = []
        var names: Set<String> = []
        for (index, element) in elements.enumerated() {
            let rule = try processingRule(element, index: index, setting: "\(setting)[\(index)]")
            guard names.insert(rule.name).inserted else {
                throw UsageError("\"\(rule.name)\" names an earlier rule too", setting: "\(setting)[\(index)].name")
            }
            rules.append(rule)
        }
        return rules
    }

    private static let matchKeys: Set<String> = ["name", "type", "measurement", "field", "tags"]
    private static let typeKeys: [String: Set<String>] = [
        "validate": ["min", "max", "allow_non_finite", "max_future_seconds", "max_past_seconds", "action", "flag_tag"],
        "convert": ["scale", "offset", "rename_measurement", "rename_field", "rename_tags", "drop_tags", "add_tags"],
        "drop": [],
        "deadband": ["delta", "heartbeat_seconds"],
        "downsample": ["every_seconds", "aggregate"],
        "error_bound": ["bound"],
    ]

    private static func processingRule(_ element: JSONValue, index: Int, setting at: String) throws(UsageError)
        -> ProcessingRule
    {
        guard case .object(let members) = element else { throw UsageError("expected an object", setting: at) }
        let reader = RuleReader(members: members, at: at)
        guard let type = try reader.string("type") else {
            throw UsageError(
                "is required: one of \(typeKeys.keys.sorted().joined(separator: ", "))", setting: "\(at).type")
        }
        guard let allowed = typeKeys[type] else {
            throw UsageError(
                "expected one of \(typeKeys.keys.sorted().joined(separator: ", ")), found \"\(type)\"",
                setting: "\(at).type")
        }
        if let unknown = members.keys.sorted().first(where: { !matchKeys.contains($0) && !allowed.contains($0) }) {
            throw UsageError(
                "unknown key for a \(type) rule (allowed: \(matchKeys.union(allowed).sorted().joined(separator: ", ")))",
                setting: "\(at).\(unknown)")
        }
        let name = try reader.string("name") ?? "\(type)-\(index + 1)"
        guard (1...64).contains(name.utf8.count),
            name.utf8.allSatisfy({ isNameByte($0) })
        else {
            throw UsageError(
                "must be 1...64 characters of A-Z, a-z, 0-9, _, - and . (it names counters and metrics)",
                setting: "\(at).name")
        }
        var match = SeriesMatch()
        match.measurement = try reader.string("measurement").map(Glob.init)
        match.field = try reader.string("field").map(Glob.init)
        match.tags = try reader.stringMap("tags").mapValues(Glob.init)

        let action: ProcessingRule.Action
        switch type {
        case "validate":
            var validation = ProcessingRule.Validation()
            validation.minimum = try reader.number("min")
            validation.maximum = try reader.number("max")
            if let minimum = validation.minimum, let maximum = validation.maximum, minimum > maximum {
                throw UsageError("\(minimum) is above max \(maximum)", setting: "\(at).min")
            }
            validation.rejectsNonFinite = !(try reader.bool("allow_non_finite") ?? false)
            validation.maximumFuture = try reader.seconds("max_future_seconds", minimum: 0)
            validation.maximumPast = try reader.seconds("max_past_seconds", minimum: 0)
            let flagTag = try reader.string("flag_tag")
            switch try reader.string("action") ?? "drop" {
            case "drop":
                if flagTag != nil {
                    throw UsageError("applies only with \"action\": \"flag\"", setting: "\(at).flag_tag")
                }
            case "flag":
                let tag = flagTag ?? "flag"
                try checkName(tag, setting: "\(at).flag_tag")
                validation.action = .flag(tag: tag)
            case let other:
                throw UsageError("expected \"drop\" or \"flag\", found \"\(other)\"", setting: "\(at).action")
            }
            guard
                validation.minimum != nil || validation.maximum != nil || validation.rejectsNonFinite
                    || validation.maximumFuture != nil || validation.maximumPast != nil
            else {
                throw UsageError(
                    "checks nothing: give min, max, max_future_seconds or max_past_seconds",
                    setting: "\(at).allow_non_finite")
            }
            action = .validate(validation)
        case "convert":
            var conversion = ProcessingRule.Conversion()
            conversion.scale = try reader.number("scale") ?? 1
            conversion.offset = try reader.number("offset") ?? 0
            if let measurement = try reader.string("rename_measurement") {
                try checkName(measurement, setting: "\(at).rename_measurement")
                conversion.measurement = measurement
            }
            if let field = try reader.string("rename_field") {
                try checkName(field, setting: "\(at).rename_field")
                conversion.field = field
            }
            conversion.renameTags = try reader.stringMap("rename_tags")
            for (old, new) in conversion.renameTags.sorted(by: { $0.key < $1.key }) {
                try checkName(old, setting: "\(at).rename_tags")
                try checkName(new, setting: "\(at).rename_tags.\(old)")
            }
            conversion.dropTags = Set(try reader.stringArray("drop_tags") ?? [])
            for tag in conversion.dropTags.sorted() { try checkName(tag, setting: "\(at).drop_tags") }
            conversion.addTags = try reader.stringMap("add_tags")
            for (tag, value) in conversion.addTags.sorted(by: { $0.key < $1.key }) {
                try checkName(tag, setting: "\(at).add_tags")
                try checkName(value, setting: "\(at).add_tags.\(tag)")
            }
            guard
                conversion.changesValues || conversion.measurement != nil || conversion.field != nil
                    || !conversion.renameTags.isEmpty || !conversion.dropTags.isEmpty || !conversion.addTags.isEmpty
            else {
                throw UsageError(
                    "changes nothing: give scale, offset, rename_measurement, rename_field, rename_tags, drop_tags or add_tags",
                    setting: "\(at).type")
            }
            action = .convert(conversion)
        case "drop":
            action = .drop
        case "deadband":
            guard let delta = try reader.number("delta"), delta >= 0 else {
                throw UsageError("is required: a number of at least 0", setting: "\(at).delta")
            }
            let heartbeat = try reader.seconds("heartbeat_seconds", minimum: 0.001) ?? 300_000_000_000
            action = .deadband(ProcessingRule.Deadband(delta: delta, heartbeat: heartbeat))
        case "downsample":
            guard let window = try reader.seconds("every_seconds", minimum: 0.001) else {
                throw UsageError("is required: the window in seconds (at least 0.001)", setting: "\(at).every_seconds")
            }
            action = .downsample(
                ProcessingRule.Downsample(window: window, aggregates: try reader.aggregates("aggregate")))
        default:  // error_bound
            guard let bound = try reader.number("bound"), bound > 0 else {
                throw UsageError("is required: an absolute error above 0", setting: "\(at).bound")
            }
            action = .errorBound(bound)
        }
        return ProcessingRule(name: name, match: match, action: action)
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
            true
        default: false
        }
    }

    /// A measurement, field, tag name or tag value a rule writes into series keys.
    private static func checkName(_ text: String, setting: String) throws(UsageError) {
        guard !text.isEmpty, text.utf8.count <= 256, !text.utf8.contains(0), !text.utf8.contains(0x0A) else {
            throw UsageError("\"\(text.prefix(40))\" must be 1...256 bytes without NUL or newline", setting: setting)
        }
    }
}

/// Reads one rule object's members, each error naming `rules[i].key`.
private struct RuleReader {
    let members: [String: JSONValue]
    let at: String

    func setting(_ key: String) -> String { "\(at).\(key)" }

    func string(_ key: String) throws(UsageError) -> String? {
        guard let value = members[key], value != .null else { return nil }
        guard case .string(let text) = value else {
            throw UsageError("expected a string, found \(value.kindName)", setting: setting(key))
        }
        return text
    }

    func bool(_ key: String) throws(UsageError) -> Bool? {
        guard let value = members[key], value != .null else { return nil }
        guard case .bool(let flag) = value else {
            throw UsageError("expected true or false, found \(value.kindName)", setting: setting(key))
        }
        return flag
    }

    /// A finite number.
    func number(_ key: String) throws(UsageError) -> Double? {
        guard let value = members[key], value != .null else { return nil }
        switch value {
        case .integer(let integer): return Double(integer)
        case .number(let number) where number.isFinite: return number
        default: throw UsageError("expected a finite number, found \(value.kindName)", setting: setting(key))
        }
    }

    /// Seconds (at least `minimum`, at most ten years) as nanoseconds.
    func seconds(_ key: String, minimum: Double) throws(UsageError) -> Int64? {
        guard let seconds = try number(key) else { return nil }
        let maximum = 10 * 366 * 86400.0
        guard seconds >= minimum, seconds <= maximum else {
            throw UsageError("\(seconds) is out of range \(minimum)...\(Int(maximum)) seconds", setting: setting(key))
        }
        return Int64((seconds * 1e9).rounded())
    }

    func stringArray(_ key: String) throws(UsageError) -> [String]? {
        guard let value = members[key], value != .null else { return nil }
        guard case .array(let elements) = value else {
            throw UsageError("expected an array of strings, found \(value.kindName)", setting: setting(key))
        }
        var strings: [String] = []
        for (index, element) in elements.enumerated() {
            guard case .string(let text) = element else {
                throw UsageError("expected a string, found \(element.kindName)", setting: "\(setting(key))[\(index)]")
            }
            strings.append(text)
        }
        return strings
    }

    /// An object whose members are all strings.
    func stringMap(_ key: String) throws(UsageError) -> [String: String] {
        guard let value = members[key], value != .null else { return [:] }
        guard case .object(let object) = value else {
            throw UsageError("expected an object of strings, found \(value.kindName)", setting: setting(key))
        }
        var map: [String: String] = [:]
        for (name, member) in object.sorted(by: { $0.key < $1.key }) {
            guard case .string(let text) = member else {
                throw UsageError("expected a string, found \(member.kindName)", setting: "\(setting(key)).\(name)")
            }
            map[name] = text
        }
        return map
    }

    /// `"mean"`, `"all"` or an array such as `["min", "max"]`; `last` when absent.
    func aggregates(_ key: String) throws(UsageError) -> [ProcessingRule.Downsample.Aggregate] {
        typealias Aggregate = ProcessingRule.Downsample.Aggregate
        let names = Aggregate.allCases.map(\.rawValue).joined(separator: ", ")
        func parse(_ text: String, at setting: String) throws(UsageError) -> Aggregate {
            guard let aggregate = Aggregate(rawValue: text) else {
                throw UsageError("expected one of \(names) or all, found \"\(text)\"", setting: setting)
            }
            return aggregate
        }
        guard let value = members[key], value != .null else { return [.last] }
        if case .string(let text) = value {
            return text == "all" ? Aggregate.allCases : [try parse(text, at: setting(key))]
        }
        guard let list = try stringArray(key), !list.isEmpty else {
            throw UsageError("expected one of \(names), all, or a non-empty array of them", setting: setting(key))
        }
        var aggregates: [Aggregate] = []
        for (index, text) in list.enumerated() {
            let aggregate = try parse(text, at: "\(setting(key))[\(index)]")
            guard !aggregates.contains(aggregate) else {
                throw UsageError("\"\(text)\" is listed twice", setting: "\(setting(key))[\(index)]")
            }
            aggregates.append(aggregate)
        }
        return aggregates
    }
}
