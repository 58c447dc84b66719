import CloudCollector
import EdgeSyncTestSupport
import Foundation
import Testing

/// `GET /` without a browser: the page is public, self-contained, and its Content-Security-Policy
/// names the hashes of exactly the script and style it serves (a mismatch would stop the page in
/// every browser, so it is checked here too, where no Chromium is needed).
struct DashboardPageTests {
    @Test func pageIsServedWithoutTokenAndHoldsNoData() async throws {
        try await RunningCollector.with(configure: { $0.operatorToken = "operator-token-0123456789abcdef" }) {
            collector, _ in
            let response = try await collector.get("/", token: nil)
            #expect(response.status == 200)
            #expect(response.header("content-type") == "text/html; charset=utf-8")
            #expect(response.header("x-content-type-options") == "nosniff")
            #expect(response.text.hasPrefix("<!doctype html>"))
            #expect(!response.text.contains("gateway-1"), "the page must not carry data")
            // Nothing is loaded from elsewhere: the only URL is the SVG namespace.
            let schemes = response.text.components(separatedBy: "://").count - 1
            #expect(schemes == 1 && response.text.contains("\"http://www.w3.org/2000/svg\""))
            #expect(!response.text.contains(" src="))
        }
    }

    @Test func contentSecurityPolicyHashesTheInlineScriptAndStyle() async throws {
        try await RunningCollector.with { collector, _ in
            let response = try await collector.get("/", token: nil)
            let policy = try #require(response.header("content-security-policy"))
            for tag in ["script", "style"] {
                let inline = try #require(Self.content(of: tag, in: response.text), "no <\(tag)> in the page")
                let hash = Data(SHA256.hash(Array(inline.utf8))).base64EncodedString()
                #expect(policy.contains("\(tag)-src 'sha256-\(hash)'"), "\(tag) hash not in \(policy)")
            }
            #expect(policy.contains("default-src 'none'"))
            #expect(policy.contains("connect-src 'self'"))
            #expect(policy.contains("frame-ancestors 'none'"))
        }
    }

    @Test func onlyGetAndHeadAreAnswered() async throws {
        try await RunningCollector.with { collector, _ in
            let response = try await collector.post("/", body: [], token: nil, contentType: nil)
            #expect(response.status == 405)
        }
    }

    static func content(of tag: String, in html: String) -> String? {
        guard let open = html.range(of: "<\(tag)>"),
            let close = html.range(of: "</\(tag)>", range: open.upperBound..<html.endIndex)
        else { return nil }
        return String(html[open.upperBound..<close.lowerBound])
    }
}
