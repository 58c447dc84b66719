/// Parses one subcommand's arguments against a declared set of options.
///
/// Accepts `--name value`, `--name=value`, boolean `--name`, and positionals; `--` ends options.
/// Every mistake is a `UsageError` naming the argument, so commands can exit 64 with a precise
/// message instead of guessing.
package struct ArgumentParser: Sendable {
    package struct Option: Sendable {
        package enum Kind: Sendable {
            /// Takes a value; `isRepeatable` allows it more than once.
            case value(placeholder: String, isRepeatable: Bool = false)
            /// A switch without a value.
            case flag
        }

        package var name: String
        package var kind: Kind
        package var help: String

        package init(_ name: String, _ kind: Kind, help: String) {
            precondition(name.hasPrefix("--"), "options are spelled --name")
            self.name = name
            self.kind = kind
            self.help = help
        }

        package static func value(_ name: String, _ placeholder: String, help: String) -> Option {
            Option(name, .value(placeholder: placeholder), help: help)
        }

        package static func flag(_ name: String, help: String) -> Option {
            Option(name, .flag, help: help)
        }
    }

    package var options: [Option]
    /// Names of the positional arguments, for messages and help (`FILE`, `DEVICE`).
    package var positionals: [String]
    /// Whether more positionals than `positionals.count` are accepted.
    package var acceptsExtraPositionals = false

    package init(options: [Option], positionals: [String] = [], acceptsExtraPositionals: Bool = false) {
        self.options = options
        self.positionals = positionals
        self.acceptsExtraPositionals = acceptsExtraPositionals
    }

    /// Parses `arguments` (without the command and subcommand names).
    package func parse(_ arguments: some Sequence<String>) throws(UsageError) -> ParsedArguments {
        var parsed = ParsedArguments()
        var iterator = arguments.makeIterator()
        var optionsEnded = false
        while let argument = iterator.next() {
            if optionsEnded || !argument.hasPrefix("--") || argument == "-" {
                parsed.positionals.append(argument)
                continue
            }
            if argument == "--" {
                optionsEnded = true
                continue
            }
            let name: String
            var inlineValue: String?
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            } else {
                name = argument
            }
            guard let option = options.first(where: { $0.name == name }) else {
                throw UsageError("unknown option", setting: name)
            }
            switch option.kind {
            case .flag:
                guard inlineValue == nil else { throw UsageError("takes no value", setting: name) }
                parsed.flags.insert(name)
            case .value(_, let isRepeatable):
                let value: String
                if let inlineValue {
                    value = inlineValue
                } else if let next = iterator.next() {
                    value = next
                } else {
                    throw UsageError("needs a value", setting: name)
                }
                if !isRepeatable, parsed.values[name] != nil {
                    throw UsageError("given more than once", setting: name)
                }
                parsed.values[name, default: []].append(value)
            }
        }
        if parsed.positionals.count > positionals.count && !acceptsExtraPositionals {
            let extra = parsed.positionals[positionals.count]
            throw UsageError("unexpected argument \"\(extra)\"")
        }
        return parsed
    }

    /// One line per option, for `--help` output.
    package var helpText: String {
        let rows = options.map { option -> (String, String) in
            switch option.kind {
            case .flag: (option.name, option.help)
            case .value(let placeholder, _): ("\(option.name) \(placeholder)", option.help)
            }
        }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { "  " + $0.0.padding(toLength: width + 2, withPad: " ", startingAt: 0) + $0.1 }
            .joined(separator: "\n")
    }
}

/// The result of `ArgumentParser.parse`, with typed accessors that name the flag in their errors.
package struct ParsedArguments: Sendable {
    package var values: [String: [String]] = [:]
    package var flags: Set<String> = []
    package var positionals: [String] = []

    package init() {}

    package func isSet(_ flag: String) -> Bool { flags.contains(flag) }

    /// The last value given for `name`, if any.
    package func value(_ name: String) -> String? { values[name]?.last }

    package func allValues(_ name: String) -> [String] { values[name] ?? [] }

    /// The value of `name`, which must be present.
    package func required(_ name: String) throws(UsageError) -> String {
        guard let value = value(name) else { throw UsageError("is required", setting: name) }
        return value
    }

    /// The value of `name` converted by `convert`, which returns nil for a value it cannot read.
    package func value<T>(
        _ name: String,
        as expected: String,
        _ convert: (String) -> T?
    ) throws(UsageError) -> T? {
        guard let text = value(name) else { return nil }
        guard let converted = convert(text) else {
            throw UsageError("expected \(expected), found \"\(text)\"", setting: name)
        }
        return converted
    }

    /// The positional at `index`, named `name` in the error when it is missing.
    package func positional(_ index: Int, name: String) throws(UsageError) -> String {
        guard index < positionals.count else { throw UsageError("missing argument \(name)") }
        return positionals[index]
    }
}
