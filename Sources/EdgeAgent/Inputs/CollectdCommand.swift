import EdgeSyncCodec
import EdgeSyncProtocol
import Foundation
import HTTPCore

/// The body collectd's `write_http` plugin posts with `Format "Command"`: lines of collectd's plain
/// text protocol, one `PUTVAL` per value list.
///
/// ```
/// PUTVAL "gw-17/load/load" interval=10.000 1700000000.123:0.25:0.3:0.31
/// PUTVAL gw-17/memory/memory-used interval=10.000 1700000000.123:123456789
/// ```
///
/// The identifier is `host/plugin[-plugin_instance]/type[-type_instance]` (quoted with `\` escapes
/// when it holds spaces or quotes), options are `key=value` (`interval` is the only one), and each
/// value list is `time:value[:value…]` with `time` in seconds (`N`: now) and `U` for an unknown value.
/// A line carries no data source names: they come from collectd's `types.db` (`CollectdTypes`).
/// Readings map as `CollectdJSON`'s do: measurement `PLUGIN_DSNAME`, tags `host`, `instance`, `type`,
/// `type_instance` (empty ones left out), field `value`, time at millisecond precision.
///
/// A bad line refuses the whole body (400 naming the line), as a bad JSON value list does.
package enum CollectdCommand {
    /// Longest line accepted (collectd's own limit on a command line is 4 KiB of identifier and values).
    package static let maximumLineBytes = 64 << 10

    /// Decodes `body`, appending to `block`; returns the number of unknown values (`U`, NaN) skipped.
    /// - Parameter now: the time `N` stands for, in nanoseconds since the epoch.
    package static func decode(
        _ body: [UInt8], types: CollectdTypes, now: Int64, into block: inout ReadingBlock
    ) throws(InputFailure) -> Int {
        var skipped = 0
        var lineNumber = 0
        var start = 0
        while start < body.count {
            lineNumber += 1
            var end = body[start...].firstIndex(of: 0x0A) ?? body.count
            let next = end + 1
            if end > start, body[end - 1] == 0x0D { end -= 1 }
            guard end - start <= maximumLineBytes else {
                throw failure(lineNumber, "longer than \(maximumLineBytes) bytes")
            }
            do throws(LineError) {
                skipped += try decodeLine(body[start..<end], types: types, now: now, into: &block)
            } catch {
                throw failure(lineNumber, error.message)
            }
            start = next
        }
        return skipped
    }

    private struct LineError: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    private static func failure(_ line: Int, _ message: String) -> InputFailure {
        InputFailure(.badRequest, "invalid_collectd", "line \(line): \(message); nothing from this request was stored")
    }

    private static func decodeLine(
        _ line: ArraySlice<UInt8>, types: CollectdTypes, now: Int64, into block: inout ReadingBlock
    ) throws(LineError) -> Int {
        let tokens = try tokenize(line)
        guard let command = tokens.first else { return 0 }  // a blank line
        guard ASCIICase.equal(command, "PUTVAL") else {
            throw LineError("\"\(command.prefix(40))\" is not a command this endpoint takes (only PUTVAL)")
        }
        guard tokens.count >= 3 else { throw LineError("PUTVAL needs an identifier and at least one value list") }
        let identifier = try Identifier(tokens[1])
        let names = types.names[identifier.type]
        var tags: [(String, String)] = [("host", identifier.host), ("type", identifier.type)]
        if !identifier.pluginInstance.isEmpty { tags.append(("instance", identifier.pluginInstance)) }
        if !identifier.typeInstance.isEmpty { tags.append(("type_instance", identifier.typeInstance)) }
        var keys: [String] = []
        var skipped = 0
        for token in tokens.dropFirst(2) {
            if let equals = token.firstIndex(of: "=") {
                let name = token[..<equals]
                let value = token[token.index(after: equals)...]
                guard ASCIICase.equal(String(name), "interval") else {
                    throw LineError("unknown option \"\(name.prefix(40))\" (PUTVAL takes interval=SECONDS)")
                }
                guard let seconds = Double(value), seconds.isFinite, seconds > 0 else {
                    throw LineError("interval \"\(value.prefix(40))\" is not a positive number of seconds")
                }
                continue
            }
            let fields = token.split(separator: ":", omittingEmptySubsequences: false)
            let count = fields.count - 1
            guard let dataSources = names ?? (count == 1 ? ["value"] : nil) else {
                throw LineError(
                    "type \"\(identifier.type.prefix(40))\" with \(count) values is not in types.db (inputs.http.collectd_types_db)"
                )
            }
            guard count == dataSources.count else {
                throw LineError(
                    "\(count) values for type \"\(identifier.type)\", which has \(dataSources.count) (\(dataSources.joined(separator: ", ")))"
                )
            }
            let timestamp = try time(fields[0], now: now)
            if keys.isEmpty {
                let limit = DecodingLimits.default.maximumSeriesKeyBytes
                for name in dataSources {
                    let key = LineProtocolSeriesKey.make(
                        measurement: identifier.plugin + "_" + name, tags: tags, field: "value")
                    guard key.utf8.count <= limit, !key.utf8.contains(0) else {
                        throw LineError("the series key would be longer than \(limit) bytes or hold U+0000")
                    }
                    keys.append(key)
                }
            }
            for (position, field) in fields.dropFirst().enumerated() {
                if field == "U" {
                    skipped += 1
                    continue
                }
                guard let value = Double(field) else {
                    throw LineError("value \"\(field.prefix(40))\" is not a number or U")
                }
                guard value.isFinite else {
                    skipped += 1
                    continue
                }
                block.append(IncomingReading(seriesKey: keys[position], timestamp: timestamp, value: value))
            }
        }
        return skipped
    }

    /// Seconds since the epoch (collectd writes three decimals) or `N`, in nanoseconds.
    private static func time(_ text: Substring, now: Int64) throws(LineError) -> Int64 {
        if text == "N" { return now }
        guard let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds < 9_223_372_036 else {
            throw LineError("time \"\(text.prefix(40))\" is not seconds since 1970 (up to 2262) or N")
        }
        // As in CollectdJSON: through milliseconds, so collectd's three decimals stay exact.
        return Int64((seconds * 1000).rounded()) * 1_000_000
    }

    /// The line split at spaces and tabs; a token in double quotes may hold them, with `\"` and `\\`.
    private static func tokenize(_ line: ArraySlice<UInt8>) throws(LineError) -> [String] {
        var tokens: [String] = []
        var index = line.startIndex
        while index < line.endIndex {
            let byte = line[index]
            if byte == 0x20 || byte == 0x09 {
                index += 1
                continue
            }
            var token: [UInt8] = []
            if byte == 0x22 {
                index += 1
                var closed = false
                while index < line.endIndex {
                    var character = line[index]
                    index += 1
                    if character == 0x22 {
                        closed = true
                        break
                    }
                    if character == 0x5C {
                        guard index < line.endIndex else { break }
                        character = line[index]
                        index += 1
                    }
                    token.append(character)
                }
                guard closed else { throw LineError("a quoted string is not closed") }
                if index < line.endIndex, line[index] != 0x20, line[index] != 0x09 {
                    throw LineError("a quoted string is followed by \"\(Character(UnicodeScalar(line[index])))\"")
                }
            } else {
                while index < line.endIndex, line[index] != 0x20, line[index] != 0x09 {
                    token.append(line[index])
                    index += 1
                }
            }
            guard let text = String(validating: token, as: UTF8.self) else {
                throw LineError("token \(tokens.count + 1) is not valid UTF-8")
            }
            if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                throw LineError("token \(tokens.count + 1) holds a control character")
            }
            tokens.append(text)
        }
        return tokens
    }

    /// `host/plugin[-plugin_instance]/type[-type_instance]`.
    private struct Identifier {
        var host: String
        var plugin: String
        var pluginInstance: String
        var type: String
        var typeInstance: String

        init(_ text: String) throws(LineError) {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else {
                throw LineError("identifier \"\(text.prefix(80))\" is not host/plugin[-instance]/type[-instance]")
            }
            host = String(parts[0])
            (plugin, pluginInstance) = Self.split(parts[1])
            (type, typeInstance) = Self.split(parts[2])
            guard !plugin.isEmpty, !type.isEmpty else {
                throw LineError("identifier \"\(text.prefix(80))\" has an empty plugin or type")
            }
        }

        /// At the first `-`, as collectd splits them.
        static func split(_ part: Substring) -> (String, String) {
            guard let dash = part.firstIndex(of: "-") else { return (String(part), "") }
            return (String(part[..<dash]), String(part[part.index(after: dash)...]))
        }
    }
}

/// The data source names of collectd's value list types, from a `types.db` file
/// (`load  shortterm:GAUGE:0:5000, midterm:GAUGE:0:5000, longterm:GAUGE:0:5000`): what a `PUTVAL`
/// line's values are called.
///
/// Without a file, a few common types with several values are built in; any other type with one
/// value is named `value` (as nearly every one-value type in collectd's `types.db` is).
package struct CollectdTypes: Sendable, Equatable {
    package private(set) var names: [String: [String]]

    package init(names: [String: [String]] = [:]) {
        self.names = names
    }

    /// The built-in types, for agents without collectd's `types.db`.
    package static let builtIn = CollectdTypes(names: [
        "load": ["shortterm", "midterm", "longterm"],
        "if_octets": ["rx", "tx"], "if_packets": ["rx", "tx"], "if_errors": ["rx", "tx"], "if_dropped": ["rx", "tx"],
        "io_octets": ["rx", "tx"], "io_packets": ["rx", "tx"],
        "disk_octets": ["read", "write"], "disk_ops": ["read", "write"], "disk_time": ["read", "write"],
        "disk_merged": ["read", "write"], "disk_io_time": ["io_time", "weighted_io_time"],
        "ps_cputime": ["user", "syst"], "ps_count": ["processes", "threads"],
        "ps_disk_octets": ["read", "write"], "ps_disk_ops": ["read", "write"], "ps_pagefaults": ["minflt", "majflt"],
    ])

    /// The default `types.db` location of Debian's collectd.
    package static let debianPath = "/usr/share/collectd/types.db"

    /// Parses `types.db` text over the built-in types; lines that do not parse are left out and counted.
    package static func parse(_ text: String) -> (types: CollectdTypes, badLines: Int) {
        var types = builtIn
        var bad = 0
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let space = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }) else {
                bad += 1
                continue
            }
            let name = String(trimmed[..<space])
            let sources = trimmed[space...].split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces).split(separator: ":").first.map(String.init) ?? ""
            }
            guard !sources.isEmpty, !sources.contains(where: \.isEmpty), sources.count <= 64 else {
                bad += 1
                continue
            }
            types.names[name] = sources
        }
        return (types, bad)
    }
}
