import EdgeSyncPostgres
import EdgeSyncTestSupport
import Foundation
import Testing

/// The libpq layer on its own: errors carry what callers decide on, COPY is all or nothing, a
/// session comes back after its connection breaks, and URLs never leak passwords.
@Suite(.serialized) struct PostgresConnectionTests {
    @Test func aRefusedConnectionIsAnUnavailableErrorWithoutThePassword() throws {
        let port = try freeLoopbackPort()  // nothing listens there
        #expect {
            _ = try PostgresConnection(url: "postgres://edge:hunter2-secret@127.0.0.1:\(port)/nowhere", connectTimeoutSeconds: 2)
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.isConnectionFailure && error.isUnavailable && !error.description.contains("hunter2")
        }
    }

    @Test func malformedURLsAreRefusedClearly() throws {
        for url in ["postgres://[::1", "postgres://host:notaport/db", "not a url at all = = ="] {
            #expect(throws: PostgresError.self, "\(url)") { _ = try PostgresConnection(url: url, connectTimeoutSeconds: 1) }
        }
    }

    /// Review: libpq's own URI-parse errors quote the offending token or the whole URI, so a
    /// malformed URL (a literal `%` in the password, a missing `]`) puts the password into the
    /// "cannot connect" error that `serve` logs, although `postgresRedactedURL` hid it.
    @Test func malformedURLErrorsDoNotLeakThePassword() throws {
        for url in ["postgres://edge:hunter2%zz@127.0.0.1/db", "postgres://edge:hunter2@[::1/db"] {
            #expect {
                _ = try PostgresConnection(url: url, connectTimeoutSeconds: 1)
            } throws: { error in
                !"\(error)".contains("hunter2")
            }
        }
    }

    @Test func redactedURLsHideThePasswordAndQuery() {
        #expect(postgresRedactedURL("postgres://u:pw@h:5432/db?sslmode=require&password=x") == "postgres://u:***@h:5432/db")
        #expect(postgresRedactedURL("postgresql://h/db") == "postgresql://h/db")
        #expect(postgresRedactedURL("host=h password=x") == "postgres://…")
    }

    @Test func serverErrorsCarryTheirSQLStateAndLeaveTheConnectionUsable() async throws {
        try await withPostgresDatabase { url in
            let connection = try PostgresConnection(url: url)
            try connection.execute("CREATE TABLE t (k int PRIMARY KEY)")
            try connection.query("INSERT INTO t VALUES ($1)", ["1"])
            #expect {
                try connection.query("INSERT INTO t VALUES ($1)", ["1"])
            } throws: { error in
                (error as? PostgresError)?.sqlState == "23505" && (error as? PostgresError)?.isUnavailable == false
            }
            #expect(throws: PostgresError.self) { try connection.query("SELECT * FROM missing_table") }
            #expect(throws: PostgresError.self) { try connection.query("SELECT $1::int", ["not a number"]) }
            #expect {
                try connection.query("SELECT $1::text", ["a\u{0}b"])
            } throws: { error in
                "\(error)".contains("NUL")
            }
            #expect(!connection.isBroken)
            #expect(try connection.query("SELECT count(*) FROM t").int64(0, 0) == 1)
        }
    }

    /// A COPY whose producer fails stores nothing; a completed one reports its row count, in both
    /// formats, with values (awkward doubles, NULLs, extreme integers) arriving exactly.
    @Test func copyIsAllOrNothingAndExactInBothFormats() async throws {
        try await withPostgresDatabase { url in
            let connection = try PostgresConnection(url: url)
            try connection.execute("CREATE TABLE c (i bigint, d double precision)")
            struct Stop: Error {}
            #expect(throws: Stop.self) {
                try connection.copy("COPY c FROM STDIN (FORMAT binary)", format: .binary) { writer in
                    try writer.startRow(fields: 2)
                    writer.append(Int64(1))
                    writer.append(1.5)
                    throw Stop()
                }
            }
            #expect(try connection.query("SELECT count(*) FROM c").int64(0, 0) == 0)
            let values: [Double] = [0.1, -0.0, Double.leastNormalMagnitude / 4, .greatestFiniteMagnitude, .infinity, -.infinity, 21.5, 1 / 3]
            let integers: [Int64] = [.min, -1, 0, 1, .max, 42, 1 << 40, -(1 << 53)]
            for format in PostgresCopyFormat.allCases {
                try connection.execute("TRUNCATE c")
                let sql = "COPY c FROM STDIN" + (format == .binary ? " (FORMAT binary)" : "")
                let copied = try connection.copy(sql, format: format) { writer in
                    for (integer, value) in zip(integers, values) {
                        try writer.startRow(fields: 2)
                        writer.append(integer)
                        writer.append(value)
                    }
                    try writer.startRow(fields: 2)
                    writer.appendNull()
                    writer.appendNull()
                }
                #expect(copied == values.count + 1, "\(format)")
                let rows = try connection.query("SELECT i, d FROM c WHERE i IS NOT NULL ORDER BY i")
                let stored = try (0..<rows.count).map { (try rows.requiredInt64($0, 0), try rows.double($0, 1)!) }
                let expected = zip(integers, values).sorted { $0.0 < $1.0 }
                #expect(stored.map(\.0) == expected.map(\.0), "\(format)")
                #expect(stored.map(\.1.bitPattern) == expected.map(\.1.bitPattern), "\(format)")
            }
            // A row with the wrong field count is caught before anything is sent.
            #expect(throws: PostgresError.self) {
                try connection.copy("COPY c FROM STDIN (FORMAT binary)", format: .binary) { writer in
                    try writer.startRow(fields: 2)
                    writer.append(Int64(1))
                    try writer.startRow(fields: 2)
                }
            }
            #expect(!connection.isBroken)
        }
    }

    /// The server ends the session (as on a restart): the next use fails, the one after a second
    /// connects again.
    @Test func aSessionReconnectsAfterItsConnectionIsTerminated() async throws {
        try await withPostgresDatabase { url in
            var configuration = PostgresSession.Configuration(url: url)
            configuration.retryInterval = .zero
            let session = PostgresSession(configuration: configuration)
            let pid = try session.withConnection { try $0.query("SELECT pg_backend_pid()").requiredInt64(0, 0) }
            _ = try PostgresConnection(url: url).query("SELECT pg_terminate_backend($1)", [String(pid)])
            #expect {
                try session.withConnection { try $0.query("SELECT 1") }
            } throws: { error in
                (error as? PostgresError)?.isUnavailable == true
            }
            let again = try session.withConnection { try $0.query("SELECT pg_backend_pid()").requiredInt64(0, 0) }
            #expect(again != pid)
            #expect(session.connectCount == 2)
        }
    }
}
