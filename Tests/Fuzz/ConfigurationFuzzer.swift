// libFuzzer entry point for the JSON configuration files of both binaries (ConfigurationFile,
// ListenAddress); built by Tests/Fuzz/run-fuzz.sh with EdgeSyncCommandLine's parsing sources.

/// The keys both binaries read (Docs/configuration.md, Docs/protocol.md).
private let keys = [
    "data_dir", "device", "collector.url", "collector.token_file", "collector.ca_file",
    "collector.connect_timeout_seconds", "collector.request_timeout_seconds", "spool.fsync", "spool.max_bytes",
    "spool.when_full", "upload.batch_readings", "upload.batch_bytes", "upload.linger_ms", "upload.max_in_flight",
    "upload.backoff_initial_ms", "upload.backoff_max_seconds", "upload.live_threshold_readings",
    "upload.max_send_bytes_per_second", "inputs.http.listen", "inputs.http.max_body_bytes",
    "inputs.http.max_inflated_bytes", "inputs.tcp.listen", "inputs.udp.listen", "inputs.simulator.sensors",
    "inputs.simulator.rate_hz", "listen", "synchronous", "queue.max_readings", "limits.max_frame_bytes",
    "http.event_loops", "storage.cache_kib", "operator_token_file", "tokens",
]

/// The whole input is a configuration file. Each key is read with a getter picked by the input's
/// size, then unknown keys are rejected; every refusal must be a `UsageError` naming the file, and
/// a listen address that parses must have a port in 0...65535. No input may crash or hang.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let file: ConfigurationFile
    do {
        file = try ConfigurationFile(bytes: bytes, source: "fuzz.json")
    } catch {
        guard error.setting == "fuzz.json" else { fatalError("an error that does not name the file: \(error)") }
        return 0
    }
    for (index, key) in keys.enumerated() {
        do {
            switch (index + size) % 6 {
            case 0:
                if let text = try file.string(key), let address = ListenAddress.parse(text),
                    !(0...65535).contains(address.port)
                {
                    fatalError("\(text.debugDescription) parsed to port \(address.port)")
                }
            case 1: _ = try file.integer(key, in: 0...1_000_000)
            case 2: _ = try file.number(key, in: 0...1e9)
            case 3: _ = try file.bool(key)
            case 4: _ = try file.stringArray(key)
            default: _ = try file.string(key, as: "fsync mode") { ["full", "normal", "off"].contains($0) ? $0 : nil }
            }
        } catch {
            guard error.setting?.hasPrefix("fuzz.json: ") == true else {
                fatalError("an error that does not name the key: \(error)")
            }
        }
    }
    do {
        try file.rejectUnknownKeys()
    } catch {
        guard error.setting?.hasPrefix("fuzz.json: ") == true else { fatalError("unknown key not named: \(error)") }
    }
    return 0
}
