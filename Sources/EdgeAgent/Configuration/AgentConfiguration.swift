import EdgeSyncCodec
import EdgeSyncCommandLine
import Foundation

/// Everything `edge-agent run` and `drain` need, from a JSON file (`--config`) overridden by flags,
/// with the token from `--token`, `--token-file` or the `EDGE_AGENT_TOKEN` environment variable.
///
/// Every key is documented in `Docs/configuration.md`; an unknown key or a bad value is a
/// `UsageError` naming it (exit 64).
package struct AgentConfiguration: Sendable {
    package var spool: Spool.Configuration
    package var transport: CurlTransport.Configuration
    package var upload = Uploader.Configuration()
    /// The upload bandwidth cap for all requests together (nil: unlimited).
    package var maximumSendBytesPerSecond: Int?
    /// Where local producers hand readings over (`run` only; all off by default).
    package var inputs = Inputs()
    /// `processing.rules`: applied in order to every input's readings before the spool commit
    /// (`ProcessingSink`); none by default.
    package var processing: [ProcessingRule] = []

    /// The local inputs `edge-agent run` serves beside the uploader.
    package struct Inputs: Sendable {
        /// InfluxDB line protocol, Prometheus remote write and JSON over HTTP.
        package var http: (host: String, port: Int)?
        package var httpLimits = InputEndpoints.Configuration()
        /// Most open HTTP input connections; at the limit the longest-idle one makes room.
        package var httpMaximumConnections = 1024
        /// Newline-delimited line protocol over TCP.
        package var tcp: (host: String, port: Int)?
        /// Line protocol in UDP datagrams.
        package var udp: (host: String, port: Int)?
        /// The unit of timestamps on the TCP and UDP inputs (collectd's `write_influxdb_udp` sends ms).
        package var tcpPrecision = TimestampPrecision.nanoseconds
        package var udpPrecision = TimestampPrecision.nanoseconds
        /// The built-in sensor simulator.
        package var simulator: SimulatedSensors.Configuration?
        /// Subscriptions on an MQTT broker (`AgentConfiguration+MQTT.swift`).
        package var mqtt: MQTTInput.Configuration?

        package init() {}

        /// 0 turns the retry window off; otherwise it remembers stored readings that long.
        mutating func setRetryWindow(seconds: Int64) {
            guard seconds > 0 else {
                httpLimits.retryWindow = nil
                return
            }
            var window = httpLimits.retryWindow ?? RetryWindow.Configuration()
            window.maximumAge = .seconds(seconds)
            httpLimits.retryWindow = window
        }
    }

    /// The flags `run` and `drain` accept besides the spool's.
    package static let options: [ArgumentParser.Option] = [
        .value("--config", "FILE", help: "JSON configuration file (keys in Docs/configuration.md)"),
        .value("--data-dir", "DIR", help: "folder holding spool.sqlite"),
        .value("--device", "ID", help: "this gateway's device id"),
        .value("--collector", "URL", help: "collector base URL, http://host:port or https://host:port"),
        .value("--token", "TOKEN", help: "device token (prefer --token-file or EDGE_AGENT_TOKEN: flags show in ps)"),
        .value("--token-file", "FILE", help: "file holding the device token"),
        .value("--ca-file", "FILE", help: "PEM file of the CAs to trust for https (default: the system's)"),
        .value("--fsync", "full|normal|off", help: "when a write counts as durable (default full)"),
        .value("--max-bytes", "N", help: "cap on the spool's size on disk, WAL included"),
        .value("--when-full", "reject|drop-oldest", help: "what a full spool does (default reject)"),
        .value("--max-send-rate", "BYTES/S", help: "cap on upload bandwidth (default unlimited)"),
        .value("--listen", "[HOST:]PORT", help: "serve the HTTP inputs (line protocol, remote write, JSON); host defaults to 127.0.0.1"),
        .value("--tcp-listen", "[HOST:]PORT", help: "accept line protocol over TCP"),
        .value("--udp-listen", "[HOST:]PORT", help: "accept line protocol in UDP datagrams"),
        .value(
            "--retry-window", "SECONDS", help: "drop HTTP readings identical to ones stored this recently (default 300, 0 off)"
        ),
        .value("--tcp-precision", "ns|us|ms|s", help: "unit of TCP line protocol timestamps (default ns)"),
        .value("--udp-precision", "ns|us|ms|s", help: "unit of UDP line protocol timestamps (default ns)"),
        .value("--simulate", "SENSORS@HZ", help: "run the built-in sensor simulator, e.g. 100@10"),
    ]

    /// Reads the configuration file named by `--config` (if any), then applies the flags.
    package init(arguments: ParsedArguments, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(UsageError)
    {
        let file = try arguments.value("--config").map { path throws(UsageError) in try ConfigurationFile(path: path) }
        try self.init(file: file, arguments: arguments, environment: environment)
    }

    package init(file: ConfigurationFile?, arguments: ParsedArguments, environment: [String: String]) throws(UsageError)
    {
        func required(_ flag: String, _ key: String) throws(UsageError) -> String {
            // Read the key even when the flag wins, so the file's key counts as known.
            let fromFile = try file?.string(key)
            if let value = arguments.value(flag) ?? fromFile, !value.isEmpty { return value }
            throw UsageError("is required (flag \(flag) or configuration key \"\(key)\")", setting: flag)
        }
        let dataDirectory = try required("--data-dir", "data_dir")
        let device = try required("--device", "device")
        guard device.utf8.count <= 256 else { throw UsageError("must be 1...256 bytes", setting: "--device") }
        let collector = try required("--collector", "collector.url")
        guard Self.isHTTPURL(collector) else {
            throw UsageError("expected an http:// or https:// URL, found \"\(collector)\"", setting: "--collector")
        }

        let token: String
        let tokenFileFromFile = try file?.string("collector.token_file")
        // Most specific first: the flags, then the environment, then the file's token_file.
        if let flag = arguments.value("--token") {
            token = flag
        } else if let path = arguments.value("--token-file") {
            token = try Self.readToken(path)
        } else if let variable = environment["EDGE_AGENT_TOKEN"], !variable.isEmpty {
            token = variable
        } else if let path = tokenFileFromFile {
            token = try Self.readToken(path)
        } else {
            throw UsageError(
                "no device token: give --token-file FILE, the EDGE_AGENT_TOKEN environment variable, or --token",
                setting: "--token")
        }
        guard !token.isEmpty, token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw UsageError("the device token must be printable ASCII without spaces", setting: "--token")
        }

        spool = Spool.Configuration(dataDirectory: dataDirectory, device: device)
        transport = CurlTransport.Configuration(baseURL: collector, token: token)

        if let file {
            spool.fsync = try file.string("spool.fsync", as: "full, normal or off", FsyncPolicy.init) ?? spool.fsync
            spool.maxBytes = try file.integer("spool.max_bytes", in: Spool.Configuration.minimumMaxBytes...Int64.max)
            if let series = try file.integer("spool.max_series", in: 0...100_000_000) {
                spool.maxSeries = series == 0 ? nil : Int(series)
            }
            spool.whenFull =
                try file.string("spool.when_full", as: "reject or drop-oldest", FullPolicy.init) ?? spool.whenFull
            transport.caFile = try file.string("collector.ca_file")
            if let seconds = try file.number("collector.connect_timeout_seconds", in: 0.1...3600) {
                transport.connectTimeout = .milliseconds(Int64(seconds * 1000))
            }
            if let seconds = try file.number("collector.request_timeout_seconds", in: 1...86400) {
                transport.requestTimeout = .milliseconds(Int64(seconds * 1000))
            }
            if let rate = try file.integer("upload.max_send_bytes_per_second", in: 1024...Int64.max) {
                maximumSendBytesPerSecond = Int(rate)
            }
            if let count = try file.integer("upload.batch_readings", in: 1...1_000_000) {
                upload.maximumBatchReadings = Int(count)
            }
            if let count = try file.integer("upload.replay_batch_readings", in: 1...1_000_000) {
                upload.replayBatchReadings = Int(count)
            }
            if let bytes = try file.integer("upload.batch_bytes", in: 1024...(64 << 20)) {
                upload.maximumBatchBytes = Int(bytes)
            }
            if let milliseconds = try file.integer("upload.linger_ms", in: 0...600_000) {
                upload.linger = .milliseconds(milliseconds)
            }
            if let count = try file.integer("upload.max_in_flight", in: 1...64) {
                upload.retry.maximumInFlight = Int(count)
            }
            if let milliseconds = try file.integer("upload.backoff_initial_ms", in: 1...3_600_000) {
                upload.retry.initialBackoff = .milliseconds(milliseconds)
            }
            if let seconds = try file.integer("upload.backoff_max_seconds", in: 1...86400) {
                upload.retry.maximumBackoff = .seconds(seconds)
            }
            if let count = try file.integer("upload.live_threshold_readings", in: 1...Int64.max) {
                upload.liveThreshold = Int(count)
            }
            let listen = { (key: String) throws(UsageError) in
                try file.string(key, as: "[HOST:]PORT", ListenAddress.parse)
            }
            inputs.http = try listen("inputs.http.listen")
            inputs.tcp = try listen("inputs.tcp.listen")
            inputs.udp = try listen("inputs.udp.listen")
            let precision = { (key: String) throws(UsageError) in
                try file.string(key, as: Self.precisionNames, TimestampPrecision.init(influxName:))
            }
            inputs.tcpPrecision = try precision("inputs.tcp.precision") ?? inputs.tcpPrecision
            inputs.udpPrecision = try precision("inputs.udp.precision") ?? inputs.udpPrecision
            if let bytes = try file.integer("inputs.http.max_body_bytes", in: 1024...(1 << 30)) {
                inputs.httpLimits.maximumBodyBytes = Int(bytes)
            }
            if let bytes = try file.integer("inputs.http.max_inflated_bytes", in: 1024...(4 << 30)) {
                inputs.httpLimits.maximumInflatedBytes = Int(bytes)
            }
            if let count = try file.integer("inputs.http.max_connections", in: 1...1_000_000) {
                inputs.httpMaximumConnections = Int(count)
            }
            if let count = try file.integer("inputs.http.max_concurrent_inflations", in: 1...1024) {
                inputs.httpLimits.maximumConcurrentInflations = Int(count)
            }
            let seriesLimit = Int64(DecodingLimits.default.maximumSeries)
            if let count = try file.integer("inputs.http.max_series_per_request", in: 1...seriesLimit) {
                inputs.httpLimits.maximumSeriesPerRequest = Int(count)
            }
            let readingsLimit = Int64(DecodingLimits.default.maximumReadings)
            if let count = try file.integer("inputs.http.max_readings_per_request", in: 1...readingsLimit) {
                inputs.httpLimits.maximumReadingsPerRequest = Int(count)
            }
            inputs.httpLimits.collectdTypes = try Self.collectdTypes(file.string("inputs.http.collectd_types_db"))
            if let seconds = try file.integer("inputs.http.retry_window_seconds", in: 0...86400) {
                inputs.setRetryWindow(seconds: seconds)
            }
            if let count = try file.integer("inputs.http.retry_window_readings", in: 1...(1 << 26)) {
                inputs.httpLimits.retryWindow?.maximumEntries = Int(count)
            }
            let sensors = try file.integer("inputs.simulator.sensors", in: 1...1_000_000)
            let rate = try file.number("inputs.simulator.rate_hz", in: 0.001...1_000_000)
            if sensors != nil || rate != nil {
                guard let sensors else {
                    throw UsageError("is required with inputs.simulator.rate_hz", setting: "\(file.source): inputs.simulator.sensors")
                }
                let simulator = SimulatedSensors.Configuration(sensors: Int(sensors), rateHz: rate ?? 1)
                guard simulator.isFeasible else {
                    throw UsageError(
                        "sensors × rate_hz / 10 must stay under 1,000,000 readings per 100 ms tick",
                        setting: "\(file.source): inputs.simulator.sensors")
                }
                inputs.simulator = simulator
            }
            inputs.mqtt = try Self.mqttInput(from: file, device: device)
            processing = try Self.processingRules(from: file)
            guard upload.retry.maximumBackoff >= upload.retry.initialBackoff else {
                throw UsageError(
                    "must not be below upload.backoff_initial_ms", setting: "\(file.source): upload.backoff_max_seconds"
                )
            }
            try file.rejectUnknownKeys()
        }

        // Flags override the file.
        if let fsync = try arguments.value("--fsync", as: "full, normal or off", FsyncPolicy.init) {
            spool.fsync = fsync
        }
        if let whenFull = try arguments.value("--when-full", as: "reject or drop-oldest", FullPolicy.init) {
            spool.whenFull = whenFull
        }
        let minimum = Spool.Configuration.minimumMaxBytes
        if let maxBytes = try arguments.value(
            "--max-bytes", as: "a byte count of at least \(minimum)", { Int64($0).flatMap { $0 >= minimum ? $0 : nil } }
        ) {
            spool.maxBytes = maxBytes
        }
        if let caFile = arguments.value("--ca-file") { transport.caFile = caFile }
        if let http = try arguments.value("--listen", as: "[HOST:]PORT", ListenAddress.parse) { inputs.http = http }
        if let tcp = try arguments.value("--tcp-listen", as: "[HOST:]PORT", ListenAddress.parse) { inputs.tcp = tcp }
        if let udp = try arguments.value("--udp-listen", as: "[HOST:]PORT", ListenAddress.parse) { inputs.udp = udp }
        if let seconds = try arguments.value(
            "--retry-window", as: "seconds, 0...86400", { Int64($0).flatMap { (0...86400).contains($0) ? $0 : nil } })
        {
            inputs.setRetryWindow(seconds: seconds)
        }
        if let precision = try arguments.value(
            "--tcp-precision", as: Self.precisionNames, TimestampPrecision.init(influxName:))
        {
            inputs.tcpPrecision = precision
        }
        if let precision = try arguments.value(
            "--udp-precision", as: Self.precisionNames, TimestampPrecision.init(influxName:))
        {
            inputs.udpPrecision = precision
        }
        if let simulator = try arguments.value("--simulate", as: "SENSORS@HZ such as 100@10", Self.parseSimulation) {
            inputs.simulator = simulator
        }
        if let rate = try arguments.value(
            "--max-send-rate", as: "bytes per second, at least 1024", { Int($0).flatMap { $0 >= 1024 ? $0 : nil } })
        {
            maximumSendBytesPerSecond = rate
        }
        // libcurl caps each request; the batches in flight share the configured total.
        transport.maximumSendBytesPerSecond = maximumSendBytesPerSecond.map {
            max(1, $0 / upload.retry.maximumInFlight)
        }
        upload.maximumBatchBytes = Self.bodyLimit(
            batchBytes: upload.maximumBatchBytes, perRequestRate: transport.maximumSendBytesPerSecond,
            requestTimeout: transport.requestTimeout)
        if let caFile = transport.caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw UsageError("cannot read \(caFile)", setting: "--ca-file")
        }
    }

    /// The largest request body: `upload.batch_bytes`, and under a send-rate cap no more than half
    /// of what one request can send at its share of the rate within the request timeout, so that a
    /// replay batch (100,000 readings) on a slow link is cut smaller instead of timing out on every
    /// attempt.
    static func bodyLimit(batchBytes: Int, perRequestRate: Int?, requestTimeout: Duration) -> Int {
        guard let rate = perRequestRate else { return batchBytes }
        let seconds = Double(requestTimeout.components.seconds) + Double(requestTimeout.components.attoseconds) / 1e18
        let sendable = Double(rate) * seconds / 2
        return min(batchBytes, max(1024, Int(min(sendable, Double(batchBytes)))))
    }

    private static let precisionNames = "ns, us, ms or s (or InfluxDB's n, u, m, h)"

    /// `SENSORS@HZ` (`100@10`), or `SENSORS` for one reading per sensor per second.
    /// collectd's `types.db` for `Format "Command"`: the configured file (which must be readable),
    /// else Debian's when it is installed, else the built-in types.
    static func collectdTypes(_ path: String?) throws(UsageError) -> CollectdTypes {
        let setting = "inputs.http.collectd_types_db"
        guard let path else {
            guard let text = try? String(contentsOfFile: CollectdTypes.debianPath, encoding: .utf8) else {
                return .builtIn
            }
            return CollectdTypes.parse(text).types
        }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let size = attributes[.size] as? Int, size <= 4 << 20,
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else {
            throw UsageError("cannot read \(path) as a types.db file of at most 4 MiB of UTF-8", setting: setting)
        }
        return CollectdTypes.parse(text).types
    }

    static func parseSimulation(_ text: String) -> SimulatedSensors.Configuration? {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let sensors = Int(parts[0]), (1...1_000_000).contains(sensors) else {
            return nil
        }
        let rate = parts.count == 2 ? Double(parts[1]) : 1
        guard let rate, rate.isFinite, rate >= 0.001, rate <= 1_000_000 else { return nil }
        let configuration = SimulatedSensors.Configuration(sensors: sensors, rateHz: rate)
        return configuration.isFeasible ? configuration : nil
    }

    private static func isHTTPURL(_ text: String) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty
        else { return false }
        return scheme == "http" || scheme == "https"
    }

    private static func readToken(_ path: String) throws(UsageError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("cannot read the token file \(path)", setting: "--token-file")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
