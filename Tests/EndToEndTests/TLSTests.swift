import EdgeSyncTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// TLS as deployed: Debian's nginx terminates HTTPS in front of a collector on loopback, and the
/// agent trusts the collector's certificate only through its configured CA file.
@Suite(.serialized) struct TLSTests {
    @Test func drainOverHTTPSThroughNginxTrustsOnlyTheConfiguredCA() async throws {
        guard let (nginx, openssl) = nginxAndOpenSSL() else { return }
        try await PairFixture.with { pair in
            let tls = pair.directory + "/tls"
            try FileManager.default.createDirectory(atPath: tls, withIntermediateDirectories: true)
            try await makeCertificates(in: tls, openssl: openssl)

            let collector = try await pair.startCollector()
            defer { collector.process.kill() }
            let proxy = try await NginxUnderTest.start(
                nginx, directory: pair.directory + "/nginx", upstreamPorts: [collector.port],
                tls: (certificate: tls + "/server.pem", key: tls + "/server.key"))
            defer { proxy.stop() }
            let url = "https://127.0.0.1:\(proxy.port)"

            let (text, expected) = try realDataAsLineProtocol(limit: 200_000)
            try await pair.importLineProtocol(text, name: "tls")

            // A certificate from another CA: refused before a byte of data leaves, nothing deleted.
            let refused = try await boundedDrain(pair, url, ["--ca-file", tls + "/other-ca.pem"])
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("TLS certificate is not trusted"), "\(refused.stderr)")
            #expect(refused.stderr.lowercased().contains("certificate"), "\(refused.stderr)")
            let status = try await ChildProcess.run(
                try ChildProcess.productURL("edge-agent"), ["status", "--data-dir", pair.spoolDirectory, "--json"])
            #expect(status.stdout.contains("\"queued_readings\":\(expected.count)"), "\(status.stdout)")
            #expect(
                try CollectorUnderTest.storedReadings(
                    dataDirectory: pair.collectorDirectory, device: PairFixture.device
                ).rows == 0)

            // The right CA, from the configuration file's collector.ca_file.
            let config = try pair.writeAgentConfig(
                """
                {"collector": {"ca_file": "\(tls)/ca.pem", "request_timeout_seconds": 20},
                 "upload": {"batch_readings": 5000}}
                """)
            let drain = try await boundedDrain(pair, url, ["--config", config])
            #expect(drain.status == 0, "\(drain.stderr)")
            #expect(drain.stdout.contains("drained \(expected.count) readings"), "\(drain.stdout)")
            try pair.expectExactly(expected)
            let access = (try? String(contentsOfFile: pair.directory + "/nginx/access.log", encoding: .utf8)) ?? ""
            #expect(access.contains("POST /v1/batches"), "the batches went through nginx")
        }
    }
}

/// `edge-agent drain` with a deadline: a hang fails the test instead of stalling the suite.
private func boundedDrain(_ pair: PairFixture, _ url: String, _ arguments: [String]) async throws
    -> (status: Int32, stdout: String, stderr: String)
{
    let child = try ChildProcess(
        try ChildProcess.productURL("edge-agent"),
        ["drain", "--data-dir", pair.spoolDirectory, "--collector", url] + arguments,
        environment: ["EDGE_AGENT_TOKEN": pair.token])
    let watchdog = Task {
        try await Task.sleep(for: .seconds(120))
        child.kill()
    }
    let status = await child.waitForExit()
    watchdog.cancel()
    await child.waitForOutputToClose()
    #expect(status != SIGKILL, "edge-agent drain did not finish within 120 s")
    return (status, child.stdoutText, child.stderrLines.joined(separator: "\n"))
}

/// A test CA, a server certificate it signs for 127.0.0.1 and localhost, and an unrelated CA.
func makeCertificates(in directory: String, openssl: URL) async throws {
    let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    try """
    subjectAltName = IP:127.0.0.1, DNS:localhost
    basicConstraints = CA:FALSE
    keyUsage = digitalSignature
    extendedKeyUsage = serverAuth

    """.write(toFile: directory + "/server.ext", atomically: false, encoding: .utf8)
    let steps: [[String]] = [
        ["req", "-x509"] + curve + [
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=edge-sync test CA",
        ],
        ["req", "-x509"] + curve + [
            "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "2", "-subj", "/CN=edge-sync other CA",
        ],
        ["req"] + curve + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
        [
            "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "2",
            "-days", "2", "-extfile", "server.ext", "-out", "server.pem",
        ],
    ]
    for step in steps {
        // openssl resolves the relative names against its working directory: give absolute ones.
        let absolute = step.map { argument in
            argument.hasSuffix(".key") || argument.hasSuffix(".pem") || argument.hasSuffix(".csr")
                || argument.hasSuffix(".ext") ? directory + "/" + argument : argument
        }
        let output = try await ChildProcess.run(openssl, absolute)
        guard output.status == 0 else {
            throw ChildProcess.Failure("openssl \(step.prefix(2).joined(separator: " ")) failed: \(output.stderr)")
        }
    }
}

/// Debian's nginx and openssl, or nil (with the reason printed: the test is skipped) when missing.
func nginxAndOpenSSL() -> (nginx: URL, openssl: URL)? {
    guard let nginx = executableOnPath("nginx", extraDirectories: ["/usr/sbin"]),
        let openssl = executableOnPath("openssl")
    else {
        print("skipped: nginx or openssl is not installed (apt-get install nginx openssl)")
        return nil
    }
    return (nginx, openssl)
}

/// An nginx main configuration keeping everything (pid, logs, temporary files) in `directory`, with
/// `http` as the body of the `http` block.
func nginxMainConfiguration(directory: String, http: String) -> String {
    // As root the workers would default to an account that may not exist: name one that does.
    """
    \(geteuid() == 0 ? "user nobody nogroup;" : "")
    worker_processes 1;
    pid \(directory)/nginx.pid;
    error_log \(directory)/error.log info;
    events { worker_connections 1024; }
    http {
        log_format upstreams '$remote_addr "$request" $status upstream=$upstream_addr';
        access_log \(directory)/access.log upstreams;
        client_body_temp_path \(directory)/client_body;
        proxy_temp_path \(directory)/proxy;
        fastcgi_temp_path \(directory)/fastcgi;
        uwsgi_temp_path \(directory)/uwsgi;
        scgi_temp_path \(directory)/scgi;
    \(http)
    }

    """
}

/// Debian's nginx in the foreground with everything (pid, logs, temp files) in its own folder,
/// spreading requests round-robin over `upstreamPorts`; HTTPS when `tls` is given.
struct NginxUnderTest {
    let process: ChildProcess
    let port: Int

    static func start(
        _ nginx: URL, directory: String, upstreamPorts: [Int], tls: (certificate: String, key: String)? = nil
    ) async throws -> NginxUnderTest {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port = try freeLoopbackPort()
        // A collector that is down is tried again after a second, not nginx's default 10 s.
        let servers = upstreamPorts.map { "        server 127.0.0.1:\($0) max_fails=1 fail_timeout=1s;" }
            .joined(separator: "\n")
        let listen =
            if let tls {
                """
                listen 127.0.0.1:\(port) ssl;
                        ssl_certificate \(tls.certificate);
                        ssl_certificate_key \(tls.key);
                        ssl_protocols TLSv1.2 TLSv1.3;
                """
            } else {
                "listen 127.0.0.1:\(port);"
            }
        let config = nginxMainConfiguration(
            directory: directory,
            http: """
                upstream collectors {
                \(servers)
                    keepalive 16;
                }
                server {
                    \(listen)
                    server_name localhost;
                    client_max_body_size 8m;
                    location / {
                        proxy_pass http://collectors;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_set_header Host $host;
                        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                        proxy_read_timeout 60s;
                    }
                }
                """)
        try config.write(toFile: directory + "/nginx.conf", atomically: false, encoding: .utf8)
        let process = try ChildProcess(
            nginx,
            ["-p", directory, "-c", directory + "/nginx.conf", "-e", directory + "/error.log", "-g", "daemon off;"])
        let proxy = NginxUnderTest(process: process, port: port)
        let deadline = ContinuousClock.now + .seconds(20)
        while !isListening(port: port) {
            if ContinuousClock.now > deadline {
                proxy.stop()
                let log = (try? String(contentsOfFile: directory + "/error.log", encoding: .utf8)) ?? ""
                throw ChildProcess.Failure("nginx did not start listening: \(log.suffix(1000))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return proxy
    }

    /// SIGQUIT would wait for connections; a test wants it gone: SIGTERM stops master and workers.
    func stop() {
        process.kill(SIGTERM)
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` (a loopback connect answers at
/// once, so this does not hold a thread).
func isListening(port: Int) -> Bool {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var address = loopbackAddress(port: port)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

private func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}
