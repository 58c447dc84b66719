import EdgeSyncTestSupport
import Foundation
import Testing

/// `bash cloud/demo.sh` on a fresh machine (issue 17): as root with apt-get it installs the system
/// libraries it lacks and says so; otherwise it prints the exact command. Run with `--check-only`
/// and a PATH holding only fakes of `pkg-config`, `id` and `apt-get` (and `dirname`), so each
/// branch runs here without touching the machine's packages.
struct DemoSetupTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("cloud/demo.sh").path

    struct Machine {
        var isRoot: Bool
        var hasAptGet: Bool
        var installFails = false
        /// pkg-config modules present before anything is installed.
        var present: Set<String> = ["zlib", "sqlite3", "libpq"]
    }

    struct Result {
        var status: Int32
        var stderr: String
        /// What the fake apt-get was asked, one call per line.
        var aptCalls: [String]
    }

    func run(_ machine: Machine) async throws -> Result {
        try await withTemporaryDirectory(prefix: "demo-setup") { directory in
            let bin = directory + "/bin"
            let installed = directory + "/installed"
            try FileManager.default.createDirectory(atPath: installed, withIntermediateDirectories: true)
            for module in machine.present {
                _ = FileManager.default.createFile(atPath: installed + "/" + module, contents: nil)
            }
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(
                atPath: bin + "/dirname", withDestinationPath: "/usr/bin/dirname")
            func write(_ name: String, _ body: String) throws {
                try ("#!/bin/bash\n" + body).write(toFile: bin + "/" + name, atomically: true, encoding: .utf8)
                chmod(bin + "/" + name, 0o755)
            }
            // `pkg-config --exists MODULE`: present when a file of that name is in `installed`.
            try write("pkg-config", "[[ \"$1\" == --exists && -e '\(installed)/'\"$2\" ]]\n")
            try write("id", "echo \(machine.isRoot ? 0 : 1000)\n")
            if machine.hasAptGet {
                // Installing libcurl4-openssl-dev provides the libcurl module.
                try write(
                    "apt-get",
                    """
                    echo "$*" >> '\(directory)/apt.log'
                    [[ "$1" == install ]] || exit 0
                    \(machine.installFails ? "echo 'E: Unable to locate package' >&2; exit 100" : "")
                    for package in "$@"; do
                        [[ "$package" == libcurl4-openssl-dev ]] && : > '\(installed)/libcurl'
                    done
                    exit 0

                    """)
            }
            let output = try await ChildProcess.run(
                URL(fileURLWithPath: "/bin/bash"), [Self.script, "--check-only"], environment: ["PATH": bin])
            let log = (try? String(contentsOfFile: directory + "/apt.log", encoding: .utf8)) ?? ""
            return Result(
                status: output.status, stderr: output.stderr,
                aptCalls: log.split(separator: "\n").map(String.init))
        }
    }

    @Test func asRootWithAptGetItInstallsWhatIsMissingAndSaysSo() async throws {
        let result = try await run(Machine(isRoot: true, hasAptGet: true))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stderr.contains(
                "demo: installing libcurl4-openssl-dev (apt-get install -y libcurl4-openssl-dev)"), "\(result.stderr)")
        #expect(result.aptCalls == ["update -qq", "install -y -qq libcurl4-openssl-dev"])
    }

    @Test func withoutRootItPrintsTheCommandWithSudoAndInstallsNothing() async throws {
        let result = try await run(Machine(isRoot: false, hasAptGet: true))
        #expect(result.status == 1)
        #expect(result.stderr.contains("    sudo apt-get install -y libcurl4-openssl-dev"), "\(result.stderr)")
        #expect(result.aptCalls.isEmpty)
    }

    @Test func asRootWithoutAptGetItPrintsTheCommand() async throws {
        let result = try await run(Machine(isRoot: true, hasAptGet: false, present: ["zlib"]))
        #expect(result.status == 1)
        #expect(
            result.stderr.contains("    apt-get install -y libsqlite3-dev libcurl4-openssl-dev libpq-dev"),
            "\(result.stderr)")
    }

    @Test func aFailedInstallFailsAndSaysSo() async throws {
        let result = try await run(Machine(isRoot: true, hasAptGet: true, installFails: true))
        #expect(result.status == 1)
        #expect(result.stderr.contains("demo: installing libcurl4-openssl-dev failed"), "\(result.stderr)")
    }

    @Test func nothingMissingTouchesNothing() async throws {
        let result = try await run(
            Machine(isRoot: true, hasAptGet: true, present: ["zlib", "sqlite3", "libcurl", "libpq"]))
        #expect(result.status == 0)
        #expect(result.stderr.contains("demo: system packages present"))
        #expect(result.aptCalls.isEmpty)
    }
}
