import EdgeAgent
import EdgeSyncProtocol
import PrometheusRemoteWrite
import EdgeSyncTestSupport
import Foundation
import Testing

/// An `edge-agent run` serving inputs, with the ports it bound.
struct AgentUnderTest {
    let process: ChildProcess
    let ports: [String: Int]

    /// Starts the agent with `arguments` and waits until each of `inputs` (`http`, `tcp`, `udp`) listens.
    static func start(_ pair: PairFixture, collectorURL: String, arguments: [String], inputs: [String]) async throws
        -> AgentUnderTest
    {
        let process = try ChildProcess(
            try ChildProcess.productURL("edge-agent"),
            ["run", "--data-dir", pair.spoolDirectory, "--device", PairFixture.device, "--collector", collectorURL]
                + arguments,
            environment: ["EDGE_AGENT_TOKEN": pair.token])
        var ports: [String: Int] = [:]
        for input in inputs {
            let line = try await process.waitForLine { $0.contains("event=listening input=\(input) ") }
            guard let port = line.split(separator: ":").last.flatMap({ Int($0) }) else {
                throw ChildProcess.Failure("no port in \"\(line)\"")
            }
            ports[input] = port
        }
        return AgentUnderTest(process: process, ports: ports)
    }

    /// SIGTERM, and the exit status.
    func stop() async -> Int32 {
        process.kill(SIGTERM)
        return await process.waitForExit()
    }
}

/// Python with `module` importable; nil (and the reason printed) when it is not. Tests install
/// nothing: `.ci/run` installs the Python packages the tests use.
func pythonWith(module: String, package: String) async throws -> URL? {
    let python = URL(fileURLWithPath: "/usr/bin/env")
    if try await ChildProcess.run(python, ["python3", "-c", "import \(module)"]).status == 0 { return python }
    print("skipped: the Python package \(package) is not installed (pip install \(package); .ci/run does)")
    return nil
}

/// After the writes: stop the agent, drain what it still holds, and check the collector has exactly
/// the readings, each once (order between client batches is the client's business, so compared as
/// a multiset; sequence numbers must still be 1...N).
func expectDelivered(_ expected: [ExpectedReading], pair: PairFixture, agent: AgentUnderTest, collectorURL: String)
    async throws
{
    #expect(await agent.stop() == 0, "\(agent.process.stderrLines.suffix(5))")
    let drain = try await pair.drain(collectorURL)
    #expect(drain.status == 0, "\(drain.stderr)")
    let stored = try CollectorUnderTest.storedReadings(dataDirectory: pair.collectorDirectory, device: PairFixture.device)
    #expect(stored.rows == expected.count)
    #expect(Set(stored.bySequence.keys) == Set((1...UInt64(expected.count)).map { $0 }))
    let order = { (a: ExpectedReading, b: ExpectedReading) in
        (a.key, a.timestamp, a.valueBits) < (b.key, b.timestamp, b.valueBits)
    }
    let got = stored.bySequence.values.sorted(by: order)
    let want = expected.sorted(by: order)
    let differing = zip(got, want).filter { $0 != $1 }.count
    #expect(got.count == want.count && differing == 0, "\(differing) stored readings differ from those sent")
}

/// A collector, and an agent uploading to it with its HTTP inputs on a free port, for `body`.
func withPairServingHTTP(
    _ body: (PairFixture, CollectorUnderTest, AgentUnderTest) async throws -> Void
) async throws {
    try await PairFixture.with { pair in
        let collector = try await pair.startCollector()
        defer { collector.process.kill() }
        let agent = try await AgentUnderTest.start(
            pair, collectorURL: collector.url, arguments: ["--listen", "0"], inputs: ["http"])
        defer { agent.process.kill() }
        try await body(pair, collector, agent)
    }
}

/// Clients nobody here wrote, sending the real datasets to a real agent that uploads to a real
/// collector.
@Suite(.serialized) struct InputClientTests {
    @Test func pythonInfluxDBClientWritesEveryPointWithBatchingAndGzip() async throws {
        guard let python = try await pythonWith(module: "influxdb_client", package: "influxdb-client") else { return }
        try await withPairServingHTTP { pair, collector, agent in
            let (text, expected) = try realDataAsLineProtocol()
            let data = pair.directory + "/points.lp"
            try text.write(toFile: data, atomically: false, encoding: .utf8)
            let script = pair.directory + "/write.py"
            try Self.influxClientScript.write(toFile: script, atomically: false, encoding: .utf8)
            let output = try await ChildProcess.run(
                python, ["python3", script, "http://127.0.0.1:\(agent.ports["http"]!)", data])
            #expect(output.status == 0, "\(output.stderr.suffix(2000))")
            #expect(output.stdout.contains("errors 0"), "\(output.stdout)")
            try await expectDelivered(expected, pair: pair, agent: agent, collectorURL: collector.url)
        }
    }

    /// influxdb-client's v2 write API: batches of 5,000 lines, gzip, retries on 503 with Retry-After.
    static let influxClientScript = #"""
        import sys
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import WriteOptions

        url, path = sys.argv[1], sys.argv[2]
        errors = []
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line]
        with InfluxDBClient(url=url, token="not-used", org="edge", enable_gzip=True) as client:
            options = WriteOptions(batch_size=5000, flush_interval=200, max_retries=5, max_retry_delay=5000)
            with client.write_api(
                write_options=options,
                error_callback=lambda conf, data, error: errors.append(error),
            ) as write:
                write.write(bucket="sensors", record=lines, write_precision="ns")
        print("sent", len(lines), "errors", len(errors))
        for error in errors[:3]:
            print(error, file=sys.stderr)
        """#

    /// Telegraf-style lines with a string field in each, then a write with one bad line: the string
    /// fields are skipped (the request is not refused for them), the partial write stores the good
    /// line and answers 400 naming the bad one, and the collector ends up with exactly the numbers.
    @Test func pythonInfluxDBClientWithStringFieldsAndAPartialWrite() async throws {
        guard let python = try await pythonWith(module: "influxdb_client", package: "influxdb-client") else { return }
        try await withPairServingHTTP { pair, collector, agent in
            let (text, realData) = try realDataAsLineProtocol(limit: 20_000)
            // `measurement field=value ts` → `measurement field=value,status="ok, \"fine\"" ts`.
            let withStrings = text.split(separator: "\n").map { line -> String in
                let cut = line.lastIndex(of: " ")!
                return String(line[..<cut]) + #",status="ok, \"fine\"""# + String(line[cut...])
            }
            let data = pair.directory + "/points.lp"
            try withStrings.joined(separator: "\n").write(toFile: data, atomically: false, encoding: .utf8)
            let script = pair.directory + "/write.py"
            try Self.partialWriteScript.write(toFile: script, atomically: false, encoding: .utf8)
            let output = try await ChildProcess.run(
                python, ["python3", script, "http://127.0.0.1:\(agent.ports["http"]!)", data])
            #expect(output.status == 0, "\(output.stderr.suffix(2000))")
            #expect(output.stdout.contains("sent \(realData.count)"), "\(output.stdout)")
            #expect(output.stdout.contains("status 400"), "\(output.stdout)")
            #expect(output.stdout.contains("partial write: unable to parse 'bad v=oops 1'"), "\(output.stdout)")
            #expect(output.stdout.contains("dropped=1"), "\(output.stdout)")
            let good = ExpectedReading(key: "extra,host=a v", timestamp: 5, valueBits: (1.0).bitPattern)
            try await expectDelivered(realData + [good], pair: pair, agent: agent, collectorURL: collector.url)
        }
    }

    static let partialWriteScript = #"""
        import sys
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.rest import ApiException

        url, path = sys.argv[1], sys.argv[2]
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line]
        with InfluxDBClient(url=url, token="not-used", org="edge") as client:
            write = client.write_api(write_options=SYNCHRONOUS)
            for start in range(0, len(lines), 5000):
                write.write(bucket="telegraf", record=lines[start:start + 5000], write_precision="ns")
            print("sent", len(lines))
            try:
                write.write(bucket="telegraf", record=["bad v=oops 1", "extra,host=a v=1 5"], write_precision="ns")
                print("no error")
            except ApiException as error:
                print("status", error.status, "body", error.body)
        """#

    @Test func influxOneCLIImportsARealDatasetFile() async throws {
        guard let influx = programOrSkip("influx", debianPackage: "influxdb-client") else { return }
        try await withPairServingHTTP { pair, collector, agent in
            let (text, expected) = try realDataAsLineProtocol()
            // The 1.x export format: DDL, then DML with the target database.
            let file = pair.directory + "/export.txt"
            try ("# DDL\nCREATE DATABASE sensors\n# DML\n# CONTEXT-DATABASE: sensors\n" + text)
                .write(toFile: file, atomically: false, encoding: .utf8)
            let output = try await ChildProcess.run(
                influx,
                ["-host", "127.0.0.1", "-port", "\(agent.ports["http"]!)", "-import", "-path", file, "-precision", "ns"])
            #expect(output.status == 0, "\(output.stdout) \(output.stderr)")
            // The CLI logs its tally on standard error: "Processed N inserts", "Failed 0 inserts".
            let log = output.stdout + output.stderr
            #expect(log.contains("Processed \(expected.count) inserts"), "\(log.suffix(500))")
            #expect(log.contains("Failed 0 inserts"), "\(log.suffix(500))")
            try await expectDelivered(expected, pair: pair, agent: agent, collectorURL: collector.url)
        }
    }

    /// The 1.x CLI against `/query`: a query prints InfluxDB's error and fails, DDL and SHOW
    /// DATABASES succeed, and an INSERT with a string field stores its number.
    @Test func influxOneCLIQueriesGetInfluxDBsErrorAndInsertsAreStored() async throws {
        guard let influx = programOrSkip("influx", debianPackage: "influxdb-client") else { return }
        try await withPairServingHTTP { pair, collector, agent in
            let base = ["-host", "127.0.0.1", "-port", "\(agent.ports["http"]!)"]
            let select = try await ChildProcess.run(
                influx, base + ["-database", "sensors", "-execute", "SELECT * FROM m"])
            #expect(select.status != 0)
            #expect((select.stdout + select.stderr).contains("ERR: database not found: sensors"), "\(select.stderr)")
            let show = try await ChildProcess.run(influx, base + ["-execute", "SHOW DATABASES"])
            #expect(show.status == 0 && show.stdout.contains("name: databases"), "\(show.stdout) \(show.stderr)")
            let create = try await ChildProcess.run(influx, base + ["-execute", "CREATE DATABASE sensors"])
            #expect(create.status == 0, "\(create.stderr)")
            let insert = try await ChildProcess.run(
                influx, base + ["-database", "sensors", "-execute", #"INSERT m,t=a v=1.5,s="x y" 5"#])
            #expect(insert.status == 0, "\(insert.stderr)")
            let expected = ExpectedReading(key: "m,t=a v", timestamp: 5, valueBits: (1.5).bitPattern)
            try await expectDelivered([expected], pair: pair, agent: agent, collectorURL: collector.url)
        }
    }

    /// The OpenTelemetry Python SDK's OTLP/HTTP exporter (protobuf, gzip and not): counters,
    /// up-down counters, histograms, observable gauges and an exponential histogram, which is
    /// rejected per point. The collector ends up with exactly the readings the exported points map to.
    @Test(arguments: ["gzip", "none"])
    func openTelemetryPythonExporterMetricsArriveExactly(compression: String) async throws {
        guard let python = try await pythonWith(
            module: "opentelemetry.exporter.otlp.proto.http.metric_exporter",
            package: "opentelemetry-exporter-otlp-proto-http")
        else { return }
        try await withPairServingHTTP { pair, collector, agent in
            let script = pair.directory + "/export.py"
            try Self.otlpScript.write(toFile: script, atomically: false, encoding: .utf8)
            let output = try await ChildProcess.run(
                python, ["python3", script, "http://127.0.0.1:\(agent.ports["http"]!)", compression])
            #expect(output.status == 0, "\(output.stderr.suffix(2000))")
            // The script counts what the points map to: one reading per number point, count + sum +
            // one per bucket for a histogram point.
            #expect(output.stdout.contains("result SUCCESS readings 293 rejected 3"), "\(output.stdout)")
            #expect(await agent.stop() == 0)
            let drain = try await pair.drain(collector.url)
            #expect(drain.status == 0, "\(drain.stderr)")
            let stored = try CollectorUnderTest.storedReadings(
                dataDirectory: pair.collectorDirectory, device: PairFixture.device)
            #expect(stored.rows == 293 && stored.bySequence.count == 293)
            let byKey = Dictionary(grouping: stored.bySequence.values, by: \.key)
            let p7 = byKey.keys.filter { $0.hasPrefix("pump.starts,") && $0.contains(",pump=p7,") }
            #expect(p7.count == 1 && p7.first.map { byKey[$0]!.map(\.valueBits) } == [(7.0).bitPattern])
            #expect(p7.first?.contains("otel_scope_name=edge.test,") == true && p7.first?.contains("site=north") == true)
            let tank = byKey.keys.filter { $0.hasPrefix("tank.level,") }
            #expect(tank.count == 1 && tank.first.map { byKey[$0]!.map(\.valueBits) } == [(-7.0).bitPattern])
            #expect(byKey.keys.filter { $0.hasPrefix("pump.latency_bucket,le=+Inf,") }.count == 5)
            #expect(!byKey.keys.contains { $0.hasPrefix("pump.exp") })
        }
    }

    static let otlpScript = #"""
        import sys
        from opentelemetry.metrics import Observation
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader, HistogramDataPoint, NumberDataPoint
        from opentelemetry.sdk.metrics.view import View, ExponentialBucketHistogramAggregation
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        url, compression = sys.argv[1], sys.argv[2]
        reader = InMemoryMetricReader()
        views = [View(instrument_name="pump.exp", aggregation=ExponentialBucketHistogramAggregation())]
        provider = MeterProvider(
            resource=Resource.create({"service.name": "pump", "site": "north"}), metric_readers=[reader], views=views)
        meter = provider.get_meter("edge.test", "1.0")
        starts = meter.create_counter("pump.starts")
        level = meter.create_up_down_counter("tank.level")
        latency = meter.create_histogram("pump.latency", unit="ms")
        exp = meter.create_histogram("pump.exp")
        meter.create_observable_gauge(
            "room.temperature", callbacks=[lambda options: [Observation(21.5, {"room": "a"}), Observation(-3, {"room": "b"})]])
        for i in range(200):
            starts.add(i, {"pump": f"p{i}"})
        level.add(-7, {"tank": "t1"})
        for i in range(50):
            latency.record(i * 7.25, {"pump": f"p{i % 5}"})
        for i in range(3):
            exp.record(i + 0.5, {"pump": f"p{i}"})
        data = reader.get_metrics_data()
        readings = rejected = 0
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        if metric.name == "pump.exp":
                            rejected += 1
                        elif isinstance(point, HistogramDataPoint):
                            readings += 2 + len(point.bucket_counts)
                        else:
                            readings += 1
        exporter = OTLPMetricExporter(
            endpoint=url + "/v1/metrics", compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)
        result = exporter.export(data)
        print("result", result.name, "readings", readings, "rejected", rejected)
        """#

    /// Debian's collectd with `write_http` (`Format "JSON"`, and `"Command"`: PUTVAL lines named
    /// through types.db) and, as the ledger of what it sent, the
    /// `csv` plugin fed the same value lists: the collector ends up with one reading per CSV value,
    /// at the CSV's timestamps. collectd runs for a few intervals and stops on SIGTERM (it flushes
    /// write_http first).
    @Test(arguments: ["JSON", "Command"]) func collectdWriteHTTPArrivesExactly(_ format: String) async throws {
        guard let collectd = programOrSkip("collectd", debianPackage: "collectd-core") else { return }
        try await withPairServingHTTP { pair, collector, agent in
            let base = pair.directory + "/collectd"
            try FileManager.default.createDirectory(atPath: base + "/csv", withIntermediateDirectories: true)
            let config = """
                Hostname "edge-test"
                FQDNLookup false
                Interval 1
                BaseDir "\(base)"
                PIDFile "\(base)/collectd.pid"
                TypesDB "/usr/share/collectd/types.db"
                LoadPlugin load
                LoadPlugin memory
                LoadPlugin csv
                LoadPlugin write_http
                <Plugin csv>
                  DataDir "\(base)/csv"
                  StoreRates false
                </Plugin>
                <Plugin write_http>
                  <Node "edge">
                    URL "http://127.0.0.1:\(agent.ports["http"]!)/collectd"
                    Format "\(format)"
                    StoreRates false
                  </Node>
                </Plugin>
                """
            // collectd's parser wants the last line ended.
            try (config + "\n").write(toFile: base + "/collectd.conf", atomically: false, encoding: .utf8)
            // The test process blocks SIGTERM (children inherit the mask through exec): collectd would
            // never see it. Python unblocks it, then becomes collectd.
            let unblocked = """
                import os, signal, sys
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
                os.execv(sys.argv[1], sys.argv[1:])
                """
            let process = try ChildProcess(
                URL(fileURLWithPath: "/usr/bin/env"),
                ["python3", "-c", unblocked, collectd.path, "-f", "-C", base + "/collectd.conf"], name: "collectd")
            defer { process.kill() }
            // collectd is an external process: poll its CSV ledger, with a deadline, for three intervals.
            let deadline = ContinuousClock.now + .seconds(30)
            while try Self.collectdLedger(base + "/csv").count < 27, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
            process.kill(SIGTERM)
            #expect(await process.waitForExit() == 0, "\(process.stderrLines.suffix(5))")
            let ledger = try Self.collectdLedger(base + "/csv")
            #expect(ledger.count >= 27, "collectd wrote \(ledger.count) values")
            #expect(await agent.stop() == 0)
            let drain = try await pair.drain(collector.url)
            #expect(drain.status == 0, "\(drain.stderr)")
            let stored = try CollectorUnderTest.storedReadings(
                dataDirectory: pair.collectorDirectory, device: PairFixture.device)
            let got = stored.bySequence.values.map { "\($0.key) \($0.timestamp)" }.sorted()
            #expect(got == ledger.map { "\($0.key) \($0.timestamp)" }.sorted())
            for (reading, expected) in zip(stored.bySequence.values.sorted { ($0.key, $0.timestamp) < ($1.key, $1.timestamp) }, ledger.sorted { ($0.key, $0.timestamp) < ($1.key, $1.timestamp) }) {
                // The CSV prints six decimals; the wire carries the double.
                #expect(abs(Double(bitPattern: reading.valueBits) - expected.value) <= 1e-6 * max(1, abs(expected.value)))
            }
        }
    }

    /// Every value collectd's csv plugin wrote under `directory`, as the series key write_http's JSON
    /// maps it to (`load_shortterm,host=…,type=load value`, `memory_value,…,type_instance=used value`).
    static func collectdLedger(_ directory: String) throws -> [(key: String, timestamp: Int64, value: Double)] {
        var values: [(key: String, timestamp: Int64, value: Double)] = []
        let files = FileManager.default.enumerator(atPath: directory)?.compactMap { $0 as? String } ?? []
        for file in files where file.split(separator: "/").count == 3 {
            // HOST/PLUGIN[-INSTANCE]/TYPE[-INSTANCE]-DATE
            let parts = file.split(separator: "/").map(String.init)
            let plugin = parts[1]
            var type = String(parts[2].dropLast(11))
            var typeInstance = ""
            if let dash = type.firstIndex(of: "-") {
                typeInstance = String(type[type.index(after: dash)...])
                type = String(type[..<dash])
            }
            guard let text = try? String(contentsOfFile: directory + "/" + file, encoding: .utf8) else { continue }
            let lines = text.split(separator: "\n")
            guard let header = lines.first?.split(separator: ",").dropFirst().map(String.init) else { continue }
            for line in lines.dropFirst() {
                let cells = line.split(separator: ",")
                guard cells.count == header.count + 1, let seconds = Double(cells[0]) else { continue }
                for (name, cell) in zip(header, cells.dropFirst()) {
                    var tags = [("host", parts[0]), ("type", type)]
                    if !typeInstance.isEmpty { tags.append(("type_instance", typeInstance)) }
                    let key = LineProtocolSeriesKey.make(measurement: plugin + "_" + name, tags: tags, field: "value")
                    values.append((key, Int64((seconds * 1000).rounded()) * 1_000_000, Double(cell) ?? .nan))
                }
            }
        }
        return values
    }

    @Test func tcpUdpAndTheSimulatorFeedTheSameSpool() async throws {
        try await PairFixture.with { pair in
            let collector = try await pair.startCollector()
            defer { collector.process.kill() }
            let agent = try await AgentUnderTest.start(
                pair, collectorURL: collector.url,
                arguments: ["--tcp-listen", "0", "--udp-listen", "127.0.0.1:0", "--simulate", "3@2"],
                inputs: ["tcp", "udp"])
            defer { agent.process.kill() }
            let (text, expected) = try realDataAsLineProtocol(limit: 20_000)
            let script = """
                import socket, sys
                tcp = socket.create_connection(("127.0.0.1", \(agent.ports["tcp"]!)))
                tcp.sendall(sys.stdin.buffer.read())
                # Half-close and wait for the agent to close: it does so once every line is durable.
                tcp.shutdown(socket.SHUT_WR)
                assert tcp.recv(1) == b""
                tcp.close()
                """
            let sent = try await ChildProcess.run(
                URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script], input: Data(text.utf8))
            #expect(sent.status == 0, "\(sent.stderr)")
            #expect(await agent.stop() == 0)
            let drain = try await pair.drain(collector.url)
            #expect(drain.status == 0, "\(drain.stderr)")
            let stored = try CollectorUnderTest.storedReadings(
                dataDirectory: pair.collectorDirectory, device: PairFixture.device)
            let fromTCP = stored.bySequence.values.filter { !$0.key.hasPrefix("sim,") }
            #expect(fromTCP.count == expected.count)
            #expect(Set(fromTCP).symmetricDifference(Set(expected)).isEmpty, "TCP readings differ from those sent")
            #expect(stored.bySequence.values.contains { $0.key == "sim,sensor=s0001 temperature" })
            #expect(stored.rows == stored.bySequence.count)
        }
    }
}

/// Prometheus from Debian scrapes the agent's own `/metrics` and remote-writes the samples back to
/// the agent, for a bounded time; the collector ends up with them under their metric names and labels.
@Suite(.serialized) struct PrometheusRemoteWriteClientTests {
    @Test func prometheusRemoteWritesScrapedSamplesWithTheirLabels() async throws {
        guard let prometheus = programOrSkip("prometheus", debianPackage: "prometheus") else { return }
        try await withPairServingHTTP { pair, collector, agent in
            let port = agent.ports["http"]!
            let config = pair.directory + "/prometheus.yml"
            try """
                global:
                  scrape_interval: 1s
                  external_labels: {site: test}
                scrape_configs:
                  - job_name: edge
                    static_configs: [{targets: ['127.0.0.1:\(port)']}]
                remote_write:
                  - url: http://127.0.0.1:\(port)/api/v1/write
                    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}
                """.write(toFile: config, atomically: false, encoding: .utf8)
            let server = try ChildProcess(
                prometheus,
                [
                    "--config.file=\(config)", "--storage.tsdb.path=\(pair.directory)/tsdb",
                    "--web.listen-address=127.0.0.1:0", "--log.level=warn",
                ])
            defer { server.kill() }
            // Await the agent counting remote writes it stored (bounded: 90 s).
            let stored = try await eventually(within: .seconds(90)) {
                let metrics = try await ChildProcess.run(
                    URL(fileURLWithPath: "/usr/bin/env"), ["curl", "-sS", "http://127.0.0.1:\(port)/metrics"])
                let line = metrics.stdout.split(separator: "\n").first {
                    $0.hasPrefix("edge_agent_input_requests_total{path=\"/api/v1/write\",code=\"204\"}")
                }
                return line.flatMap { $0.split(separator: " ").last.flatMap { Int($0) } }.flatMap { $0 >= 3 ? $0 : nil }
            }
            #expect(stored != nil, "Prometheus never remote-wrote 3 requests to the agent: \(server.stderrLines.suffix(5))")
            server.kill(SIGTERM)
            _ = await server.waitForExit()
            #expect(await agent.stop() == 0)
            #expect(try await pair.drain(collector.url).status == 0)

            let rows = try CollectorUnderTest.storedReadings(
                dataDirectory: pair.collectorDirectory, device: PairFixture.device)
            let keys = Set(rows.bySequence.values.map(\.key))
            // `up` of the scrape target, with Prometheus' target labels and the external label.
            let up = try #require(keys.first { RemoteWriteSeriesKey.parse($0)?.name == "up" }, "\(keys.prefix(10))")
            let labels = Dictionary(uniqueKeysWithValues: RemoteWriteSeriesKey.parse(up)!.labels.map { ($0.name, $0.value) })
            #expect(labels["job"] == "edge" && labels["instance"] == "127.0.0.1:\(port)" && labels["site"] == "test")
            #expect(rows.bySequence.values.contains { $0.key == up && Double(bitPattern: $0.valueBits) == 1 })
            // The agent's own metrics came back under their names too.
            #expect(keys.contains { RemoteWriteSeriesKey.parse($0)?.name == "edge_agent_input_readings_total" })
        }
    }
}

/// Re-evaluates `condition` until it yields a value or `within` passes; for waiting on an external
/// program that has no event to await (Prometheus sends on its own schedule).
func eventually<T: Sendable>(within limit: Duration, _ condition: @Sendable () async throws -> T?) async throws -> T? {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if let value = try await condition() { return value }
        try await Task.sleep(for: .milliseconds(250))
    }
    return nil
}
