import Synchronization

/// What this collector refused to each device since it started: batches answered 400, 413 or 415
/// (the answers an agent quarantines on, or splits on), how many readings they held when the frame
/// got far enough to tell, and the last such answer. `/v1/devices` reports it beside completeness,
/// so a device whose data the collector refuses is told apart from one that is merely behind.
///
/// Kept in memory (a restart forgets it; the edge keeps its quarantine and says why in `status`).
/// Bounded: entries exist only for authenticated devices, and messages are cut to 300 characters.
package final class RefusalLog: Sendable {
    package struct Refusal: Sendable, Hashable, Codable {
        package var at: Int64
        package var status: Int
        package var error: String
        package var message: String
    }

    package struct Entry: Sendable, Hashable {
        package var batches: UInt64 = 0
        package var readings: UInt64 = 0
        package var last: Refusal?
    }

    private let entries = Mutex<[String: Entry]>([:])

    package init() {}

    /// Whether an answer of `status` is a refusal the edge cannot fix by retrying the same bytes.
    package static func isRefusal(_ status: Int) -> Bool { status == 400 || status == 413 || status == 415 }

    package func record(device: String, status: Int, error: String, message: String, readings: Int?, at: Int64) {
        entries.withLock { entries in
            var entry = entries[device] ?? Entry()
            entry.batches += 1
            entry.readings += UInt64(max(0, readings ?? 0))
            entry.last = Refusal(at: at, status: status, error: error, message: String(message.prefix(300)))
            entries[device] = entry
        }
    }

    package func snapshot() -> [String: Entry] { entries.withLock { $0 } }
}
