import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import Synchronization

/// The values the soak's producers send: real sensor readings from `shared/data` in a fixed cycle.
/// The n-th reading a gateway produces carries timestamp `baseTimestamp + 1000 n + jitter(n)` (jitter
/// below 1000, so the intervals are irregular as real clocks are), so within one device a timestamp
/// names exactly one produced reading and the collector's rows can be matched one by one.
struct SoakReadingSource: Sendable {
    static let baseTimestamp: Int64 = 1_750_000_000_000_000_000
    /// Series keys as the collector stores them (line protocol key: measurement and field).
    let seriesKeys: [String]
    /// The line protocol text before the value, per series (`CGM glucose=`).
    let linePrefixes: [String]
    let seriesOfEntry: [Int32]
    let values: [Double]

    /// Up to `perDataset` readings of each real dataset, interleaved in file order.
    static func load(perDataset: Int = 100_000) throws -> SoakReadingSource {
        var keys: [String] = []
        var prefixes: [String] = []
        var seriesOfEntry: [Int32] = []
        var values: [Double] = []
        for dataset in try RealDataset.loadAll() {
            let offset = keys.count
            for name in dataset.seriesKeys {
                let field = String(name.dropFirst(dataset.name.count + 1))
                keys.append(LineProtocolSeriesKey.make(measurement: dataset.name, tags: [], field: field))
                prefixes.append("\(dataset.name) \(field.replacingOccurrences(of: " ", with: "\\ "))=")
            }
            for reading in dataset.readings.prefix(perDataset) where reading.value.isFinite {
                seriesOfEntry.append(Int32(offset + reading.series))
                values.append(reading.value)
            }
        }
        return SoakReadingSource(
            seriesKeys: keys, linePrefixes: prefixes, seriesOfEntry: seriesOfEntry, values: values)
    }

    /// The entry behind reading `index` of gateway `gateway` (gateways start at different places).
    func entry(_ index: Int, gateway: Int) -> Int { (index &+ gateway &* 7919) % values.count }

    func timestamp(_ index: Int) -> Int64 {
        Self.baseTimestamp + Int64(index) * 1000 + Int64(((UInt64(index) &* 0x9E37_79B9_7F4A_7C15) >> 33) % 1000)
    }

    /// The reading index a timestamp belongs to, or nil when no reading carries it.
    func index(of timestamp: Int64) -> Int? {
        let offset = timestamp - Self.baseTimestamp
        guard offset >= 0 else { return nil }
        let index = Int(offset / 1000)
        return self.timestamp(index) == timestamp ? index : nil
    }
}

/// How a producer hands readings to its agent.
enum SoakInputKind: String, Sendable {
    /// `POST /write?db=soak`, InfluxDB 1.x line protocol; success is 204 with no sequence numbers.
    case lineProtocol
    /// `POST /v1/readings`, JSON; success is 200 naming the sequence numbers the readings got.
    case json
}

/// One local producer of a gateway: a thread that posts readings to the agent's HTTP input at a
/// steady rate and records, per reading, whether the agent acknowledged it (2xx). A failed request
/// is never resent: its readings stay unacknowledged (they may or may not be stored, since the
/// agent may have committed them before it died), and the next request carries new readings.
final class SoakProducer: Sendable {
    struct Ledger: Sendable {
        /// Per reading index: whether a 2xx covered it.
        var acknowledged: [Bool] = []
        /// For JSON input: the sequence numbers the agent gave, per acknowledged request.
        var sequenceRuns: [(firstIndex: Int, count: Int, firstSequence: UInt64)] = []
        /// Answers by status code, or `refused`, `reset`, `timeout` for transport failures.
        var outcomes: [String: Int] = [:]
        var requests = 0
        var isStopRequested = false
        var isFinished = false

        var produced: Int { acknowledged.count }
        var acknowledgedCount: Int { acknowledged.lazy.filter { $0 }.count }
    }

    let gateway: Int
    let port: Int
    let input: SoakInputKind
    private let source: SoakReadingSource
    private let readingsPerSecond: Double
    private let maximumPerRequest: Int
    private let seed: UInt64
    private let ledger = Mutex(Ledger())

    init(
        gateway: Int, port: Int, input: SoakInputKind, source: SoakReadingSource, readingsPerSecond: Double,
        maximumPerRequest: Int, seed: UInt64
    ) {
        self.gateway = gateway
        self.port = port
        self.input = input
        self.source = source
        self.readingsPerSecond = readingsPerSecond
        self.maximumPerRequest = maximumPerRequest
        self.seed = seed
    }

    var snapshot: Ledger { ledger.withLock { $0 } }
    var nextIndex: Int { ledger.withLock { $0.acknowledged.count } }
    var isFinished: Bool { ledger.withLock { $0.isFinished } }
    var requestCount: Int { ledger.withLock { $0.requests } }
    func outcomeCount(_ key: String) -> Int { ledger.withLock { $0.outcomes[key, default: 0] } }

    func start() {
        Thread { [self] in
            produce()
            ledger.withLock { $0.isFinished = true }
        }.start()
    }

    /// Asks the thread to stop after its current request (each request is bounded by the client's
    /// 10-second socket timeout); `isFinished` says when it has.
    func requestStop() { ledger.withLock { $0.isStopRequested = true } }

    private func produce() {
        var random = SeededRandom(seed: seed)
        let client = BlockingHTTPClient(port: port, timeoutSeconds: 10)
        defer { client.close() }
        let started = ContinuousClock.now
        var sent = 0
        while !ledger.withLock({ $0.isStopRequested }) {
            let count = Int.random(in: max(1, maximumPerRequest / 10)...maximumPerRequest, using: &random)
            let first = nextIndex
            let (path, contentType, body) = request(first: first, count: count)
            var outcome: String
            var firstSequence: UInt64?
            do {
                let response = try client.post(path, body: body, headers: [("Content-Type", contentType)])
                outcome = "\(response.status)"
                if input == .json, response.status == 200,
                    let answer = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
                    let number = answer["first_sequence"] as? NSNumber
                {
                    firstSequence = number.uint64Value
                }
                if (200..<300).contains(response.status), input == .json, firstSequence == nil {
                    outcome = "\(response.status) without first_sequence"
                }
            } catch {
                let text = "\(error)"
                outcome =
                    text.contains("errno 111") ? "refused" : text.contains("errno 11") ? "timeout" : "reset/closed"
            }
            let isAcknowledged = outcome.count == 3 && outcome.hasPrefix("2")
            ledger.withLock { ledger in
                ledger.requests += 1
                ledger.outcomes[outcome, default: 0] += 1
                ledger.acknowledged.append(contentsOf: repeatElement(isAcknowledged, count: count))
                if isAcknowledged, let firstSequence {
                    ledger.sequenceRuns.append((first, count, firstSequence))
                }
            }
            sent += count
            // Keep to the rate; after a refused connection (the agent is restarting) pause briefly.
            let due = started + .seconds(Double(sent) / readingsPerSecond)
            let now = ContinuousClock.now
            if due > now { Thread.sleep(forTimeInterval: Self.seconds(due - now)) }
            if outcome == "refused" { Thread.sleep(forTimeInterval: 0.05) }
        }
    }

    private func request(first: Int, count: Int) -> (String, String, [UInt8]) {
        switch input {
        case .lineProtocol:
            var text = ""
            text.reserveCapacity(count * 40)
            for index in first..<first + count {
                let entry = source.entry(index, gateway: gateway)
                text += source.linePrefixes[Int(source.seriesOfEntry[entry])]
                text += "\(source.values[entry]) \(source.timestamp(index))\n"
            }
            return ("/write?db=soak", "text/plain; charset=utf-8", Array(text.utf8))
        case .json:
            var text = "{\"readings\":["
            text.reserveCapacity(count * 60)
            for index in first..<first + count {
                let entry = source.entry(index, gateway: gateway)
                if index > first { text += "," }
                text += "{\"series\":\(Self.jsonString(source.seriesKeys[Int(source.seriesOfEntry[entry])])),"
                text += "\"value\":\(source.values[entry]),\"timestamp\":\(source.timestamp(index))}"
            }
            text += "]}"
            return ("/v1/readings", "application/json", Array(text.utf8))
        }
    }

    private static func jsonString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
