/// What an input that acknowledges its producer after the spool commit (MQTT) writes in the same
/// transaction as the readings, so that after a kill it still knows what it stored: pages of a
/// per-client table, each replaced whole.
///
/// The spool does not interpret the pages; `MQTTDeliveryLog` does. One row per (client, page)
/// keeps the table bounded by the number of pages a client can have (256 for MQTT packet
/// identifiers), whatever the traffic.
package struct DeliveryRecord: Sendable, Equatable {
    package struct Page: Sendable, Equatable {
        package var index: Int
        package var bytes: [UInt8]

        package init(index: Int, bytes: [UInt8]) {
            self.index = index
            self.bytes = bytes
        }
    }

    /// The MQTT client identifier (the broker keeps one session per identifier).
    package var client: String
    package var pages: [Page]
    /// Remove every page of `client` before writing `pages` (the broker started a new session).
    package var replacesAll: Bool

    package init(client: String, pages: [Page], replacesAll: Bool = false) {
        self.client = client
        self.pages = pages
        self.replacesAll = replacesAll
    }
}
