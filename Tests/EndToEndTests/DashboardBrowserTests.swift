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
            // gw-2: sequence numbers 11…30 only, so 1…10 are a gap (completeness 2/3), and a batch
            // of 2 readings the collector refuses (a series key with NUL).
            let gatewayToken = try await postBatchWithGap(collector, device: "gw-2", dataDirectory: pair.collectorDirectory)
            let refused = try await postRefusedBatch(collector, device: "gw-2", token: gatewayToken)
            #expect(refused.status == 400, "\(refused.text)")

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
            // Refusals beside completeness: counts from /v1/devices and the last refusal's reason.
            let refusedRow = try #require(rows.first { $0.attributes["data-device"] == "gw-2" })
            #expect(refusedRow.attributes["data-refused-batches"] == "1")
            #expect(refusedRow.attributes["data-refused-readings"] == "2")
            #expect(refusedRow.text.contains("2 in 1 batch") && refusedRow.text.contains("400 invalid_batch"))
            #expect(rows.first { $0.attributes["data-device"] == "gw-1" }?.attributes["data-refused-batches"] == "0")

            // The chart: the chosen series and range, one drawn point per bucket with a mean.
            let chart = dom.attributes(of: "svg")
            #expect(chart["data-series"] == series)
            #expect(chart["data-from"] == String(from))
            #expect(chart["data-to"] == String(to))
            #expect(chart["data-buckets"] == String(buckets.count))
            #expect(chart["data-points"] == String(drawable.count))
            let line = try #require(dom.elements(tag: "path").first { ($0.attributes["class"] ?? "").hasPrefix("line") })
            let commands = (line.attributes["d"] ?? "").filter { $0 == "M" || $0 == "L" }.count
            #expect(commands == drawable.count, "points drawn in the line")

            // The screenshot CI keeps (look at it: devices table on top, the chart below).
            let screenshot = Chromium.packageDirectory + "/.build/dashboard.png"
            try await Chromium.screenshot(collector.url + "/" + fragment, to: screenshot, scratch: pair.directory)
            let size = (try? FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0
            #expect(size > 10_000, "screenshot \(screenshot) is missing or empty")
        }
    }

    /// All series of one measurement on one chart (one line each, the numbers `/v1/aggregate`
    /// gives), then a mouse drag across the chart zooms into the range under it, the address bar
    /// links to the zoomed view, and "Zoom out" goes back.
    @Test func severalSeriesOnOneChartAndADragZoomsIntoTheRange() async throws {
        try await PairFixture.with { pair in
            let collector = try await pair.startCollector(
                environment: ["CLOUD_COLLECTOR_OPERATOR_TOKEN": Self.operatorToken])
            defer { collector.process.kill() }
            let (text, _) = try realDataAsLineProtocol()
            try await pair.importLineProtocol(text, name: "all")
            let drain = try await pair.drain(collector.url)
            #expect(drain.status == 0, "\(drain.stderr)")

            // The measurement with the most series (at least two) among the real datasets.
            let list = try jsonObject(try await get(collector.port, "/v1/series?device=gw-1", token: Self.operatorToken))
            let keys = try #require(list["series"] as? [[String: Any]]).compactMap { $0["series"] as? String }
            let byMeasurement = Dictionary(grouping: keys) { String($0.prefix { $0 != "," && $0 != " " }) }
            let (measurement, members) = try #require(byMeasurement.max { $0.value.count < $1.value.count })
            try #require(members.count >= 2, "no measurement with several series in \(keys)")
            let expectedSeries = Array(members.sorted().prefix(8))

            let view = "device=gw-1&measurement=\(encoded(measurement))"
            let dom = try await Chromium.dumpDOM(
                collector.url + "/#token=\(Self.operatorToken)&" + view, scratch: pair.directory)
            #expect(dom.attributes(of: "body")["data-state"] == "ready", "the page did not finish loading")
            let chart = dom.attributes(of: "svg")
            #expect(chart["data-series-count"] == String(expectedSeries.count))
            let lines = dom.elements(tag: "path").filter { ($0.attributes["class"] ?? "").hasPrefix("line") }
            #expect(Set(lines.compactMap { $0.attributes["data-series"] }) == Set(expectedSeries))
            #expect(dom.elements(tag: "path").allSatisfy { $0.attributes["class"] != "band" }, "no band for several series")
            let from = try #require(chart["data-from"]), to = try #require(chart["data-to"]), step = try #require(chart["data-step"])
            for line in lines {
                let series = try #require(line.attributes["data-series"])
                let aggregate = try jsonObject(
                    try await get(
                        collector.port,
                        "/v1/aggregate?device=gw-1&series=\(encoded(series))&from=\(from)&to=\(to)&step=\(step)",
                        token: Self.operatorToken))
                let buckets = try #require(aggregate["buckets"] as? [[String: Any]])
                let drawable = buckets.filter { ($0["mean"] as? NSNumber).map { $0.doubleValue.isFinite } == true }
                #expect(line.attributes["data-points"] == String(drawable.count), "points drawn for \(series)")
                let commands = (line.attributes["d"] ?? "").filter { $0 == "M" || $0 == "L" }.count
                #expect(commands == drawable.count, "points in the line of \(series)")
            }
            let legend = dom.elements(tag: "li").filter { $0.attributes["data-series"] != nil }
            #expect(legend.count == expectedSeries.count)

            // Drag from 30 % to 60 % of the plotting area in a real browser.
            let page = try await DevToolsPage.open(
                collector.url + "/#token=\(Self.operatorToken)&" + view, scratch: pair.directory)
            let geometry = try await onDedicatedThread { () -> [String: Double] in
                try page.waitUntil("document.body.dataset.state === 'ready' && document.querySelector('path.line')")
                let value = try page.evaluate(
                    """
                    (() => {
                      const box = document.getElementById('chart').getBoundingClientRect();
                      const chart = document.getElementById('chart');
                      const width = Number(chart.getAttribute('viewBox').split(' ')[2]);
                      return { left: box.left, top: box.top, width: box.width, height: box.height, viewWidth: width,
                        from: Number(chart.dataset.from), to: Number(chart.dataset.to) };
                    })()
                    """)
                return (value as? [String: Any])?.compactMapValues { ($0 as? NSNumber)?.doubleValue } ?? [:]
            }
            let box = geometry
            let scale = try #require(box["width"]) / (try #require(box["viewWidth"]))
            let plotLeft = 56.0, plotWidth = try #require(box["viewWidth"]) - 56 - 16
            let start = (x: try #require(box["left"]) + (plotLeft + 0.3 * plotWidth) * scale, y: try #require(box["top"]) + 100 * scale)
            let end = (x: try #require(box["left"]) + (plotLeft + 0.6 * plotWidth) * scale, y: start.y)
            let originalFrom = try #require(box["from"]), originalTo = try #require(box["to"])
            let zoomed = try await onDedicatedThread { () -> [String: String] in
                try page.drag(from: start, to: end)
                try page.waitUntil(
                    "document.getElementById('chart').dataset.from !== '\(from)' && document.body.dataset.state === 'ready'"
                        + " && !document.getElementById('zoom-out').hidden")
                let value = try page.evaluate(
                    "({ hash: location.hash, from: document.getElementById('chart').dataset.from,"
                        + " to: document.getElementById('chart').dataset.to })")
                return value as? [String: String] ?? [:]
            }
            let span = originalTo - originalFrom
            let tolerance = span / plotWidth * 2 + 2e6  // two pixels and the millisecond rounding
            let zoomedFrom = try #require(zoomed["from"].flatMap(Double.init))
            let zoomedTo = try #require(zoomed["to"].flatMap(Double.init))
            #expect(abs(zoomedFrom - (originalFrom + 0.3 * span)) < tolerance, "zoomed from \(zoomedFrom)")
            #expect(abs(zoomedTo - (originalFrom + 0.6 * span)) < tolerance, "zoomed to \(zoomedTo)")
            // The address bar holds the view: the zoomed range and the measurement, never the token.
            let hash = try #require(zoomed["hash"])
            #expect(hash.contains("range=custom") && hash.contains("from=\(zoomed["from"]!)") && hash.contains("to=\(zoomed["to"]!)"))
            #expect(hash.contains("measurement=") && !hash.contains("token"))

            // The shared link shows the same view in another browser.
            let shared = try await Chromium.dumpDOM(
                collector.url + "/" + hash + "&token=\(Self.operatorToken)", scratch: pair.directory)
            #expect(shared.attributes(of: "svg")["data-from"] == zoomed["from"])
            #expect(shared.attributes(of: "svg")["data-to"] == zoomed["to"])

            let restored = try await onDedicatedThread { () -> String? in
                _ = try page.evaluate("document.getElementById('zoom-out').click()")
                try page.waitUntil(
                    "document.getElementById('chart').dataset.from === '\(from)' && document.body.dataset.state === 'ready'")
                return try page.evaluate("location.hash") as? String
            }
            #expect(restored?.contains("range=custom") == false, "zoom out returns to all data: \(restored ?? "")")
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

    @discardableResult
    func postBatchWithGap(_ collector: CollectorUnderTest, device: String, dataDirectory: String) async throws -> String {
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
        return token
    }

    func postRefusedBatch(_ collector: CollectorUnderTest, device: String, token: String) async throws
        -> BlockingHTTPClient.Response
    {
        let batch = Batch(
            device: device, stream: 7, firstSequence: 31, seriesKeys: ["bad\u{0}key"],
            readings: [Reading(series: 0, timestamp: 1, value: 1), Reading(series: 0, timestamp: 2, value: 2)])
        let body = try BatchEncoder().encode(batch)
        let port = collector.port
        return try await onDedicatedThread {
            try BlockingHTTPClient(port: port).post(
                "/v1/batches", body: body,
                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/vnd.edge-sync.batch")])
        }
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
