import Foundation
import HTTPCore

/// `GET /`: the dashboard, one self-contained HTML page (inline CSS, JavaScript and SVG) that reads
/// the query API from the browser with the operator token. `Docs/dashboard.md` describes it.
///
/// The page holds no data and needs no token to load; every number on it comes from `/v1/devices`,
/// `/v1/series` and `/v1/aggregate`, which do. It is built once from `DashboardPage` with a
/// Content-Security-Policy that allows exactly its own inline script and style (by SHA-256), and
/// connections to this origin only, so nothing else can run in it or be loaded by it.
package struct DashboardEndpoint: Sendable {
    private let response: HTTPResponse

    package init() {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "text/html; charset=utf-8")
        // The page changes with the collector's version; a stale copy must not outlive an upgrade.
        headers.add("Cache-Control", "no-cache")
        headers.add("Content-Security-Policy", Self.contentSecurityPolicy)
        headers.add("X-Content-Type-Options", "nosniff")
        headers.add("Referrer-Policy", "no-referrer")
        response = HTTPResponse(status: .ok, headers: headers, bytes: Array(DashboardPage.html.utf8))
    }

    package func register(in router: inout CollectorRouter) {
        let response = self.response
        router.add("GET", "/") { _, _ in response }
    }

    /// Only the page's own script and style, fetches to this origin, no framing, no forms posting away.
    static var contentSecurityPolicy: String {
        "default-src 'none'; script-src '\(hashSource(DashboardPage.script))'; "
            + "style-src '\(hashSource(DashboardPage.style))'; connect-src 'self'; img-src 'self' data:; "
            + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    }

    private static func hashSource(_ text: String) -> String {
        "sha256-" + Data(SHA256.hash(Array(text.utf8))).base64EncodedString()
    }
}
