import EdgeAgent
import EdgeSyncLogging
import EdgeSyncTestSupport
import Foundation
import HTTPCore
import Synchronization
import Testing

/// A blocking POSIX client socket for feeding the inputs.
struct ClientSocket {
    let fd: Int32

    init(_ address: HTTPServer.Address, datagram: Bool = false) throws {
        fd = socket(AF_INET, datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue), 0)
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = UInt16(address.port).bigEndian
        inet_pton(AF_INET, address.host, &target.sin_addr)
        let connected = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw ChildProcess.Failure("connect to \(address) failed: errno \(errno)") }
    }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return }
            offset += sent
        }
    }

    func close() { _ = Glibc.close(fd) }
}

/// Log lines a component wrote, for a test to read.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])

    @Sendable func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
    /// A logger whose records land here, rendered as the agent renders them.
    var logger: Logger { Logger(label: "test") { [self] in append($0.logfmt(warningName: "warn")) } }
}

/// The TCP and UDP line protocol listeners run threads of their own; these tests drive them from a
/// dedicated thread too and await the sink's events, never a timer.
@Suite(.serialized) struct SocketInputTests {
    func start(
        _ transport: LineProtocolSocketInput.Transport, sink: RecordingSink, logs: LogLines,
        precision: TimestampPrecision = .nanoseconds
    ) throws -> (LineProtocolSocketInput, HTTPServer.Address) {
        var configuration = LineProtocolSocketInput.Configuration(transport: transport, host: "127.0.0.1", port: 0)
        configuration.retryDelay = .milliseconds(5)
        configuration.precision = precision
        let input = LineProtocolSocketInput(
            configuration: configuration, sink: sink, now: { 99 }, logger: logs.logger)
        return (input, try input.start())
    }

    @Test func tcpStoresEveryGoodLineAndReportsTheBadOneByNumber() async throws {
        let sink = RecordingSink()
        let logs = LogLines()
        let (input, address) = try start(.tcp, sink: sink, logs: logs)
        let client = try ClientSocket(address)
        // A line split across writes, a bad line in the middle, no newline at the end.
        client.send("a v=1 1\na v=")
        client.send("2 2\nnot line protocol\nb,t=x v=3")
        client.close()
        await sink.wait { stored, _ in stored == 3 }
        try await onOwnThread { input.stop() }
        #expect(
            sink.readings == [
                IncomingReading(seriesKey: "a v", timestamp: 1, value: 1),
                IncomingReading(seriesKey: "a v", timestamp: 2, value: 2),
                IncomingReading(seriesKey: "b,t=x v", timestamp: 99, value: 3),
            ])
        #expect(input.counters.rejectedLines == 1)
        #expect(logs.all.contains { $0.contains("event=bad_line") && $0.contains("line 3") })
    }

    @Test func tcpHoldsTheConnectionWhileTheSpoolIsFullAndLosesNothing() async throws {
        let sink = RecordingSink(refusing: .full)
        let logs = LogLines()
        let (input, address) = try start(.tcp, sink: sink, logs: logs)
        let client = try ClientSocket(address)
        client.send((1...500).map { "m v=\($0) \($0)" }.joined(separator: "\n") + "\n")
        await sink.wait { _, refusals in refusals >= 3 }
        sink.refuse(nil)
        client.send("m v=501 501\n")
        client.close()
        await sink.wait { stored, _ in stored == 501 }
        try await onOwnThread { input.stop() }
        #expect(sink.readings.map(\.value) == (1...501).map(Double.init))
        #expect(logs.all.contains { $0.contains("event=spool_refused") })
    }

    @Test func aLineStillArrivingWhenTheAgentStopsIsNotStoredHalfWay() async throws {
        let sink = RecordingSink()
        let logs = LogLines()
        let (input, address) = try start(.tcp, sink: sink, logs: logs)
        let client = try ClientSocket(address)
        client.send("m v=1 1000\nm v=12")  // the second line is cut off mid-value
        await sink.wait { stored, _ in stored == 1 }
        try await onOwnThread { input.stop() }
        client.close()
        #expect(sink.readings == [IncomingReading(seriesKey: "m v", timestamp: 1000, value: 1)])
        #expect(logs.all.contains { $0.contains("event=partial_line_dropped") })
    }

    @Test func udpDatagramsAreStoredAndAFullSpoolDropsThemCounted() async throws {
        let sink = RecordingSink()
        let logs = LogLines()
        let (input, address) = try start(.udp, sink: sink, logs: logs)
        let client = try ClientSocket(address, datagram: true)
        client.send("u v=1 1\nu v=2 2")
        await sink.wait { stored, _ in stored == 2 }
        sink.refuse(.diskFull)
        client.send("u v=3 3")
        await sink.wait { _, refusals in refusals == 1 }
        client.close()
        try await onOwnThread { input.stop() }
        #expect(sink.readings.map(\.value) == [1, 2])
        #expect(input.counters.droppedDatagrams == 1)
    }
}

extension SocketInputTests {
    /// collectd's `write_influxdb_udp` writes millisecond timestamps: with `precision` ms they land at
    /// the right instant, not in January 1970.
    @Test(arguments: [LineProtocolSocketInput.Transport.udp, .tcp])
    func collectdMillisecondTimestampsLandAtTheRightTime(transport: LineProtocolSocketInput.Transport) async throws {
        let sink = RecordingSink()
        let (input, address) = try start(transport, sink: sink, logs: LogLines(), precision: .milliseconds)
        let client = try ClientSocket(address, datagram: transport == .udp)
        client.send(
            "load_shortterm,host=gw,type=load value=0.25 1700000000123\ncpu_value,type=cpu value=98.5 1700000000124\n")
        await sink.wait { stored, _ in stored == 2 }
        client.close()
        try await onOwnThread { input.stop() }
        #expect(sink.readings.map(\.timestamp) == [1_700_000_000_123_000_000, 1_700_000_000_124_000_000])
        #expect(sink.readings.map(\.value) == [0.25, 98.5])
    }
}

@Suite struct SimulatedSensorsTests {
    @Test func sensorsProduceRealisticDecimalsAtTheirRate() async throws {
        let sink = RecordingSink()
        let clock = ImmediateClock()
        var configuration = SimulatedSensors.Configuration(sensors: 4, rateHz: 20)
        configuration.seed = 9
        let simulator = SimulatedSensors(configuration: configuration, sink: sink, clock: clock, now: { 1_000 })
        await simulator.run(ticks: 3)
        // 20 Hz: ticks of 100 ms with two readings per sensor, 50 ms apart.
        #expect(clock.sleeps == [.milliseconds(100), .milliseconds(100), .milliseconds(100)])
        #expect(sink.appends.count == 3 && sink.readings.count == 24)
        #expect(Set(sink.readings.map(\.seriesKey)) == Set(simulator.seriesKeys))
        #expect(simulator.seriesKeys[0] == "sim,sensor=s0001 temperature")
        #expect(sink.appends[0].map(\.timestamp) == [1_000, 1_000, 1_000, 1_000, 50_001_000, 50_001_000, 50_001_000, 50_001_000])
        for reading in sink.readings {
            // Printed as an instrument would: at most three decimals, in a plausible band.
            let decimals = String(reading.value).split(separator: ".").last?.count ?? 0
            #expect(decimals <= 3, "\(reading.value)")
        }
        let temperatures = sink.readings.filter { $0.seriesKey.hasSuffix("temperature") }.map(\.value)
        #expect(temperatures.allSatisfy { (10...35).contains($0) })
        #expect(simulator.counters.readingsStored == 24 && simulator.counters.ticks == 3)
    }

    @Test func fractionalRatesAreKeptOnAverageAndImpossibleOnesRefused() async throws {
        let sink = RecordingSink()
        let simulator = SimulatedSensors(
            configuration: .init(sensors: 2, rateHz: 15), sink: sink, clock: ImmediateClock(), now: { 0 })
        await simulator.run(ticks: 4)
        // 1.5 readings per sensor per 100 ms tick: 1, 2, 1, 2.
        #expect(sink.appends.map(\.count) == [2, 4, 2, 4])
        #expect(SimulatedSensors.Configuration(sensors: 1_000_000, rateHz: 1_000_000).isFeasible == false)
        #expect(SimulatedSensors.Configuration(sensors: 1_000, rateHz: 10).isFeasible)
    }
}
