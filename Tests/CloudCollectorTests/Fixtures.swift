import CZlib
import CloudCollector
import EdgeSyncCodec
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

/// One stored reading as the view shows it, with the exact value bits.
struct StoredReading: Hashable, CustomStringConvertible {
    var device: String
    var stream: UInt64
    var seq: UInt64
    var seriesKey: String
    var timestamp: Int64
    var valueBits: UInt64

    var description: String { "\(device)/\(stream)#\(seq) \(seriesKey)@\(timestamp)=\(Double(bitPattern: valueBits))" }
}

enum Fixtures {
    /// A batch of `count` readings over three series with values that include awkward doubles.
    static func batch(
        device: String = "gateway-1", stream: UInt64 = 0xFEED_0000_0000_0001, first: UInt64, count: Int
    ) -> Batch {
        let keys = ["temperature,site=a", "humidity,site=a", "pressure,site=b"]
        let readings = (0..<count).map { index -> Reading in
            let seq = Int(first) + index
            return Reading(
                series: seq % keys.count, timestamp: 1_700_000_000_000_000_000 + Int64(seq) * 1_000_000_000,
                value: Double(seq % 1000) / 10)
        }
        return Batch(device: device, stream: stream, firstSequence: first, seriesKeys: keys, readings: readings)
    }

    /// What `batches` should leave in storage: every (device, stream, seq) once.
    static func expected(_ batches: [Batch]) -> [StoredReading] {
        var byKey: [String: StoredReading] = [:]
        for batch in batches {
            for (index, reading) in batch.readings.enumerated() {
                let stored = StoredReading(
                    device: batch.device, stream: batch.stream, seq: batch.firstSequence + UInt64(index),
                    seriesKey: batch.seriesKeys[reading.series], timestamp: reading.timestamp,
                    valueBits: reading.value.bitPattern)
                byKey["\(stored.device)/\(stored.stream)/\(stored.seq)"] = stored
            }
        }
        return byKey.values.sorted { ($0.device, $0.stream, $0.seq) < ($1.device, $1.stream, $1.seq) }
    }

    /// Everything in `readings_view`, the documented way to read central data.
    static func storedReadings(databasePath: String) throws -> [StoredReading] {
        var configuration = SQLiteDatabase.Configuration()
        configuration.isReadOnly = true
        let database = try SQLiteDatabase(path: databasePath, configuration: configuration)
        let select = try database.prepare(
            "SELECT device, stream, seq, series_key, timestamp, value, value_bits FROM readings_view")
        var rows: [StoredReading] = []
        while try select.step() {
            let bits: UInt64 =
                select.isNull(at: 6)
                ? select.double(at: 5).bitPattern : UInt64(bitPattern: select.int64(at: 6))
            rows.append(
                StoredReading(
                    device: select.text(at: 0) ?? "", stream: UInt64(select.text(at: 1) ?? "") ?? 0,
                    seq: UInt64(select.int64(at: 2)), seriesKey: select.text(at: 3) ?? "",
                    timestamp: select.int64(at: 4), valueBits: bits))
        }
        return rows.sorted { ($0.device, $0.stream, $0.seq) < ($1.device, $1.stream, $1.seq) }
    }

    static func readingCount(databasePath: String) throws -> Int {
        var configuration = SQLiteDatabase.Configuration()
        configuration.isReadOnly = true
        let database = try SQLiteDatabase(path: databasePath, configuration: configuration)
        return Int(try count(database, "readings"))
    }

    static func count(_ database: SQLiteDatabase, _ table: String) throws -> Int64 {
        let statement = try database.prepare("SELECT count(*) FROM \(table)")
        _ = try statement.step()
        return statement.int64(at: 0)
    }

    /// A frame with a valid header and checksum around an arbitrary payload.
    static func frame(
        payload: [UInt8], storedPayload: [UInt8]? = nil, version: UInt8 = FrameHeader.currentVersion,
        deflated: Bool = false
    )
        -> [UInt8]
    {
        let stored = storedPayload ?? payload
        var frame = Array("ESYB".utf8) + [version, deflated ? 1 : 0]
        frame += littleEndian(UInt32(stored.count))
        frame += littleEndian(UInt32(payload.count))
        frame += stored
        let crc = frame.withUnsafeBytes { raw in
            UInt32(crc32(0, raw.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(raw.count)))
        }
        return frame + littleEndian(crc)
    }

    /// Recomputes the trailing CRC-32 after a test edited a frame.
    static func resealed(_ frame: [UInt8]) -> [UInt8] {
        let body = Array(frame.dropLast(4))
        let crc = body.withUnsafeBytes { raw in
            UInt32(crc32(0, raw.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(raw.count)))
        }
        return body + littleEndian(crc)
    }

    static func littleEndian(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var bytes: [UInt8] = []
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
        return bytes
    }

    /// zlib data that inflates to `count` zero bytes, made in 1 MiB steps without holding them.
    static func deflatedZeros(count: Int) -> [UInt8] {
        var stream = z_stream()
        let status = deflateInit2_(
            &stream, 9, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "deflateInit failed")
        defer { deflateEnd(&stream) }
        let chunk = [UInt8](repeating: 0, count: 1 << 20)
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var remaining = count
        while true {
            let take = min(remaining, chunk.count)
            remaining -= take
            let flush = remaining == 0 ? Z_FINISH : Z_NO_FLUSH
            var result = Z_OK
            chunk.withUnsafeBufferPointer { input in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = uInt(take)
                repeat {
                    buffer.withUnsafeMutableBufferPointer { out in
                        stream.next_out = out.baseAddress
                        stream.avail_out = uInt(out.count)
                        result = CZlib.deflate(&stream, flush)
                        output += out[0..<(out.count - Int(stream.avail_out))]
                    }
                } while stream.avail_out == 0
            }
            if flush == Z_FINISH {
                precondition(result == Z_STREAM_END, "deflate did not finish")
                return output
            }
        }
    }

    static func deflate(_ input: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(compressBound(uLong(input.count))))
        var length = uLongf(output.count)
        let rc = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { inp in
                compress2(out.baseAddress, &length, inp.baseAddress, uLong(inp.count), 9)
            }
        }
        precondition(rc == Z_OK, "compress2 failed")
        return Array(output.prefix(Int(length)))
    }
}

/// An in-process collector on a loopback port with a fresh data directory and one device token.
struct RunningCollector: Sendable {
    let service: CollectorService
    let port: Int
    let dataDirectory: String
    var databasePath: String { service.configuration.databasePath }

    static func with<T>(
        devices: [String] = ["gateway-1", "gateway-2"],
        configure: (inout CollectorService.Configuration) -> Void = { _ in },
        now: (@Sendable () -> Int64)? = nil,
        _ body: (RunningCollector, [String: String]) async throws -> T
    ) async throws -> T {
        try await withTemporaryDirectory(prefix: "collector-test") { directory in
            var configuration = CollectorService.Configuration(dataDirectory: directory)
            configuration.port = 0
            configure(&configuration)
            let service =
                if let now {
                    try CollectorService(configuration: configuration, now: now)
                } else {
                    try CollectorService(configuration: configuration)
                }
            var tokens: [String: String] = [:]
            let database = try SQLiteDatabase(path: configuration.databasePath)
            for device in devices {
                tokens[device] = try TokenStore.add(device: device, in: database, now: 0).text
            }
            let serving = Task { try await service.run() }
            let port = try await service.localAddress.port
            let collector = RunningCollector(service: service, port: port, dataDirectory: directory)
            do {
                let result = try await body(collector, tokens)
                service.shutdown()
                try await serving.value
                return result
            } catch {
                service.shutdown()
                _ = try? await serving.value
                throw error
            }
        }
    }

    /// Posts on a fresh connection from a dedicated thread.
    func post(
        _ path: String, body: [UInt8], token: String?, contentType: String? = FrameHeader.mediaType,
        headers extra: [(String, String)] = []
    ) async throws -> BlockingHTTPClient.Response {
        let port = self.port
        return try await onDedicatedThread {
            let client = BlockingHTTPClient(port: port)
            var headers: [(String, String)] = []
            if let token { headers.append(("Authorization", "Bearer \(token)")) }
            if let contentType { headers.append(("Content-Type", contentType)) }
            headers += extra
            return try client.post(path, body: body, headers: headers)
        }
    }

    /// Sends a GET on a fresh connection from a dedicated thread.
    func get(_ target: String, token: String?) async throws -> BlockingHTTPClient.Response {
        let port = self.port
        return try await onDedicatedThread {
            let client = BlockingHTTPClient(port: port)
            defer { client.close() }
            var headers: [(String, String)] = []
            if let token { headers.append(("Authorization", "Bearer \(token)")) }
            return try client.send(method: "GET", path: target, headers: headers)
        }
    }
}
