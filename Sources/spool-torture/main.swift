import EdgeAgent
import EdgeSyncCodec
import EdgeSyncCommandLine
import Foundation

/// `spool-torture` (a test-only executable, for the crash tests in `SpoolCrashTests`; not a product):
/// producers append forever and print every acknowledged range as `ack FIRST LAST RUN PRODUCER
/// COUNTER` on stdout, one write per line, so a parent that kills the process knows exactly what
/// was acknowledged.
///
/// Reading `i` of a write has timestamp `RUN << 40 | PRODUCER << 32 | COUNTER + i` and value
/// `COUNTER + i`, so every reading can be traced back to the line that acknowledged it.
enum SpoolTorture {
    static let usage =
        "usage: spool-torture --data-dir DIR --device ID --run N [--producers N] [--incompressible]"
        + " [--fsync full|normal|off] [--max-bytes N] [--when-full reject|drop-oldest]"
    static let arguments = ArgumentParser(
        options: Spool.Configuration.options + [
            .value("--run", "N", help: "run number, part of every timestamp"),
            .value("--producers", "N", help: "concurrent producers (default 4)"),
            .flag("--incompressible", help: "random values instead of the counter, to fill a capped spool fast"),
        ])

    static func run(_ arguments: ParsedArguments) async throws -> ExitCode {
        let configuration = try Spool.Configuration(arguments: arguments)
        let run =
            try arguments.value(
                "--run", as: "a number 0...255", { Int64($0).flatMap { (0...255).contains($0) ? $0 : nil } }) ?? 0
        let producers =
            try arguments.value(
                "--producers", as: "a number 1...64", { Int($0).flatMap { (1...64).contains($0) ? $0 : nil } }) ?? 4
        let isIncompressible = arguments.isSet("--incompressible")
        let spool = try await Spool.open(configuration)
        writeLine("ready\n")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    var random = SystemRandomNumberGenerator()
                    var counter: Int64 = 0
                    while true {
                        let count = Int.random(in: 1...300, using: &random)
                        let base = run << 40 | Int64(producer) << 32
                        let readings = (0..<Int64(count)).map { offset in
                            Reading(
                                series: Int(offset % 3), timestamp: base | (counter + offset),
                                value: isIncompressible
                                    ? Double(bitPattern: random.next() & 0x3FEF_FFFF_FFFF_FFFF)
                                    : Double(counter + offset))
                        }
                        let range = try await spool.append(
                            seriesKeys: ["a", "b", "c"].map { "torture,p=\(producer) \($0)" }, readings: readings)
                        writeLine("ack \(range.first) \(range.last) \(run) \(producer) \(counter)\n")
                        counter += Int64(count)
                    }
                }
            }
            try await group.waitForAll()
        }
        return .success
    }

    /// One `write(2)` per line, so lines from concurrent producers never interleave.
    static func writeLine(_ line: String) {
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count, let base = bytes.baseAddress {
                let written = write(STDOUT_FILENO, base + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }
}

let status: ExitCode
do {
    status = try await SpoolTorture.run(SpoolTorture.arguments.parse(CommandLine.arguments.dropFirst()))
} catch let error as UsageError {
    StandardError.print("spool-torture: \(error)\n\(SpoolTorture.usage)")
    status = .usage
} catch {
    StandardError.print("spool-torture: \(error)")
    status = .failure
}
exit(status.rawValue)
