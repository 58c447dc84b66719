import EdgeAgent
import EdgeSyncCodec
import EdgeSyncProtocol
import EdgeSyncTestSupport
import Foundation
import Testing

/// End-to-end tests of the real `edge-agent` binary: stdout, stderr and exit status.
extension ChildProcessTests {
    @Suite struct EdgeAgentCLITests {
        @Test func importThenStatusJSONShowsTheDocumentedKeys() async throws {
            let binary = try edgeAgentBinary()
            try await withTemporaryDirectory { directory in
                let input = "cpu,host=a usage=1.5,idle=3i 1000\n# comment\nmem,host=b used=7 2000\n"
                let imported = try await runProcess(
                    binary, ["import", "--data-dir", directory, "--device", "gw", "-"], input: Data(input.utf8))
                #expect(imported.status == 0, "\(imported.stderr)")
                #expect(imported.stdout.contains("lines 1-3 (3 readings, seq 1-3)"))
                #expect(imported.stderr.isEmpty, "no progress bar when stderr is not a terminal")

                let status = try await runProcess(binary, ["status", "--data-dir", directory, "--json"])
                #expect(status.status == 0)
                let object = try #require(
                    try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
                for key in [
                    "device", "stream", "next_seq", "queued_readings", "queued_bytes", "spool_file_bytes",
                    "oldest_timestamp",
                    "dropped_readings", "fsync", "quarantined_readings", "max_bytes", "when_full", "compression_ratio",
                ] {
                    #expect(object[key] != nil, "missing key \(key)")
                }
                #expect(object["device"] as? String == "gw")
                #expect((object["stream"] as? String).flatMap { UInt64($0) } != nil)
                #expect(object["next_seq"] as? Int == 4)
                #expect(object["queued_readings"] as? Int == 3)
                #expect(object["oldest_timestamp"] as? Int == 1000)
                #expect(object["fsync"] as? String == "full")

                let text = try await runProcess(binary, ["status", "--data-dir", directory])
                #expect(text.stdout.contains("Spool of device"), "\(text.stdout)")
                #expect(text.stdout.contains("3 readings waiting (queued_readings)"), "\(text.stdout)")
                #expect(text.stdout.contains("attention none"), "\(text.stdout)")
            }
        }

        @Test func aBadLineStopsTheImportAndSaysExactlyWhatWasImported() async throws {
            let binary = try edgeAgentBinary()
            try await withTemporaryDirectory { directory in
                var lines = (1...25_000).map { "m,s=a v=\($0) \($0)" }
                lines.insert("m,s=a v=oops 1", at: 23_456)
                let input = Data((lines.joined(separator: "\n") + "\n").utf8)
                let result = try await runProcess(
                    binary, ["import", "--data-dir", directory, "--device", "gw", "-"], input: input)
                #expect(result.status == 65)
                #expect(
                    result.stderr.contains(
                        "line 23457, column 9: field \"v\": expected a number, found \"oops\"; imported durably: lines 1-23456 (23456 readings, seq 1-23456); nothing from line 23457 on was imported"
                    ),
                    "\(result.stderr)")
                let spool = try await Spool.open(spoolConfiguration(directory, device: "gw"))
                let stored = try await storedReadings(spool)
                #expect(stored.count == 23_456)
                #expect(stored.map(\.value) == (1...23_456).map(Double.init))
            }
        }

        @Test(arguments: [
            (["import", "--data-dir", "/nonexistent-x", "-"], "--device: is required"),
            (["import", "--device", "d", "-"], "--data-dir: is required"),
            (
                ["import", "--data-dir", "d", "--device", "d", "--fsync", "sometimes", "-"],
                "--fsync: expected full, normal or off"
            ),
            (
                ["import", "--data-dir", "d", "--device", "d", "--max-bytes", "12", "-"],
                "--max-bytes: expected a byte count"
            ),
            (["import", "--data-dir", "d", "--device", "d", "--format", "xml", "-"], "--format: expected lp or csv"),
            (["import", "--data-dir", "d", "--device", "d", "--colour", "-"], "--colour: unknown option"),
            (["status"], "--data-dir: is required"),
            (["frobnicate"], "unknown command \"frobnicate\""),
        ])
        func badUsageExits64NamingTheFlag(arguments: [String], message: String) async throws {
            let result = try await runProcess(try edgeAgentBinary(), arguments)
            #expect(result.status == 64)
            #expect(result.stderr.contains(message), "\(result.stderr)")
        }

        @Test func statusOfAMissingSpoolFails() async throws {
            try await withTemporaryDirectory { directory in
                let result = try await runProcess(try edgeAgentBinary(), ["status", "--data-dir", directory])
                #expect(result.status == 1)
                #expect(result.stderr.contains("no spool in \(directory)"))
            }
        }

        @Test func spoolCheckReportsASoundAndADamagedFile() async throws {
            let binary = try edgeAgentBinary()
            try await withTemporaryDirectory { directory in
                let input = Data((1...5000).map { "m v=\($0).5 \($0)" }.joined(separator: "\n").utf8)
                #expect(
                    try await runProcess(
                        binary, ["import", "--data-dir", directory, "--device", "gw", "-"], input: input
                    )
                    .status
                        == 0)
                let sound = try await runProcess(binary, ["spool", "check", "--data-dir", directory])
                #expect(sound.status == 0)
                #expect(sound.stdout.contains("result: ok") && sound.stdout.contains("stored readings: 5000"))

                try checkpointAndClose(directory)
                let size = try #require(
                    try FileManager.default.attributesOfItem(atPath: Spool.databasePath(in: directory))[.size] as? Int)
                try writeGarbage(into: Spool.databasePath(in: directory), at: 4096, count: size - 4096)
                let damaged = try await runProcess(binary, ["check-spool", Spool.databasePath(in: directory)])
                #expect(damaged.status == 65)
                #expect(damaged.stdout.contains("result: DAMAGED"), "\(damaged.stdout)")
                // The agent itself moves it aside and starts afresh, loudly.
                let again = try await runProcess(
                    binary, ["import", "--data-dir", directory, "--device", "gw", "-"], input: Data("m v=1 1\n".utf8))
                #expect(again.status == 0)
                #expect(
                    again.stderr.contains("ERROR: spool file \(Spool.databasePath(in: directory)) is damaged"),
                    "\(again.stderr)")
                #expect(again.stdout.contains("seq 1-1"))
            }
        }

        @Test func csvImportUsesTheHeaderAsSeriesKeys() async throws {
            try await withTemporaryDirectory { directory in
                let file = directory + "/in.csv"
                try "time,temp,hum\n2024-01-01T00:00:00Z,20.5,40\n2024-01-01T00:01:00Z,,41\n".write(
                    toFile: file, atomically: true, encoding: .utf8)
                let result = try await runProcess(
                    try edgeAgentBinary(), ["import", "--data-dir", directory + "/spool", "--device", "gw", file])
                #expect(result.status == 0, "\(result.stderr)")
                let stored = try await storedReadings(
                    try await Spool.open(spoolConfiguration(directory + "/spool", device: "gw")))
                #expect(stored.map(\.key) == ["temp", "hum", "hum"])
                #expect(stored.map(\.value) == [20.5, 40, 41])
                #expect(stored.last?.timestamp == 1_704_067_260_000_000_000)
            }
        }

        /// The real datasets, written as line protocol, imported through the binary, read back exactly.
        @Test func realDatasetsImportWithExactCountsAndValues() async throws {
            let datasets = try RealDataset.loadAll()
            try await withTemporaryDirectory { directory in
                var expected: [(key: String, timestamp: Int64, value: Double)] = []
                var text = ""
                for dataset in datasets {
                    for reading in dataset.readings {
                        let name = dataset.seriesKeys[reading.series]
                        let field = String(name.dropFirst(dataset.name.count + 1))
                        // `value.description` is the shortest text that reads back as the same double.
                        text +=
                            "\(dataset.name) \(field.replacingOccurrences(of: " ", with: "\\ "))=\(reading.value) \(reading.timestamp)\n"
                        expected.append(
                            (
                                LineProtocolSeriesKey.make(measurement: dataset.name, tags: [], field: field),
                                reading.timestamp, reading.value
                            ))
                    }
                }
                let file = directory + "/all.lp"
                try text.write(toFile: file, atomically: false, encoding: .utf8)
                let result = try await runProcess(
                    try edgeAgentBinary(), ["import", "--data-dir", directory + "/spool", "--device", "gw", file])
                #expect(result.status == 0, "\(result.stderr)")
                #expect(result.stdout.contains("(\(expected.count) readings, seq 1-\(expected.count))"))
                let stored = try await storedReadings(
                    try await Spool.open(spoolConfiguration(directory + "/spool", device: "gw")))
                #expect(stored.count == expected.count)
                let mismatches = zip(stored, expected).filter {
                    $0.key != $1.key || $0.timestamp != $1.timestamp || $0.value.bitPattern != $1.value.bitPattern
                }
                #expect(
                    mismatches.isEmpty,
                    "\(mismatches.count) readings differ, first \(String(describing: mismatches.first))"
                )
                #expect(stored.map(\.seq) == Array(1...UInt64(expected.count)))
            }
        }

        @Test func aFullSpoolUnderRejectExits75AndSaysWhatIsDurable() async throws {
            let binary = try edgeAgentBinary()
            try await withTemporaryDirectory { directory in
                var random = SeededRandom(seed: 5)
                let lines = (1...200_000).map {
                    "m v=\(Double(bitPattern: random.next() & 0x3FEF_FFFF_FFFF_FFFF)) \($0)"
                }
                let input = Data((lines.joined(separator: "\n") + "\n").utf8)
                let result = try await runProcess(
                    binary, ["import", "--data-dir", directory, "--device", "gw", "--max-bytes", "2097152", "-"],
                    input: input)
                #expect(result.status == 75, "\(result.stderr)")
                #expect(
                    result.stderr.contains("the spool is full (cap 2097152 bytes, policy reject)"), "\(result.stderr)")
                let durable = try #require(
                    result.stderr.firstMatch(of: /imported durably: lines 1-(\d+) \((\d+) readings/).flatMap {
                        Int($0.2)
                    })
                let status = try await runProcess(binary, ["status", "--data-dir", directory, "--json"])
                let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
                #expect(object?["queued_readings"] as? Int == durable)
                #expect((object?["spool_file_bytes"] as? Int ?? .max) <= 2_097_152)
                #expect(object?["max_bytes"] as? Int == 2_097_152)
            }
        }

        @Test func anOversizedOrBinaryLineIsRefusedWithItsNumber() async throws {
            let binary = try edgeAgentBinary()
            try await withTemporaryDirectory { directory in
                let long = "m v=1 1\n" + "m,t=" + String(repeating: "x", count: 70_000) + " v=1 2\n"
                let result = try await runProcess(
                    binary, ["import", "--data-dir", directory, "--device", "gw", "-"], input: Data(long.utf8))
                #expect(result.status == 65)
                #expect(result.stderr.contains("line 2: the line is longer than 65536 bytes"), "\(result.stderr)")
                #expect(result.stderr.contains("imported durably: lines 1-1 (1 readings"), "\(result.stderr)")

                var binaryInput = Data("m v=2 3\n".utf8)
                binaryInput.append(contentsOf: [0xFF, 0xFE, 0x00, 0x20, 0x0A])
                let garbage = try await runProcess(
                    binary, ["import", "--data-dir", directory, "--device", "gw", "-"], input: binaryInput)
                #expect(garbage.status == 65)
                #expect(garbage.stderr.contains("line 2: the line is not valid UTF-8"), "\(garbage.stderr)")
            }
        }

        /// SIGINT while the import waits on an idle FIFO: it stops at a line boundary, exits 130, and the
        /// lines it reports are exactly what the spool holds.
        @Test(arguments: [SIGINT, SIGTERM])
        func aSignalStopsTheImportAtALineBoundary(_ signal: Int32) async throws {
            let binary = try edgeAgentBinary()
            try await withTemporaryDirectory { directory in
                let fifo = directory + "/input.lp"
                #expect(mkfifo(fifo, 0o600) == 0)
                let spoolDirectory = directory + "/spool"
                let (writer, message, terminationStatus) = try await onOwnThread {
                    () throws -> (Int32, String, Int32) in
                    let process = Process()
                    process.executableURL = binary
                    process.arguments = ["import", "--data-dir", spoolDirectory, "--device", "gw", fifo]
                    let stderr = Pipe.closingOnExec()
                    process.standardError = stderr
                    process.standardOutput = FileHandle.nullDevice
                    try process.run()
                    // Opening the FIFO for writing returns once the import has opened it, after it started
                    // listening for signals: the event this test waits for.
                    let writer = open(fifo, O_WRONLY | O_CLOEXEC)
                    let lines = (1...3).map { "m v=\($0) \($0)\n" }.joined()
                    _ = lines.withCString { write(writer, $0, strlen($0)) }
                    kill(process.processIdentifier, signal)
                    let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                    process.waitUntilExit()
                    close(writer)
                    return (writer, message, process.terminationStatus)
                }
                #expect(writer >= 0)
                #expect(terminationStatus == 128 + signal, "\(message)")
                #expect(message.contains("interrupted; imported durably:"), "\(message)")
                // However many of the three lines it got to, the spool holds exactly those.
                let stored = try await storedReadings(
                    try await Spool.open(spoolConfiguration(directory + "/spool", device: "gw")))
                let reported = message.firstMatch(of: /\((\d+) readings/).flatMap { Int($0.1) } ?? 0
                #expect(stored.count == reported)
                #expect(stored.map(\.value) == (0..<stored.count).map { Double($0 + 1) })
            }
        }
    }
}
