import EdgeAgent
import EdgeSyncTestSupport
import Foundation
import Testing

/// ENOSPC for real: a 2 MiB tmpfs in a private mount namespace (`unshare -m`), which needs root.
extension ChildProcessTests {
    @Suite struct DiskFullTests {
        static var skipReason: String? {
            if getuid() != 0 { return "not running as root" }
            if !FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") {
                return "/usr/bin/unshare is missing"
            }
            return nil
        }

        @Test func aFullDiskFailsCleanlyKeepsWhatWasDurableAndRecovers() async throws {
            if let reason = Self.skipReason {
                print("DiskFullTests skipped: \(reason)")
                return
            }
            let binary = try edgeAgentBinary()
            try await withTemporaryDirectory { directory in
                // Incompressible values: ~9 bytes a reading, so 400,000 readings cannot fit in 2 MiB.
                var random = SeededRandom(seed: 99)
                let big = (1...400_000).map {
                    "m,s=\($0 % 7) v=\(Double(bitPattern: random.next() & 0x3FEF_FFFF_FFFF_FFFF)) \($0)"
                }
                try (big.joined(separator: "\n") + "\n").write(
                    toFile: directory + "/big.lp", atomically: false, encoding: .utf8)
                try "m,s=x v=1 1\nm,s=x v=2 2\n".write(
                    toFile: directory + "/small.lp", atomically: false, encoding: .utf8)
                let mount = directory + "/mnt"
                try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
                let agent = binary.path
                let script = """
                    set -u
                    mount -t tmpfs -o size=2m tmpfs '\(mount)' || { echo "MOUNT FAILED"; exit 90; }
                    dd if=/dev/zero of='\(mount)/ballast' bs=4k count=128 2>/dev/null
                    '\(agent)' import --data-dir '\(mount)/spool' --device gw '\(directory)/big.lp' 2>'\(directory)/first.err'
                    echo "first=$?"
                    '\(agent)' status --data-dir '\(mount)/spool' --json; echo
                                    dd if=/dev/zero of='\(mount)/filler' bs=4k 2>/dev/null
                    '\(agent)' import --data-dir '\(mount)/spool' --device gw '\(directory)/small.lp' 2>&1; echo "second=$?"
                    rm -f '\(mount)'/filler '\(mount)'/ballast
                    '\(agent)' import --data-dir '\(mount)/spool' --device gw '\(directory)/small.lp' 2>&1; echo "third=$?"
                    '\(agent)' spool check --data-dir '\(mount)/spool'; echo "check=$?"
                    '\(agent)' status --data-dir '\(mount)/spool' --json; echo
                    """
                let result = try await runProcess(URL(fileURLWithPath: "/usr/bin/unshare"), ["-m", "sh", "-c", script])
                if result.stdout.contains("MOUNT FAILED") || result.status == 90 {
                    print("DiskFullTests skipped: cannot mount a tmpfs here (\(result.stderr))")
                    return
                }
                let firstError = (try? String(contentsOfFile: directory + "/first.err", encoding: .utf8)) ?? ""
                #expect(
                    result.stdout.contains("first=75"),
                    "import on a full disk must exit 75: \(result.stdout) \(firstError)"
                )
                #expect(firstError.contains("disk holding the spool is full"), "\(firstError)")
                // Parse "imported durably: lines 1-N (R readings, ...)" and compare with the spool's own count.
                let durable = try #require(
                    firstError.firstMatch(of: /imported durably: lines 1-(\d+) \((\d+) readings/).flatMap { Int($0.2) })
                #expect(durable > 0)
                let statuses = result.stdout.split(separator: "\n").filter { $0.hasPrefix("{") }
                #expect(statuses.count == 2)
                let first = try JSONSerialization.jsonObject(with: Data(statuses[0].utf8)) as? [String: Any]
                #expect(first?["queued_readings"] as? Int == durable)
                // On a disk filled to the last block a tiny write may still fit in WAL frames the failed
                // transaction left behind, or fail cleanly (75); once space returns it goes in. Space
                // returns as an operator frees it (the 512 KiB ballast): the WAL the failed import left
                // (up to the 256 KiB checkpoint step and the frames of the failed transaction) must
                // first be checkpointed into a main file that can grow, and a disk the spool itself
                // filled has no room for that.
                let secondWentIn = result.stdout.contains("second=0")
                #expect(secondWentIn || result.stdout.contains("second=75"), "\(result.stdout)")
                #expect(result.stdout.contains("third=0"), "\(result.stdout)")
                #expect(result.stdout.contains("check=0"), "\(result.stdout)")
                let last = try JSONSerialization.jsonObject(with: Data(statuses[1].utf8)) as? [String: Any]
                #expect(last?["queued_readings"] as? Int == durable + (secondWentIn ? 4 : 2))
            }
        }
    }
}
