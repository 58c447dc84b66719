import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation
import Testing

/// The dashboard in a real browser: headless Chromium (Debian's `chromium`) loads `GET /` from a
/// `cloud-collector` holding the real datasets, and the test reads the DOM it rendered: one row per
/// device with the completeness `/v1/devices` reports, and a chart with one point per bucket
/// `/v1/aggregate` returns. A screenshot is saved as `.build/dashboard.png` for CI to keep.
@Suite(.serialized, .enabled(if: Chromium.path != nil, Chromium.missingReason))
struct DashboardBrowserTests {
    static let operatorToken = "dashboard-operator-token-0123456789"

    @Test func pageShowsEveryDeviceAndChartsTheChosenSeries() async throws {
        try await PairFixture.with { pair in
            let collector = try await pair.startCollector(
                environment: ["CLOUD_COLLECTOR_OPERATOR_TOKEN": Self.operatorToken])
            defer { collector.process.kill() }
            // gw-1: the real datasets through `edge-agent import` and `drain`, complete.
            let (text, _) = try realDataAsLineProtocol()
            try await pair.importLineProtocol(text, name: "all")
            let drain = try await pair.drain(collector.url)
            #expect(drain.status == 0, "\(drain.stderr)")
            // gw-2: sequence numbers 11…30 only, so 1…10 are a gap (completeness 2/3).
            try await postBatchWithGap(collector, device: "gw-2", dataDirectory: pair.collectorDirectory)

            // The page alone is public and holds no data.
            let page = try await get(collector.port, "/", token: nil)
            #expect(page.status == 200)
            #expect(page.header("content-type") == "text/html; charset=utf-8")
            #expect(page.header("content-security-policy")?.contains("connect-src 'self'") == true)
            #expect(!page.text.contains("gw-1") && !page.text.contains("sea_surface"))

            // What the page should show, from the API itself.
            let devices = try jsonObject(try await get(collector.port, "/v1/devices", token: Self.operatorToken))
            let expectedCompleteness = try #require(devices["devices"] as? [[String: Any]]).reduce(
                into: [String: Double]()
            ) { result, device in
                result[device["device"] as? String ?? ""] = (device["completeness"] as? NSNumber)?.doubleValue
            }
            #expect(expectedCompleteness == ["gw-1": 1, "gw-2": 20.0 / 30.0])
            let seriesList = try jsonObject(
                try await get(collector.port, "/v1/series?device=gw-1", token: Self.operatorToken))
            let chosen = try #require(
                (seriesList["series"] as? [[String: Any]])?.first {
                    ($0["series"] as? String)?.hasPrefix("sea_surface_temperature") == true
                })
            let series = try #require(chosen["series"] as? String)
            let first = try #require((chosen["first_timestamp"] as? NSNumber)?.int64Value)
            // A window inside the data: from a week after the first reading, 30 days, 6-hour buckets.
            let from = first + 7 * 86_400 * 1_000_000_000
            let to = from + 30 * 86_400 * 1_000_000_000
            let rangeQuery = "device=gw-1&series=\(encoded(series))&from=\(from)&to=\(to)&step=6h"
            let aggregate = try jsonObject(
                try await get(collector.port, "/v1/aggregate?" + rangeQuery, token: Self.operatorToken))
            let buckets = try #require(aggregate["buckets"] as? [[String: Any]])
            let drawable = buckets.filter { ($0["mean"] as? NSNumber).map { $0.doubleValue.isFinite } == true }
            #expect(buckets.count > 50, "the window should hold many buckets of real data")

            let fragment = "#token=\(Self.operatorToken)&" + rangeQuery
            let dom = try await Chromium.dumpDOM(collector.url + "/" + fragment, scratch: pair.directory)
            #expect(dom.attributes(of: "body")["data-state"] == "ready", "the page did not finish loading")

            // One row per device, with its completeness as the API reports it, shown as a percentage.
            let rows = dom.elements(tag: "tr").filter { $0.attributes["data-device"] != nil }
            #expect(Set(rows.compactMap { $0.attributes["data-device"] }) == ["gw-1", "gw-2"])
            #expect(rows.count == 2)
            for row in rows {
                let device = row.attributes["data-device"] ?? ""
                let shown = row.attributes["data-completeness"].flatMap(Double.init)
                #expect(shown == expectedCompleteness[device], "completeness of \(device)")
            }
            #expect(rows.first { $0.attributes["data-device"] == "gw-2" }?.text.contains("66.66 %") == true)
            #expect(rows.first { $0.attributes["data-device"] == "gw-1" }?.text.contains("100.00 %") == true)

            // The chart: the chosen series and range, one drawn point per bucket with a mean.
            let chart = dom.attributes(of: "svg")
            #expect(chart["data-series"] == series)
            #expect(chart["data-from"] == String(from))
            #expect(chart["data-to"] == String(to))
            #expect(chart["data-buckets"] == String(buckets.count))
            #expect(chart["data-points"] == String(drawable.count))
            let line = try #require(dom.elements(tag: "path").first { $0.attributes["class"] == "line" })
            let commands = (line.attributes["d"] ?? "").filter { $0 == "M" || $0 == "L" }.count
            #expect(commands == drawable.count, "points drawn in the line")

            // The screenshot CI keeps (look at it: devices table on top, the chart below).
            let screenshot = Chromium.packageDirectory + "/.build/dashboard.png"
            try await Chromium.screenshot(collector.url + "/" + fragment, to: screenshot, scratch: pair.directory)
            let size = (try? FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0
            #expect(size > 10_000, "screenshot \(screenshot) is missing or empty")
        }
    }

    @Test func aWrongTokenAsksForTheTokenAgain() async throws {
        try await PairFixture.with { pair in
            let collector = try await pair.startCollector(
                environment: ["CLOUD_COLLECTOR_OPERATOR_TOKEN": Self.operatorToken])
            defer { collector.process.kill() }
            let dom = try await Chromium.dumpDOM(
                collector.url + "/#token=not-the-operator-token", scratch: pair.directory)
            #expect(dom.attributes(of: "body")["data-state"] == "token")
            let form = try #require(dom.elements(tag: "form").first { $0.attributes["id"] == "token-form" })
            #expect(form.attributes["hidden"] == nil, "the token form must be shown")
            #expect(form.text.contains("refused the token"))
        }
    }

    @Test func aLostConnectionShowsABannerAndKeepsTheLastData() async throws {
        // Through a proxy that forwards the page and the first refresh's three API requests, then
        // resets every connection: the 5-second refresh (run by Chromium's virtual time) fails.
        try await PairFixture.with { pair in
            let collector = try await pair.startCollector(
                environment: ["CLOUD_COLLECTOR_OPERATOR_TOKEN": Self.operatorToken])
            defer { collector.process.kill() }
            try await postBatchWithGap(collector, device: "gw-2", dataDirectory: pair.collectorDirectory)
            let proxy = try FaultProxy(upstreamPort: collector.port) { number in
                number <= 4 ? .none : .resetBeforeForwarding
            }
            defer { proxy.stop() }
            let dom = try await Chromium.dumpDOM(
                "http://127.0.0.1:\(proxy.port)/#token=\(Self.operatorToken)", scratch: pair.directory)
            #expect(proxy.statistics.requests > 4, "the page never refreshed")
            #expect(dom.attributes(of: "body")["data-state"] == "offline")
            let banner = try #require(dom.elements(tag: "div").first { $0.attributes["id"] == "banner" })
            #expect(banner.attributes["hidden"] == nil)
            #expect(banner.text.contains("Cannot reach the collector"))
            let rows = dom.elements(tag: "tr").filter { $0.attributes["data-device"] != nil }
            #expect(rows.map { $0.attributes["data-device"] } == ["gw-2"], "the last data stays on the page")
        }
    }

    // MARK: Helpers

    func postBatchWithGap(_ collector: CollectorUnderTest, device: String, dataDirectory: String) async throws {
        let token = try await CollectorUnderTest.addToken(dataDirectory: dataDirectory, device: device)
        let now = Int64(Date().timeIntervalSince1970) * 1_000_000_000
        let readings = (0..<20).map { Reading(series: 0, timestamp: now - Int64(20 - $0) * 1_000_000_000, value: 20.5) }
        let batch = Batch(
            device: device, stream: 7, firstSequence: 11, seriesKeys: ["room temperature"], readings: readings,
            sentAt: now)
        let body = try BatchEncoder().encode(batch)
        let port = collector.port
        let response = try await onDedicatedThread {
            try BlockingHTTPClient(port: port).post(
                "/v1/batches", body: body,
                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/vnd.edge-sync.batch")])
        }
        try #require(response.status == 200, "\(response.text)")
    }

    func get(_ port: Int, _ target: String, token: String?) async throws -> BlockingHTTPClient.Response {
        try await onDedicatedThread {
            try BlockingHTTPClient(port: port).send(
                method: "GET", path: target, headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [])
        }
    }

    func jsonObject(_ response: BlockingHTTPClient.Response) throws -> [String: Any] {
        try #require(response.status == 200, "\(response.text)")
        return try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    func encoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
    }
}
