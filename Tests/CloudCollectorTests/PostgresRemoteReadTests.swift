import CloudCollector
import EdgeSyncTestSupport
import HTTPCore
import PrometheusRemoteWrite
import Testing

/// Remote read answers the same on PostgreSQL as on SQLite: it asks only `ReadingQueries`. Same
/// data as `PostgresQueryTests` (several devices and streams, LIKE wildcards in keys, late
/// readings, awkward values), the endpoint called in process on both backends.
@Suite(.serialized) struct PostgresRemoteReadTests {
    static let token = "operator-token-0123456789abcdef"

    static func read(_ queries: any ReadingQueries, _ request: ReadRequest) async throws -> ReadResponse {
        var configuration = PrometheusEndpoint.Configuration()
        configuration.readingsPerFetch = 777  // pages that end mid-block
        let endpoint = PrometheusEndpoint(
            configuration: configuration, authenticator: OperatorAuthenticator(token: token), queries: queries)
        var headers = HTTPHeaders()
        headers.add("Authorization", "Bearer \(token)")
        headers.add("Content-Encoding", "snappy")
        let response = try await endpoint.read(
            HTTPRequest(
                head: HTTPRequestHead(method: "POST", target: PrometheusEndpoint.readPath, headers: headers),
                body: HTTPRequestBody(bytes: request.snappyEncoded())))
        guard case .bytes(let body) = response.body else { throw ChildProcess.Failure("a streamed answer") }
        return try ReadResponse.decode(protobuf: Snappy.decompress(body, maximumDecodedBytes: 1 << 28))
    }

    @Test func remoteReadAnswersAsOnSQLite() async throws {
        let groups = PostgresQueryTests.groups()
        try await PostgresQueryTests.withBothBackends(groups: groups, dropped: PostgresQueryTests.dropped) {
            sqlite, postgres, _ in
            let base = PostgresQueryTests.base / 1_000_000
            let selections: [[ReadRequest.LabelMatcher]] = [
                [.init("__name__", .regexMatch, ".+")],
                [.init("__name__", .equal, "big"), .init("device", .equal, "gw-a")],
                [.init("__name__", .regexMatch, "temp.*"), .init("device", .notEqual, "gw-b")],
                [.init("__name__", .equal, "temp__x")],  // "temp%_x" sanitized
                [.init("stream", .regexNoMatch, "1|2"), .init("device", .regexMatch, "gw-.")],
            ]
            var compared = 0
            for matchers in selections {
                for (from, to) in [(Int64.min, Int64.max), (base + 100, base + 5_000), (base + 3_000, base + 3_000)] {
                    let request = ReadRequest(queries: [
                        .init(startTimestamp: from, endTimestamp: to, matchers: matchers)
                    ])
                    let a = try await Self.read(sqlite, request)
                    let b = try await Self.read(postgres, request)
                    #expect(a == b, "\(matchers) [\(from), \(to)]")
                    compared += a.results.first?.reduce(0) { $0 + $1.samples.count } ?? 0
                }
            }
            #expect(compared > 10_000)
        }
    }
}
