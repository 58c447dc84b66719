import Dispatch
import Foundation
import Synchronization

/// A connection to PostgreSQL that comes back by itself: it connects on first use, and after the
/// server restarts or the network breaks, the next use connects again. Between failed attempts it
/// waits `retryInterval` and answers with the last error at once, so a client facing a database
/// that is down fails fast instead of queueing behind connect timeouts.
///
/// Not `Sendable`: one thread at a time (the collector's writer queue, or a `PostgresPool` queue).
package final class PostgresSession {
    package struct Configuration: Sendable {
        package var url: String
        package var applicationName = "edge-sync"
        package var connectTimeoutSeconds = 5
        package var retryInterval = Duration.seconds(1)

        package init(url: String) { self.url = url }
    }

    package let configuration: Configuration
    private var connection: PostgresConnection?
    private var lastFailure: (error: PostgresError, at: ContinuousClock.Instant)?
    /// Called with each new connection before it is used (session settings).
    private let prepare: (PostgresConnection) throws -> Void
    /// Connections made so far (the first one included); tests and logs read it.
    package private(set) var connectCount = 0

    package init(configuration: Configuration, prepare: @escaping (PostgresConnection) throws -> Void = { _ in }) {
        self.configuration = configuration
        self.prepare = prepare
    }

    /// Runs `body` on a working connection, connecting first if there is none. When `body` fails
    /// because the connection broke, the connection is dropped so the next call makes a new one.
    package func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let connection = try connected()
        do {
            return try body(connection)
        } catch {
            guard connection.isBroken else { throw error }
            self.connection = nil
            // libpq may notice the broken socket only after the error was made (a failed write is
            // reported late): an error without SQLSTATE on a connection that is now broken is the
            // lost connection, whatever it said.
            guard var failure = error as? PostgresError else { throw error }
            if failure.sqlState == nil { failure.isConnectionFailure = true }
            lastFailure = (failure, .now)
            throw failure
        }
    }

    private func connected() throws(PostgresError) -> PostgresConnection {
        if let connection, !connection.isBroken { return connection }
        connection = nil
        if let lastFailure, ContinuousClock.now - lastFailure.at < configuration.retryInterval {
            throw lastFailure.error
        }
        do throws(PostgresError) {
            let made = try PostgresConnection(
                url: configuration.url, applicationName: configuration.applicationName,
                connectTimeoutSeconds: configuration.connectTimeoutSeconds)
            do {
                try prepare(made)
            } catch {
                throw (error as? PostgresError) ?? PostgresError("preparing the connection: \(error)")
            }
            connection = made
            connectCount += 1
            lastFailure = nil
            return made
        } catch {
            lastFailure = (error, ContinuousClock.now)
            throw error
        }
    }
}

/// A few `PostgresSession`s, each on its own serial queue, for work arriving from the concurrency
/// pool (authentication, queries, readiness). Blocking libpq calls run on the queues, never on the
/// cooperative threads; requests go to the connections in turn.
package final class PostgresPool: Sendable {
    private final class Member: @unchecked Sendable {
        // `session` is touched only inside blocks running on `queue`.
        let session: PostgresSession
        let queue: DispatchQueue
        init(session: PostgresSession, queue: DispatchQueue) {
            self.session = session
            self.queue = queue
        }
    }

    private let members: [Member]
    private let next = Atomic<Int>(0)

    /// Makes `count` (at least one) sessions; none connects until it is first used.
    package init(
        configuration: PostgresSession.Configuration, count: Int, label: String,
        prepare: @escaping @Sendable (PostgresConnection) throws -> Void = { _ in }
    ) {
        members = (0..<max(1, count)).map { index in
            Member(
                session: PostgresSession(configuration: configuration, prepare: prepare),
                queue: DispatchQueue(label: "\(label).\(index)"))
        }
    }

    /// Runs `body` with the next connection in turn, off the cooperative thread pool.
    package func run<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let member = members[abs(next.wrappingAdd(1, ordering: .relaxed).oldValue % members.count)]
        return try await withCheckedThrowingContinuation { continuation in
            member.queue.async {
                continuation.resume(with: Result { try member.session.withConnection(body) })
            }
        }
    }
}

/// Where a PostgreSQL URL points, without its password: what logs and errors may show.
package func postgresRedactedURL(_ url: String) -> String {
    guard var components = URLComponents(string: url), components.scheme?.hasPrefix("postgres") == true else {
        return "postgres://…"
    }
    if components.password != nil { components.password = "***" }
    components.query = nil
    return components.string ?? "postgres://…"
}
