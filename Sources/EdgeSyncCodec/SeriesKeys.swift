/// Front- and back-coded series keys (format version 3).
///
/// Keys of one gateway differ in a few bytes in the middle (`plaid,appliance=type0,load=p0001
/// current`, `…p0002 current`): each key is stored as how many leading and trailing bytes it shares
/// with the key before it, plus the bytes in between. The three lengths go in integer columns, so a
/// regular key list costs about a byte and a half a key instead of its full length.
/// See `Docs/wire-format.md`, "Series keys (version 3)".
enum SeriesKeys {
    static func encode(_ keys: [String], into writer: inout ByteWriter) {
        guard !keys.isEmpty else { return }
        let count = keys.count
        var shared = [Int64](repeating: 0, count: count)
        var trailing = [Int64](repeating: 0, count: count)
        var middles = [Int64](repeating: 0, count: count)
        var bytes: [UInt8] = []
        var previous: [UInt8] = []
        for (index, key) in keys.enumerated() {
            let current = Array(key.utf8)
            // At least one byte of every key is its own, so that the keys bound their count.
            let limit = current.count - 1
            var prefix = 0
            while prefix < limit, prefix < previous.count, previous[prefix] == current[prefix] { prefix += 1 }
            var suffix = 0
            while prefix + suffix < limit, prefix + suffix < previous.count,
                previous[previous.count - 1 - suffix] == current[current.count - 1 - suffix]
            {
                suffix += 1
            }
            shared[index] = Int64(prefix)
            trailing[index] = Int64(suffix)
            middles[index] = Int64(current.count - prefix - suffix)
            bytes.append(contentsOf: current[prefix..<current.count - suffix])
            previous = current
        }
        shared.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }
        trailing.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }
        middles.withUnsafeBufferPointer { IntegerColumn.encode($0, into: &writer) }
        writer.append(contentsOf: bytes)
    }

    /// Reads `count` keys, checking each length against the previous key and `limits` before
    /// building anything, and that keys are valid UTF-8, non-empty and distinct byte for byte.
    static func decode(from reader: inout ByteReader, count: Int, limits: DecodingLimits) throws(CodecError) -> [String] {
        guard count > 0 else { return [] }
        // Every key has at least one byte of its own.
        guard count <= reader.remaining else {
            throw reader.error(.truncated, "\(count) series keys cannot fit in the \(reader.remaining) bytes left")
        }
        let columns = UnsafeMutableBufferPointer<Int64>.allocate(capacity: 3 * count)
        defer { columns.deallocate() }
        let shared = UnsafeMutableBufferPointer(rebasing: columns[0..<count])
        let trailing = UnsafeMutableBufferPointer(rebasing: columns[count..<2 * count])
        let middles = UnsafeMutableBufferPointer(rebasing: columns[2 * count..<3 * count])
        try IntegerColumn.decode(from: &reader, into: shared, what: "series key shared prefix lengths")
        try IntegerColumn.decode(from: &reader, into: trailing, what: "series key shared suffix lengths")
        try IntegerColumn.decode(from: &reader, into: middles, what: "series key own lengths")
        let bytesOffset = reader.position
        var ownBytes = 0
        var totalBytes = 0
        var previousLength = 0
        for index in 0..<count {
            let prefix = shared[index]
            let suffix = trailing[index]
            let own = middles[index]
            guard prefix >= 0, suffix >= 0, own >= 1, prefix <= Int64(previousLength) - suffix else {
                throw reader.error(
                    .malformed,
                    "series key \(index) shares \(prefix) leading and \(suffix) trailing bytes with a key of \(previousLength) and has \(own) of its own",
                    at: bytesOffset)
            }
            guard own <= Int64(limits.maximumSeriesKeyBytes) - prefix - suffix else {
                throw reader.error(
                    .limitExceeded, "series key \(index) is longer than the limit of \(limits.maximumSeriesKeyBytes) bytes", at: bytesOffset)
            }
            let length = Int(prefix + suffix + own)
            ownBytes += Int(own)
            totalBytes += length
            guard ownBytes <= reader.remaining else {
                throw reader.error(.truncated, "series keys need \(ownBytes) bytes, \(reader.remaining) left", at: bytesOffset)
            }
            guard totalBytes <= limits.maximumTotalSeriesKeyBytes else {
                throw reader.error(
                    .limitExceeded, "series keys add up to more than the limit of \(limits.maximumTotalSeriesKeyBytes) bytes", at: bytesOffset)
            }
            previousLength = length
        }
        let raw = try reader.readBytes(ownBytes, "series key bytes")
        var keys: [String] = []
        keys.reserveCapacity(count)
        var seen = Set<ExactString>(minimumCapacity: count)
        var previous: [UInt8] = []
        var current: [UInt8] = []
        var position = 0
        for index in 0..<count {
            let prefix = Int(shared[index])
            let suffix = Int(trailing[index])
            let own = Int(middles[index])
            current.removeAll(keepingCapacity: true)
            current.append(contentsOf: previous[0..<prefix])
            current.append(contentsOf: raw[position..<position + own])
            current.append(contentsOf: previous[previous.count - suffix..<previous.count])
            position += own
            guard let key = String(validating: current, as: UTF8.self) else {
                throw reader.error(.malformed, "series key \(index) is not valid UTF-8", at: bytesOffset)
            }
            guard seen.insert(ExactString(key)).inserted else {
                throw reader.error(.malformed, "series key \(index) \"\(key)\" repeats an earlier key", at: bytesOffset)
            }
            keys.append(key)
            swap(&previous, &current)
        }
        return keys
    }
}
