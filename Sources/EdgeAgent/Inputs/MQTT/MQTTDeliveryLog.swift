/// The byte layout of the MQTT input's durable redelivery memory (`DeliveryRecord` pages in the
/// spool): the 65,536 packet identifiers in 256 pages of 256, each identifier a 32-bit big-endian
/// fingerprint of the message last stored under it (0: none). A page is 1 KiB and is replaced
/// whole, so the table holds at most 256 KiB per client however many messages pass.
package enum MQTTDeliveryLog {
    package static let identifiersPerPage = 256
    package static let pageCount = 65536 / identifiersPerPage
    package static let pageBytes = identifiersPerPage * 4

    static func page(_ index: Int, _ fingerprints: [UInt32]) -> DeliveryRecord.Page {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(pageBytes)
        for fingerprint in fingerprints {
            bytes.append(UInt8(truncatingIfNeeded: fingerprint >> 24))
            bytes.append(UInt8(truncatingIfNeeded: fingerprint >> 16))
            bytes.append(UInt8(truncatingIfNeeded: fingerprint >> 8))
            bytes.append(UInt8(truncatingIfNeeded: fingerprint))
        }
        return DeliveryRecord.Page(index: index, bytes: bytes)
    }

    /// The fingerprints of all 65,536 identifiers from stored pages, and the pages that were not
    /// valid (wrong index or size) and were left out: their identifiers are then unknown, which
    /// costs at most a stored-again redelivery, never a lost message.
    package static func fingerprints(from pages: [DeliveryRecord.Page]) -> (fingerprints: [UInt32], invalidPages: Int) {
        var fingerprints = [UInt32](repeating: 0, count: 65536)
        var invalid = 0
        for page in pages {
            guard (0..<pageCount).contains(page.index), page.bytes.count == pageBytes else {
                invalid += 1
                continue
            }
            let start = page.index * identifiersPerPage
            for slot in 0..<identifiersPerPage {
                let offset = slot * 4
                fingerprints[start + slot] =
                    UInt32(page.bytes[offset]) << 24 | UInt32(page.bytes[offset + 1]) << 16
                    | UInt32(page.bytes[offset + 2]) << 8 | UInt32(page.bytes[offset + 3])
            }
        }
        return (fingerprints, invalid)
    }
}
