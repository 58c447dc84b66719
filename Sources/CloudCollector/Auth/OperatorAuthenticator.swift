import HTTPCore

/// Checks the operator token that guards the query API (`/v1/series`, `/v1/readings`,
/// `/v1/aggregate`, `/v1/devices`). It is one configured secret, separate from device tokens: a
/// device token never reads data and the operator token never writes it.
package struct OperatorAuthenticator: Sendable {
    /// SHA-256 of the configured token; `nil` when none is configured (the query API then answers 403).
    private let tokenHash: [UInt8]?

    package init(token: String?) {
        tokenHash = token.map { SHA256.hash(Array($0.utf8)) }
    }

    package var isConfigured: Bool { tokenHash != nil }

    /// Passes when `header` is `Bearer <operator token>`.
    ///
    /// - Throws: `CollectorError` 403 when no operator token is configured; 401 (with
    ///   `WWW-Authenticate: Bearer`) when the header is missing, malformed or names another token.
    package func authorize(_ header: String?) throws(CollectorError) {
        guard let tokenHash else {
            throw CollectorError(
                .forbidden, "query_api_disabled",
                "no operator token is configured; start the collector with --operator-token-file FILE,"
                    + " the config key \"operator_token_file\" or the environment variable CLOUD_COLLECTOR_OPERATOR_TOKEN"
            )
        }
        guard let header else {
            throw Self.unauthorized("missing Authorization: Bearer <operator token>")
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, ASCIICase.equal(parts[0], "bearer") else {
            throw Self.unauthorized("Authorization must be \"Bearer <operator token>\"")
        }
        // Comparing digests of equal length with no early exit: the time taken says nothing about
        // how much of a guess was right.
        let presented = SHA256.hash(Array(String(parts[1]).trimmingSpaces().utf8))
        var difference: UInt8 = 0
        for index in 0..<tokenHash.count { difference |= tokenHash[index] ^ presented[index] }
        guard difference == 0 else { throw Self.unauthorized("wrong operator token") }
    }

    private static func unauthorized(_ message: String) -> CollectorError {
        var error = CollectorError(.unauthorized, "unauthorized", message)
        error.headers = [("WWW-Authenticate", "Bearer realm=\"edge-sync query\"")]
        return error
    }
}
