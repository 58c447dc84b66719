import Foundation
import Testing

@testable import HTTPCore

/// Answers with the connection id and what it received, so client output shows reuse and bodies.
private let reporter = HTTPClosureResponder { request, context in
    let body = try await request.body.collect(upTo: 64 << 20)
    var sum: UInt32 = 0
    for byte in body { sum = sum &* 31 &+ UInt32(byte) }
    return HTTPResponse(
        text: "conn=\(context.connectionID) \(request.method) \(request.path) bytes=\(body.count) sum=\(sum)\n")
}

private func checksum(_ bytes: [UInt8]) -> UInt32 {
    var sum: UInt32 = 0
    for byte in bytes { sum = sum &* 31 &+ UInt32(byte) }
    return sum
}

/// Writes a payload to a temporary file for clients that upload from disk; removed by the caller.
private func temporaryPayload(_ bytes: [UInt8]) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("http-core-\(UUID().uuidString).bin")
    try Data(bytes).write(to: url)
    return url
}

private let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }

@Suite("Real clients against a live server")
struct RealClientTests {
    @Test(.enabled(if: Tool.exists("curl"), "curl is not installed"))
    func curlReusesTheConnection() async throws {
        try await withServer(responder: reporter) { _, address in
            let output = try await Tool.run(
                "curl", ["-sS", "--http1.1", "http://\(address)/a", "http://\(address)/b"])
            #expect(output.status == 0, "\(output.stderr)")
            let lines = output.stdout.split(separator: "\n")
            try #require(lines.count == 2, "\(output.stdout)")
            let connections = lines.map { $0.split(separator: " ")[0] }
            #expect(connections[0] == connections[1], "both requests on one connection")
            #expect(lines[0].contains("GET /a bytes=0"))
            #expect(lines[1].contains("GET /b bytes=0"))
        }
    }

    @Test(.enabled(if: Tool.exists("curl"), "curl is not installed"))
    func curlChunkedUpload() async throws {
        let file = try temporaryPayload(payload)
        defer { try? FileManager.default.removeItem(at: file) }
        try await withServer(responder: reporter) { _, address in
            let output = try await Tool.run(
                "curl",
                [
                    "-sS", "--http1.1", "-H", "Transfer-Encoding: chunked", "-H", "Expect:", "--data-binary",
                    "@\(file.path)", "http://\(address)/upload",
                ])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stdout.contains("POST /upload bytes=\(payload.count) sum=\(checksum(payload))"))
        }
    }

    @Test(.enabled(if: Tool.exists("curl"), "curl is not installed"))
    func curlExpectContinue() async throws {
        let file = try temporaryPayload(payload)
        defer { try? FileManager.default.removeItem(at: file) }
        try await withServer(responder: reporter) { _, address in
            let output = try await Tool.run(
                "curl",
                [
                    "-sS", "-v", "--http1.1", "-H", "Expect: 100-continue", "--expect100-timeout", "30",
                    "--data-binary", "@\(file.path)", "http://\(address)/expect",
                ])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stderr.contains("HTTP/1.1 100 Continue"))
            #expect(output.stdout.contains("POST /expect bytes=\(payload.count) sum=\(checksum(payload))"))
        }
    }

    @Test(.enabled(if: Tool.exists("curl"), "curl is not installed"))
    func curlReceivesAStreamedResponse() async throws {
        let streamer = HTTPClosureResponder { _, _ in
            HTTPResponse { writer in
                for row in 0..<10_000 { try await writer.write("\(row)\n") }
            }
        }
        try await withServer(responder: streamer) { _, address in
            let output = try await Tool.run("curl", ["-sS", "--http1.1", "http://\(address)/rows"])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stdout == (0..<10_000).map { "\($0)\n" }.joined())
        }
    }

    @Test(.enabled(if: Tool.exists("python3"), "python3 is not installed"))
    func pythonHTTPClient() async throws {
        try await withServer(responder: reporter) { _, address in
            let script = """
                import http.client, sys
                conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
                conn.request("GET", "/first?x=1")
                r = conn.getresponse(); print(r.status, r.read().decode().strip())
                conn.request("POST", "/second", body=b"x" * 5000, headers={"Content-Type": "application/octet-stream"})
                r = conn.getresponse(); print(r.status, r.read().decode().strip())
                conn.request("PUT", "/third", body=iter([b"abc", b"defg"]), encode_chunked=True)
                r = conn.getresponse(); print(r.status, r.read().decode().strip())
                conn.request("HEAD", "/fourth")
                r = conn.getresponse(); print(r.status, r.getheader("Content-Length"), len(r.read()))
                """
            let output = try await Tool.run("python3", ["-c", script, address.host, String(address.port)])
            #expect(output.status == 0, "\(output.stderr)")
            let lines = output.stdout.split(separator: "\n").map(String.init)
            try #require(lines.count == 4, "\(output.stdout) \(output.stderr)")
            let connection = lines[0].split(separator: " ")[1]
            #expect(lines[0].hasPrefix("200 \(connection) GET /first bytes=0"))
            #expect(lines[1].hasPrefix("200 \(connection) POST /second bytes=5000"))
            #expect(lines[2].hasPrefix("200 \(connection) PUT /third bytes=7 sum=\(checksum(Array("abcdefg".utf8)))"))
            #expect(lines[3].hasPrefix("200 "))
            #expect(lines[3].hasSuffix(" 0"), "HEAD carries no body")
        }
    }

    @Test(.enabled(if: Tool.exists("ab"), "ab (apache2-utils) is not installed"))
    func apacheBenchKeepAliveOverHTTP10() async throws {
        let small = HTTPClosureResponder { _, _ in HTTPResponse(text: "ok") }
        try await withServer(responder: small) { _, address in
            let output = try await Tool.run(
                "ab", ["-q", "-k", "-n", "2000", "-c", "8", "-s", "10", "http://\(address)/"])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stdout.contains("Complete requests:      2000"), "\(output.stdout)")
            #expect(output.stdout.contains("Failed requests:        0"), "\(output.stdout)")
            #expect(output.stdout.contains("Keep-Alive requests:    2000"), "\(output.stdout)")
        }
    }
}
