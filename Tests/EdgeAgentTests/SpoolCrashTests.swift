import EdgeAgent
import EdgeSyncProtocol
import EdgeSyncSQLite
import EdgeSyncTestSupport
import Foundation
import Testing

/// Crash safety: `spool-torture` (a test-only executable) is SIGKILLed at random moments while four producers
/// append; whatever it reported as acknowledged must be there after every restart.
extension ChildProcessTests {
    @Suite(.serialized) struct SpoolCrashTests {
        struct Acknowledgement: Hashable {
            var range: SequenceRange
            var run: Int64
            var producer: Int64
            var counter: Int64
        }

        static let kills = 50

        @Test func acknowledgedReadingsSurviveSIGKILL() async throws {
            let binary = try ChildProcess.productURL("spool-torture")
            try await withTemporaryDirectory { directory in
                var random = SeededRandom(seed: 20_261_124)
                var acknowledged: [Acknowledgement] = []
                var stream: UInt64?
                for run in 0..<Self.kills {
                    // Kill after a random number of acknowledgements: a moment somewhere in the commit cycle.
                    let killAfter = Int.random(in: 1...150, using: &random)
                    acknowledged += try await runAndKill(binary, directory: directory, run: run, after: killAfter)
                    let status = try Spool.inspect(dataDirectory: directory)
                    if stream == nil { stream = status.stream }
                    #expect(status.stream == stream, "run \(run): the spool was replaced, so it was damaged")
                }
                #expect(acknowledged.count >= Self.kills)

                let database = try SQLiteDatabase(path: Spool.databasePath(in: directory))
                #expect(try database.integrityProblems().isEmpty)

                let spool = try await Spool.open(spoolConfiguration(directory, device: "torture"))
                #expect(spool.movedAsideFile == nil)
                let stored = try await storedReadings(spool)
                // Contiguous from 1, nothing missing, nothing twice.
                #expect(stored.map(\.seq) == Array(1...UInt64(stored.count)))
                #expect(Set(stored.map(\.timestamp)).count == stored.count, "a reading was stored twice")
                #expect(try await spool.status().nextSequence == UInt64(stored.count) + 1)
                // Every acknowledged reading is there, at the sequence number it was acknowledged with.
                var missing = 0
                for ack in acknowledged {
                    for offset in 0..<Int64(ack.range.count) {
                        let index = Int(ack.range.first) - 1 + Int(offset)
                        let id = ack.run << 40 | ack.producer << 32 | (ack.counter + offset)
                        if index >= stored.count || stored[index].timestamp != id
                            || stored[index].value != Double(ack.counter + offset)
                        {
                            missing += 1
                        }
                    }
                }
                #expect(missing == 0, "\(missing) acknowledged readings are missing or wrong")
                print(
                    "spool crash test: \(Self.kills) kills, \(acknowledged.count) acknowledged writes, \(stored.count) readings stored"
                )
            }
        }

        /// Starts the torture child, reads `after` acknowledgement lines, SIGKILLs it, then collects every
        /// line it managed to write (those were acknowledged too).
        func runAndKill(_ binary: URL, directory: String, run: Int, after: Int, extraArguments: [String] = [])
            async throws -> [Acknowledgement]
        {
            let (acknowledgements, killed, status) = try await onOwnThread {
                try Self.runAndKillBlocking(
                    binary, directory: directory, run: run, after: after, extraArguments: extraArguments)
            }
            #expect(killed, "the torture child exited by itself (status \(status))")
            return acknowledgements
        }

        /// The blocking part of `runAndKill`, on a thread of its own.
        static func runAndKillBlocking(
            _ binary: URL, directory: String, run: Int, after: Int, extraArguments: [String]
        ) throws -> ([Acknowledgement], Bool, Int32) {
            let process = Process()
            process.executableURL = binary
            process.arguments =
                ["--data-dir", directory, "--device", "torture", "--run", String(run)] + extraArguments
            let stdout = Pipe.closingOnExec()
            process.standardOutput = stdout
            process.standardError = FileHandle.nullDevice
            try process.run()
            let reader = stdout.fileHandleForReading
            var buffer = Data()
            var acknowledgements: [Acknowledgement] = []
            var killed = false
            func takeLines() {
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    let fields = line.split(separator: " ")
                    guard fields.count == 6, fields[0] == "ack", let first = UInt64(fields[1]),
                        let last = UInt64(fields[2]),
                        let run = Int64(fields[3]), let producer = Int64(fields[4]), let counter = Int64(fields[5])
                    else { continue }
                    acknowledgements.append(
                        Acknowledgement(
                            range: SequenceRange(first, last), run: run, producer: producer, counter: counter))
                }
            }
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                takeLines()
                if !killed && acknowledgements.count >= after {
                    kill(process.processIdentifier, SIGKILL)
                    killed = true
                }
            }
            process.waitUntilExit()
            return (acknowledgements, killed, process.terminationStatus)
        }

        /// The same under a 1 MiB cap with drop-oldest: after every kill, what is stored and what was
        /// recorded as dropped together cover every sequence number exactly once, and every acknowledged
        /// reading is either stored unchanged or inside a dropped range.
        @Test func dropOldestStaysConsistentAcrossSIGKILL() async throws {
            let binary = try ChildProcess.productURL("spool-torture")
            try await withTemporaryDirectory { directory in
                var random = SeededRandom(seed: 77)
                var acknowledged: [Acknowledgement] = []
                let cap = [
                    "--max-bytes", "1048576", "--when-full", "drop-oldest", "--producers", "2", "--incompressible",
                ]
                for run in 0..<15 {
                    acknowledged += try await runAndKill(
                        binary, directory: directory, run: run, after: Int.random(in: 50...400, using: &random),
                        extraArguments: cap)
                    #expect(fileBytes(directory) <= 1 << 20)
                }
                let spool = try await Spool.open(spoolConfiguration(directory, device: "torture"))
                #expect(spool.movedAsideFile == nil)
                let dropped = SequenceRangeSet(try await spool.unreportedDroppedRanges())
                #expect(dropped.count > 0, "the cap was never reached; the test did not test dropping")
                let stored = try await storedReadings(spool)
                let next = try await spool.status().nextSequence
                #expect(stored.allSatisfy { !dropped.contains($0.seq) })
                #expect(UInt64(stored.count) + dropped.count == next - 1)
                var bySequence: [UInt64: (timestamp: Int64, value: Double)] = [:]
                for reading in stored { bySequence[reading.seq] = (reading.timestamp, reading.value) }
                var wrong = 0
                for ack in acknowledged {
                    for offset in 0..<UInt64(ack.range.count) {
                        let seq = ack.range.first + offset
                        if dropped.contains(seq) { continue }
                        let id = ack.run << 40 | ack.producer << 32 | (ack.counter + Int64(offset))
                        if bySequence[seq]?.timestamp != id { wrong += 1 }
                    }
                }
                #expect(wrong == 0, "\(wrong) acknowledged readings are neither stored nor recorded as dropped")
                let database = try SQLiteDatabase(path: Spool.databasePath(in: directory))
                #expect(try database.integrityProblems().isEmpty)
            }
        }
    }
}
