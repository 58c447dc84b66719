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
    private let log: @Sendable (String) -> Void
    private let server = Mutex<HTTPServer?>(nil)
    let sockets: [LineProtocolSocketInput]
    package let simulator: SimulatedSensors?
    package let mqtt: MQTTInput?
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let simulatorTask = Mutex<Task<Void, Never>?>(nil)

    package init(
        configuration: AgentConfiguration.Inputs, sink: any ReadingSink,
        metrics: AgentMetrics? = nil,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.configuration = configuration
        self.sink = sink
        self.log = log
        endpoints = InputEndpoints(configuration: configuration.httpLimits, sink: sink)
        var sockets: [LineProtocolSocketInput] = []
        if let tcp = configuration.tcp {
            var socket = LineProtocolSocketInput.Configuration(transport: .tcp, host: tcp.host, port: tcp.port)
            socket.precision = configuration.tcpPrecision
            sockets.append(LineProtocolSocketInput(configuration: socket, sink: sink, log: log))
        }
        if let udp = configuration.udp {
            var socket = LineProtocolSocketInput.Configuration(transport: .udp, host: udp.host, port: udp.port)
            socket.precision = configuration.udpPrecision
            sockets.append(LineProtocolSocketInput(configuration: socket, sink: sink, log: log))
        }
        self.sockets = sockets
        simulator = configuration.simulator.map { SimulatedSensors(configuration: $0, sink: sink, log: log) }
        mqtt = configuration.mqtt.map { MQTTInput(configuration: $0, sink: sink, log: log) }
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

    /// Binds every listener and starts the simulator; returns what listens where (`http`, `tcp`, `udp`).
    package func start() async throws -> [(input: String, address: HTTPServer.Address)] {
        // Request buffers of a megabyte or more (a million readings, an inflated body) are mapped and
        // unmapped, never left resident in the heap after a large request (`Docs/performance.md`).
        ProcessMemory.mapAllocations(from: 1 << 20)
        var bound: [(input: String, address: HTTPServer.Address)] = []
        if let server = server.withLock({ $0 }) {
            let log = self.log
            let task = Task {
                do {
                    try await server.run()
                } catch {
                    log("level=error event=input_failed input=http error=\"\(error)\"")
                }
            }
            tasks.withLock { $0.append(task) }
            bound.append(("http", try await server.localAddress))
        }
        for socket in sockets {
            bound.append((socket.configuration.transport.rawValue, try socket.start()))
        }
        if let simulator {
            simulatorTask.withLock { $0 = Task { await simulator.run() } }
        }
        // A client, not a listener: it connects (and reconnects) on its own thread.
        mqtt?.start()
        return bound
    }

    /// Stops accepting, lets requests in flight finish (their writes complete or fail whole), and waits.
    package func stop() async {
        server.withLock { $0 }?.shutdown()
        if let simulator = simulatorTask.withLock({ $0 }) {
            simulator.cancel()
            await simulator.value
        }
        for socket in sockets {
            // stop() joins the socket threads, which may be waiting on the spool: keep it off the pool.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                Thread {
                    socket.stop()
                    done.resume()
                }.start()
            }
        }
        if let mqtt {
            // Joins the MQTT thread, which may be waiting on the spool: off the pool too.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                Thread {
                    mqtt.stop()
                    done.resume()
                }.start()
            }
        }
        for task in tasks.withLock({ $0 }) { await task.value }
    }
}
