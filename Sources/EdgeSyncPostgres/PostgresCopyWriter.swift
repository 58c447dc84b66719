/// How rows travel in `COPY ... FROM STDIN`.
package enum PostgresCopyFormat: String, Sendable, CaseIterable {
    /// `FORMAT binary`: fixed-size big-endian fields, no number formatting or parsing.
    case binary
    /// `FORMAT text`: tab-separated decimal text, `\N` for NULL.
    case text
}

/// Appends rows to a running COPY and sends them to the server in chunks of about 1 MiB, so a copy
/// of any size holds at most one chunk in memory. Made by `PostgresConnection.copy`.
package final class PostgresCopyWriter {
    private unowned let connection: PostgresConnection
    package let format: PostgresCopyFormat
    private var buffer: [UInt8] = []
    private var fieldsLeft = 0
    private var isFirstField = true
    private static let chunkBytes = 1 << 20

    init(connection: PostgresConnection, format: PostgresCopyFormat) {
        self.connection = connection
        self.format = format
        buffer.reserveCapacity(Self.chunkBytes + 4096)
        if format == .binary {
            // Signature, flags (no OIDs), header extension length.
            buffer.append(contentsOf: Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00])
            appendBigEndian(UInt32(0))
            appendBigEndian(UInt32(0))
        }
    }

    /// Starts a row of exactly `fields` fields; append each, in column order.
    package func startRow(fields: Int) throws(PostgresError) {
        guard fieldsLeft == 0 else { throw PostgresError("COPY row started with \(fieldsLeft) fields missing") }
        if buffer.count >= Self.chunkBytes { try flush() }
        fieldsLeft = fields
        isFirstField = true
        if format == .binary { appendBigEndian(UInt16(fields)) }
    }

    package func append(_ value: Int64) {
        switch format {
        case .binary:
            appendBigEndian(UInt32(8))
            appendBigEndian(UInt64(bitPattern: value))
        case .text:
            separate()
            appendDecimal(value)
        }
        fieldDone()
    }

    package func append(_ value: Double) {
        switch format {
        case .binary:
            appendBigEndian(UInt32(8))
            appendBigEndian(value.bitPattern)
        case .text:
            separate()
            if value.isNaN {
                buffer.append(contentsOf: "NaN".utf8)
            } else if value.isInfinite {
                buffer.append(contentsOf: (value < 0 ? "-Infinity" : "Infinity").utf8)
            } else {
                // Swift prints the shortest text that parses back to the same double.
                buffer.append(contentsOf: value.description.utf8)
            }
        }
        fieldDone()
    }

    package func appendNull() {
        switch format {
        case .binary: appendBigEndian(UInt32.max)  // length -1
        case .text:
            separate()
            buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "N")])
        }
        fieldDone()
    }

    /// Sends what is buffered (and, in binary, the trailer); the connection then ends the copy.
    func finish() throws(PostgresError) {
        guard fieldsLeft == 0 else { throw PostgresError("COPY ended inside a row (\(fieldsLeft) fields missing)") }
        if format == .binary { appendBigEndian(UInt16.max) }  // field count -1: end of data
        try flush()
    }

    private func flush() throws(PostgresError) {
        do {
            try buffer.withUnsafeBytes { bytes in try connection.sendCopyData(bytes) }
        } catch let error as PostgresError {
            throw error
        } catch {
            throw PostgresError("\(error)")
        }
        buffer.removeAll(keepingCapacity: true)
    }

    private func separate() {
        if !isFirstField { buffer.append(UInt8(ascii: "\t")) }
        isFirstField = false
    }

    private func fieldDone() {
        fieldsLeft -= 1
        if format == .text && fieldsLeft == 0 { buffer.append(UInt8(ascii: "\n")) }
    }

    @inline(__always)
    private func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { buffer.append(contentsOf: $0) }
    }

    private func appendDecimal(_ value: Int64) {
        if value == 0 {
            buffer.append(UInt8(ascii: "0"))
            return
        }
        if value < 0 { buffer.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        var count = 0
        withUnsafeMutableBytes(of: &digits) { digits in
            while magnitude > 0 {
                digits[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { buffer.append(digits[index]) }
        }
    }
}
