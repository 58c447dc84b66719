import EdgeSyncLogging
import EdgeSyncMetrics
import Foundation
import HTTPCore
import Synchronization

/// The inputs `edge-agent run` serves beside the uploader: the HTTP endpoints, the TCP and UDP line
/// protocol listeners and the simulator, started and stopped together.
package final class InputServices: Sendable {
    package let endpoints: InputEndpoints
    private let configuration: AgentConfiguration.Inputs
    private let sink: any ReadingSink
    private let logger: Logger
    /// Set once at the end of `init` (the responder refers back to these services), read after.
    private let server = Mutex<HTTPServer?>(nil)
    let sockets: [LineProtocolSocketInput]
    package let simulator: SimulatedSensors?
    package let mqtt: MQTTInput?

    package init(
        configuration: AgentConfiguration.Inputs, sink: any ReadingSink,
        metrics: AgentMetrics? = nil,
        logger: Logger = .discard
    ) {
        self.configuration = configuration
        self.sink = sink
        self.logger = logger
        endpoints = InputEndpoints(configuration: configuration.httpLimits, sink: sink)
        var sockets: [LineProtocolSocketInput] = []
        if let tcp = configuration.tcp {
            var socket = LineProtocolSocketInput.Configuration(transport: .tcp, host: tcp.host, port: tcp.port)
            socket.precision = configuration.tcpPrecision
            sockets.append(LineProtocolSocketInput(configuration: socket, sink: sink, logger: logger.child("tcp")))
        }
        if let udp = configuration.udp {
            var socket = LineProtocolSocketInput.Configuration(transport: .udp, host: udp.host, port: udp.port)
            socket.precision = configuration.udpPrecision
            sockets.append(LineProtocolSocketInput(configuration: socket, sink: sink, logger: logger.child("udp")))
        }
        self.sockets = sockets
        simulator = configuration.simulator.map {
            SimulatedSensors(configuration: $0, sink: sink, logger: logger.child("simulator"))
        }
        mqtt = configuration.mqtt.map { MQTTInput(configuration: $0, sink: sink, logger: logger.child("mqtt")) }
        if let http = configuration.http {
            var server = HTTPServer.Configuration(host: http.host, port: http.port)
            server.limits.maxBodyBytes = configuration.httpLimits.maximumBodyBytes
            server.maxConnections = configuration.httpMaximumConnections
            let responder = AgentHTTPResponder(
                services: self, metrics: metrics, timed: TimedResponder(endpoints, knownPaths: InputEndpoints.paths))
            self.server.withLock { $0 = HTTPServer(configuration: server, responder: responder) }
        }
    }

    package var isEmpty: Bool { server.withLock { $0 } == nil && sockets.isEmpty && simulator == nil && mqtt == nil }

    /// Binds every listener, hands what listens where (`http`, `tcp`, `udp`) to `listening`, and
    /// serves until the task is cancelled; then stops accepting, lets requests in flight finish (their
    /// writes complete or fail whole) and returns once every input has stopped.
    ///
    /// - Throws: the error of a listener that cannot bind; nothing is left listening then.
    package func run(
        listening: @Sendable ([(input: String, address: HTTPServer.Address)]) -> Void = { _ in }
    ) async throws {
        // Request buffers of a megabyte or more (a million readings, an inflated body) are mapped and
        // unmapped, never left resident in the heap after a large request (`Docs/performance.md`).
        ProcessMemory.mapAllocations(from: 1 << 20)
        let logger = self.logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            var bound: [(input: String, address: HTTPServer.Address)] = []
            if let server = server.withLock({ $0 }) {
                group.addTask {
                    do {
                        try await server.run()
                    } catch {
                        logger.error("input_failed", ["input": "http", "error": .quoted(error)])
                    }
                }
                bound.append(("http", try await server.localAddress))
            }
            for socket in sockets {
                bound.append((socket.configuration.transport.rawValue, try socket.start()))
                group.addTask { await socket.run() }
            }
            if let simulator { group.addTask { await simulator.run() } }
            // A client, not a listener: it connects (and reconnects) on its own thread.
            if let mqtt { group.addTask { await mqtt.run() } }
            listening(bound)
            try await group.waitForAll()
        }
    }
}
