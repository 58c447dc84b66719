import EdgeSyncTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The files an operator deploys (`edge/`, `cloud/`) are checked by the tools that will read them.
@Suite struct DeploymentFilesTests {
    /// The repository root, from this file's place in it.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test(arguments: [("edge/edge-agent.service", "edge-agent"), ("cloud/cloud-collector.service", "cloud-collector")])
    func systemdAcceptsTheUnit(unit: String, binary: String) async throws {
        guard let analyze = executableOnPath("systemd-analyze") else {
            print("skipped: systemd-analyze is not installed (apt-get install systemd)")
            return
        }
        try await withTemporaryDirectory { directory in
            // verify fails on an ExecStart binary that does not exist: point it at the built product.
            let text = try String(contentsOfFile: Self.root + "/" + unit, encoding: .utf8)
                .replacingOccurrences(of: "/usr/bin/\(binary)", with: try ChildProcess.productURL(binary).path)
            let name = URL(fileURLWithPath: unit).lastPathComponent
            let path = directory + "/" + name
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            // The units name their man pages, which only the packages install (edge/packaging/test-packages.sh
            // verifies the installed units with them).
            let output = try await ChildProcess.run(analyze, ["verify", "--man=no", path])
            #expect(output.status == 0, "\(output.stderr)")
            // Unknown keys and bad values are only warnings (status 0): none may mention the unit.
            let warnings = output.stderr.split(separator: "\n").filter { $0.contains(name) }
            #expect(warnings.isEmpty, "\(warnings)")
        }
    }

    @Test func nginxAcceptsTheExampleConfiguration() async throws {
        guard let (nginx, openssl) = nginxAndOpenSSL() else { return }
        try await withTemporaryDirectory { directory in
            try await makeCertificates(in: directory, openssl: openssl)
            let site = try String(contentsOfFile: Self.root + "/cloud/nginx.conf", encoding: .utf8)
                .replacingOccurrences(of: "/etc/nginx/tls/collector.pem", with: directory + "/server.pem")
                .replacingOccurrences(of: "/etc/nginx/tls/collector.key", with: directory + "/server.key")
                .replacingOccurrences(of: "/var/log/nginx/", with: directory + "/")
            try site.write(toFile: directory + "/edge-sync.conf", atomically: false, encoding: .utf8)
            // The example is a conf.d file: wrap it the way Debian's nginx.conf includes it.
            try nginxMainConfiguration(directory: directory, http: "    include \(directory)/edge-sync.conf;")
                .write(toFile: directory + "/nginx.conf", atomically: false, encoding: .utf8)
            let output = try await ChildProcess.run(
                nginx, ["-t", "-p", directory, "-c", directory + "/nginx.conf", "-e", directory + "/error.log"])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(!output.stderr.contains("[warn]"), "\(output.stderr)")
        }
    }
}
