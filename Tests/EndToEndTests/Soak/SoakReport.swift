import Foundation

/// What a soak run found, and the table it prints.
struct SoakReport: Sendable {
    struct GatewayRow: Sendable {
        var device: String
        var role: String
        var produced = 0
        var acknowledged = 0
        /// Acknowledged readings the collector holds (at least once).
        var storedAcknowledged = 0
        /// Readings whose request failed but that the agent had committed: allowed (at-least-once
        /// into the spool when the answer is lost), stored exactly once all the same.
        var storedUnacknowledged = 0
        var storedRows = 0
        var duplicates = 0
        var mismatched = 0
        var unexpected = 0
        var lost = 0
        var droppedByPolicy = 0
        /// Stored readings whose range the agent also reported dropped: a chunk dropped while its
        /// batch was in flight (documented in Docs/edge-agent.md; "received" wins at the collector).
        var storedAndDropped = 0
        var lostWithDamagedSpool = 0
        var collectorDropped = 0
        var agentDropped = 0
        var agentQuarantined = 0
        var streams = 0
        var peakRSSKiB = 0
        var producerOutcomes: [String: Int] = [:]
        var drainSummary = ""
    }

    var seconds: Int
    var seed: UInt64
    var gateways: [GatewayRow]
    var faults: [String: Int]
    var proxyRequests: Int
    var hostile: [String: [String: Int]]
    var collectorPeakRSSKiB: Int
    var notes: [String]
    var failures: [String]

    var table: String {
        var lines: [String] = []
        lines.append("Reliability soak: \(seconds) s, seed \(seed)")
        lines.append("")
        lines.append(
            "| gateway | role | produced | acknowledged | stored (acked) | stored (unacked) | duplicates | lost | dropped by policy | lost with damaged spool | streams | peak RSS |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in gateways {
            lines.append(
                "| \(row.device) | \(row.role) | \(row.produced) | \(row.acknowledged) | \(row.storedAcknowledged) | "
                    + "\(row.storedUnacknowledged) | \(row.duplicates) | \(row.lost) | \(row.droppedByPolicy) | "
                    + "\(row.lostWithDamagedSpool) | \(row.streams) | \(Self.mebibytes(row.peakRSSKiB)) |")
        }
        lines.append("")
        lines.append(
            "Collector peak RSS: \(Self.mebibytes(collectorPeakRSSKiB)) (VmHWM, highest over its incarnations)")
        lines.append("")
        lines.append(
            "| gateway | producer answers | collector dropped / agent dropped | quarantined | value mismatches | foreign rows | stored and also reported dropped (received wins) |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|")
        for row in gateways {
            let answers = row.producerOutcomes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(
                separator: ", ")
            lines.append(
                "| \(row.device) | \(answers) | \(row.collectorDropped) / \(row.agentDropped) | \(row.agentQuarantined) | "
                    + "\(row.mismatched) | \(row.unexpected) | \(row.storedAndDropped) |")
        }
        lines.append("")
        lines.append("| fault injected | count |")
        lines.append("|---|---:|")
        for (fault, count) in faults.sorted(by: { $0.key < $1.key }) { lines.append("| \(fault) | \(count) |") }
        lines.append("| requests through the proxy | \(proxyRequests) |")
        lines.append("")
        lines.append("| hostile request | answers |")
        lines.append("|---|---|")
        for (kind, outcomes) in hostile.sorted(by: { $0.key < $1.key }) {
            let text = outcomes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")
            lines.append("| \(kind) | \(text) |")
        }
        if !notes.isEmpty {
            lines.append("")
            lines += notes.map { "- \($0)" }
        }
        if !failures.isEmpty {
            lines.append("")
            lines.append("FAILURES:")
            lines += failures.map { "- \($0)" }
        }
        return lines.joined(separator: "\n")
    }

    static func mebibytes(_ kib: Int) -> String {
        String(format: "%.1f MiB", Double(kib) / 1024)
    }
}
