/// The dashboard's HTML, CSS and JavaScript, compiled into the binary (no file is looked up at run
/// time, nothing is fetched from elsewhere). `DashboardEndpoint` serves it; `Docs/dashboard.md`
/// documents what it shows, how it takes the token and the fragment parameters the tests use.
///
/// The script and style are separate strings because the Content-Security-Policy names their
/// SHA-256: a byte changed here changes the hash with it.
enum DashboardPage {
    static var html: String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <link rel="icon" href="data:,">
        <title>edge-sync collector</title>
        <style>\(style)</style>
        </head>
        \(body)
        <script>\(script)</script>
        </html>

        """
    }

    static let style = #"""

        :root { color-scheme: light dark; --fg: #1b1f24; --muted: #57606a; --bg: #ffffff; --panel: #f6f8fa;
          --line: #d0d7de; --accent: #0969da; --band: rgba(9, 105, 218, 0.16); --bad: #b3261e; --warn-bg: #fff4ce; }
        @media (prefers-color-scheme: dark) {
          :root { --fg: #e6edf3; --muted: #9ea7b3; --bg: #0d1117; --panel: #161b22; --line: #30363d;
            --accent: #58a6ff; --band: rgba(88, 166, 255, 0.2); --bad: #ff7b72; --warn-bg: #3b2e00; }
        }
        * { box-sizing: border-box; }
        [hidden] { display: none !important; }
        body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
          color: var(--fg); background: var(--bg); }
        header, main { max-width: 1200px; margin: 0 auto; padding: 0 16px; }
        header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 16px; padding-top: 12px; }
        h1 { font-size: 1.3rem; margin: 0; }
        h2 { font-size: 1.1rem; margin: 24px 0 8px; }
        #status { color: var(--muted); font-size: 0.9rem; }
        button, input, select { font: inherit; color: inherit; }
        button { border: 1px solid var(--line); background: var(--panel); border-radius: 6px; padding: 4px 12px;
          cursor: pointer; min-height: 36px; }
        button:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid var(--accent);
          outline-offset: 1px; }
        input, select { border: 1px solid var(--line); background: var(--bg); border-radius: 6px; padding: 4px 8px;
          min-height: 36px; max-width: 100%; }
        #banner { margin: 12px 0 0; padding: 8px 12px; border: 1px solid var(--bad); border-radius: 6px;
          background: var(--warn-bg); }
        #token-form { margin: 16px 0; padding: 12px; border: 1px solid var(--line); border-radius: 6px;
          background: var(--panel); display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
        #token-form p { flex-basis: 100%; margin: 0; }
        .table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
        table { border-collapse: collapse; width: 100%; }
        caption { text-align: left; padding: 8px 12px; color: var(--muted); caption-side: top; }
        th, td { padding: 6px 12px; text-align: left; border-top: 1px solid var(--line); white-space: nowrap; }
        th { background: var(--panel); font-weight: 600; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        td.device button { border: 0; background: none; color: var(--accent); padding: 0; min-height: 0;
          text-decoration: underline; font-weight: 600; }
        meter { width: 80px; height: 14px; vertical-align: middle; margin-right: 6px; }
        .flag { color: var(--bad); font-weight: 600; }
        td.refusal { max-width: 28em; overflow: hidden; text-overflow: ellipsis; }
        .empty { color: var(--muted); padding: 12px; }
        #chart-controls { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: end; }
        #chart-controls label { display: flex; flex-direction: column; font-size: 0.85rem; color: var(--muted); }
        #chart-controls label > * { color: var(--fg); font-size: 1rem; }
        #series-choice { min-width: 16em; min-height: 5.5em; }
        #chart-box { margin-top: 12px; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
        #chart { width: 100%; height: auto; display: block; touch-action: pan-y; }
        #chart .axis { stroke: var(--line); }
        #chart .grid { stroke: var(--line); stroke-dasharray: 2 4; }
        #chart text { fill: var(--muted); font-size: 12px; }
        #chart .line { fill: none; stroke: var(--accent); stroke-width: 2; stroke-linejoin: round; }
        #chart .band { fill: var(--band); stroke: none; }
        #chart .dot { fill: var(--accent); }
        #chart .cursor { stroke: var(--muted); }
        #chart .selection { fill: var(--band); stroke: var(--accent); stroke-dasharray: 4 3; }
        #chart .line.s1, #legend .s1 { stroke: #cf222e; color: #cf222e; }
        #chart .line.s2, #legend .s2 { stroke: #1a7f37; color: #1a7f37; }
        #chart .line.s3, #legend .s3 { stroke: #8250df; color: #8250df; }
        #chart .line.s4, #legend .s4 { stroke: #bc4c00; color: #bc4c00; }
        #chart .line.s5, #legend .s5 { stroke: #0598bc; color: #0598bc; }
        #chart .line.s6, #legend .s6 { stroke: #bf3989; color: #bf3989; }
        #chart .line.s7, #legend .s7 { stroke: #6e7781; color: #6e7781; }
        #legend { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 4px 0; padding: 0;
          font-size: 0.9rem; }
        #legend li::before { content: "━ "; font-weight: 700; }
        #legend .s0 { color: var(--accent); }
        #legend li span { color: var(--fg); }
        .hint { color: var(--muted); font-size: 0.85rem; margin: 0; }
        #chart-message, #readout { color: var(--muted); min-height: 1.5em; margin: 4px 0; }
        .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
          white-space: nowrap; }
        @media (max-width: 700px) {
          body { font-size: 15px; }
          .optional { display: none; }
          th, td { padding: 6px 8px; }
          meter { width: 48px; }
        }

        """#

    static let body = #"""
        <body data-state="loading" data-refreshes="0">
        <header>
          <h1>edge-sync collector</h1>
          <span id="status" role="status" aria-live="polite">Loading…</span>
          <button id="pause" type="button" aria-pressed="false">Pause updates</button>
        </header>
        <main>
          <div id="banner" role="alert" hidden></div>
          <form id="token-form" hidden>
            <p id="token-reason">The query API needs the operator token.</p>
            <label for="token-input">Operator token</label>
            <input id="token-input" type="password" autocomplete="off" spellcheck="false" required>
            <button type="submit">Use token</button>
          </form>
          <section aria-labelledby="devices-heading">
            <h2 id="devices-heading">Devices</h2>
            <div class="table-wrap">
              <table id="devices" data-count="0">
                <caption id="devices-summary">No data yet.</caption>
                <thead><tr>
                  <th scope="col">Device</th><th scope="col">Completeness</th>
                  <th scope="col" class="num" title="Batches this collector refused (the edge quarantines them)">Refused</th>
                  <th scope="col" class="num">Lag</th>
                  <th scope="col" class="num optional">Readings</th>
                  <th scope="col" class="num optional">Not received yet</th>
                  <th scope="col" class="num optional">Dropped at edge</th>
                  <th scope="col" class="optional">Last seen (UTC)</th><th scope="col" class="optional">Clock</th>
                  <th scope="col" class="optional">Last refusal</th>
                </tr></thead>
                <tbody></tbody>
              </table>
            </div>
          </section>
          <section aria-labelledby="chart-heading">
            <h2 id="chart-heading">Series</h2>
            <form id="chart-controls">
              <label>Device <select id="device-choice"></select></label>
              <label>Series (several with Ctrl or Shift) <select id="series-choice" multiple size="4"></select></label>
              <label>or all series of <select id="measurement-choice"><option value="">(pick series)</option></select></label>
              <label>Range <select id="range-choice">
                <option value="all">All data</option>
                <option value="1h">Last hour of data</option>
                <option value="6h">Last 6 hours of data</option>
                <option value="24h">Last 24 hours of data</option>
                <option value="7d">Last 7 days of data</option>
                <option value="30d">Last 30 days of data</option>
                <option value="custom">Custom (from, to)</option>
              </select></label>
              <label>From (UTC) <input id="from-input" size="22" placeholder="2026-11-24T00:00:00Z"></label>
              <label>To (UTC) <input id="to-input" size="22" placeholder="2026-11-25T00:00:00Z"></label>
              <label>Step <input id="step-input" size="8" placeholder="auto"></label>
              <button type="submit">Show</button>
              <button id="zoom-out" type="button" hidden>Zoom out</button>
            </form>
            <div id="chart-box">
              <p id="chart-message" role="status" aria-live="polite">Choose a series.</p>
              <svg id="chart" viewBox="0 0 1000 340" role="img" aria-labelledby="chart-title"
                data-buckets="0" data-points="0"><title id="chart-title">No chart yet</title></svg>
              <ul id="legend" aria-label="Series drawn"></ul>
              <p id="readout"></p>
              <p class="hint">Drag across the chart to zoom into a time range.</p>
            </div>
          </section>
        </main>
        </body>
        """#

    static let script = #"""

        "use strict";
        (() => {
          const TOKEN_KEY = "edge-sync.operator-token";
          const REFRESH_MS = 5000;
          const TARGET_BUCKETS = 240;
          const CHART_WIDTH = 1000;
          const SVG_NS = "http://www.w3.org/2000/svg";
          const $ = (id) => document.getElementById(id);
          const state = {
            token: sessionStorage.getItem(TOKEN_KEY), device: "", series: [], measurement: "", range: "all", from: "",
            to: "", step: "", seriesList: [], busy: false, paused: false, offlineSince: null, points: [], refreshes: 0,
            zooms: [], drag: null, geometry: null,
          };
          // At most this many series on one chart (the lines stay readable, the requests few).
          const MAX_SERIES = 8;

          // The fragment preselects the view: #token=…&device=…&series=…[&series=…]&measurement=…&range=…&from=…
          // &to=…&step=… (the page keeps it up to date, so the address bar always links to what is shown).
          // The token is moved to sessionStorage at once and removed from the address bar.
          const fragment = new URLSearchParams(location.hash.slice(1));
          if (fragment.has("token")) {
            state.token = fragment.get("token");
            sessionStorage.setItem(TOKEN_KEY, state.token);
          }
          state.device = fragment.get("device") || "";
          state.series = fragment.getAll("series").filter((key) => key).slice(0, MAX_SERIES);
          state.measurement = fragment.get("measurement") || "";
          state.range = fragment.get("range") || (fragment.has("from") || fragment.has("to") ? "custom" : "all");
          state.from = fragment.get("from") || "";
          state.to = fragment.get("to") || "";
          state.step = fragment.get("step") || "";
          writeFragment();

          function writeFragment() {
            const params = new URLSearchParams();
            if (state.device) params.set("device", state.device);
            if (state.measurement) params.set("measurement", state.measurement);
            else for (const key of state.series) params.append("series", key);
            if (state.range !== "all") params.set("range", state.range);
            if (state.range === "custom") {
              if (state.from) params.set("from", state.from);
              if (state.to) params.set("to", state.to);
            }
            if (state.step) params.set("step", state.step);
            const text = params.toString();
            history.replaceState(null, "", location.pathname + location.search + (text ? "#" + text : ""));
          }

          class QueryError extends Error {
            constructor(kind, message, status) { super(message); this.kind = kind; this.status = status; }
          }

          async function api(path, params) {
            const query = params ? "?" + new URLSearchParams(params).toString() : "";
            let response;
            try {
              response = await fetch(path + query, { headers: { Authorization: "Bearer " + state.token },
                cache: "no-store" });
            } catch (error) {
              throw new QueryError("network", "cannot reach the collector");
            }
            if (response.status === 401) throw new QueryError("auth", "the collector refused the token", 401);
            let body = null;
            try { body = await response.json(); } catch (error) { body = null; }
            if (!response.ok || body === null) {
              const message = body && body.message ? body.message : "HTTP " + response.status;
              throw new QueryError(response.status === 403 ? "disabled" : "http", message, response.status);
            }
            return body;
          }

          // Timestamps are nanoseconds beyond 2^53: JSON numbers lose up to a few hundred ns, so ranges
          // are widened to whole milliseconds and carried as BigInt strings.
          const NS_PER_MS = 1000000n;
          const msFloor = (ns) => BigInt(Math.floor(Number(ns) / 1e6)) * NS_PER_MS;
          const msCeil = (ns) => BigInt(Math.ceil(Number(ns) / 1e6)) * NS_PER_MS;
          const DURATIONS = { "1h": 3600n, "6h": 21600n, "24h": 86400n, "7d": 604800n, "30d": 2592000n };
          const NICE_STEPS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120,
            300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

          function parseInstant(text) {
            if (/^-?\d+$/.test(text)) return BigInt(text);
            const ms = Date.parse(text);
            return Number.isNaN(ms) ? null : BigInt(ms) * NS_PER_MS;
          }

          function autoStep(from, to) {
            const span = Number(to - from) / 1e9;
            const wanted = span / TARGET_BUCKETS;
            const nice = NICE_STEPS_S.find((s) => s >= wanted);
            const seconds = nice !== undefined ? nice : Math.ceil(wanted / 86400) * 86400;
            return String(BigInt(Math.round(seconds * 1e9)));
          }

          function chosenRange(meta) {
            if (state.range === "custom") {
              const from = parseInstant(state.from), to = parseInstant(state.to);
              if (from === null || to === null || to <= from) {
                return { error: "Enter a range: from and to as RFC 3339 (2026-11-24T00:00:00Z) or nanoseconds." };
              }
              // Nanoseconds are shown as dates; RFC 3339 as typed.
              const shown = (text, ns) => /^-?\d+$/.test(text) ? utc(ns) : text;
              return { from: state.from, to: state.to, step: state.step || autoStep(from, to),
                shownFrom: shown(state.from, from), shownTo: shown(state.to, to) };
            }
            if (!meta) return { error: "Device " + state.device + " has no series \u201c" + state.series.join("\u201d, \u201c") + "\u201d." };
            if (meta.first_timestamp === null) return { error: "This series has no readings." };
            const to = msCeil(meta.last_timestamp) + NS_PER_MS;
            let from = msFloor(meta.first_timestamp);
            const duration = DURATIONS[state.range];
            if (duration !== undefined && to - duration * 1000000000n > from) from = to - duration * 1000000000n;
            return { from: String(from), to: String(to), step: state.step || autoStep(from, to), shownFrom: utc(from),
              shownTo: utc(to) };
          }

          // Formatting
          const integer = new Intl.NumberFormat("en-US");
          function duration(seconds) {
            if (seconds === null || seconds === undefined) return "—";
            const sign = seconds < 0 ? "−" : "";
            let s = Math.abs(seconds);
            const units = [["y", 31536000], ["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
            const parts = [];
            for (const [name, size] of units) {
              if (s >= size || (name === "s" && parts.length === 0)) {
                parts.push(Math.floor(s / size) + " " + name);
                s -= Math.floor(s / size) * size;
              }
              if (parts.length === 2) break;
            }
            return sign + parts.join(" ");
          }
          function percent(value) {
            if (value === null || value === undefined) return "—";
            if (value < 1 && value > 0.9999) return ">99.99 %";
            return (Math.floor(value * 10000) / 100).toFixed(2) + " %";
          }
          function utc(ns) {
            if (ns === null || ns === undefined) return "—";
            return new Date(Number(ns) / 1e6).toISOString().replace(".000Z", "Z");
          }
          const utcSeconds = (ns) => ns === null || ns === undefined ? "—"
            : new Date(Number(ns) / 1e6).toISOString().slice(0, 19).replace("T", " ");
          function tickLabel(ms, spanMs) {
            const iso = new Date(ms).toISOString();
            if (spanMs > 2 * 86400000) return iso.slice(0, 10);
            if (spanMs > 3600000) return iso.slice(5, 16).replace("T", " ");
            return iso.slice(11, 19);
          }
          function number(value) {
            if (value === null || value === undefined) return "—";
            if (typeof value !== "number") return String(value);
            return Math.abs(value) >= 1e6 || (value !== 0 && Math.abs(value) < 1e-3)
              ? value.toExponential(3) : String(Math.round(value * 1000) / 1000);
          }
          function element(tag, attributes, text) {
            const node = document.createElement(tag);
            for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
            if (text !== undefined) node.textContent = text;
            return node;
          }
          function svg(tag, attributes, text) {
            const node = document.createElementNS(SVG_NS, tag);
            for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
            if (text !== undefined) node.textContent = text;
            return node;
          }

          // Devices
          function renderDevices(answer) {
            const body = $("devices").tBodies[0];
            const rows = answer.devices.map((device) => {
              const refusedBatches = device.refused_batches || 0, refusedReadings = device.refused_readings || 0;
              const last = device.last_refusal || null;
              const refused = element("td", { class: "num" + (refusedBatches > 0 ? " flag" : ""),
                title: refusedBatches > 0 ? integer.format(refusedReadings) + " readings in "
                  + integer.format(refusedBatches) + " batches refused since the collector started" : "none refused" },
                refusedBatches > 0 ? integer.format(refusedReadings) + " in " + integer.format(refusedBatches)
                  + (refusedBatches === 1 ? " batch" : " batches") : "0");
              const refusal = element("td", { class: "optional refusal" + (last ? " flag" : ""),
                title: last ? last.message : "" },
                last ? utcSeconds(last.at) + " " + last.status + " " + last.error + ": " + last.message : "—");
              const row = element("tr", { "data-device": device.device,
                "data-refused-batches": String(refusedBatches), "data-refused-readings": String(refusedReadings),
                "data-completeness": device.completeness === null ? "" : String(device.completeness),
                "data-lag-seconds": device.lag_seconds === null ? "" : String(device.lag_seconds) });
              const name = element("td", { class: "device" });
              const choose = element("button", { type: "button", title: "Chart this device's series" },
                device.device);
              choose.addEventListener("click", () => { state.device = device.device; state.series = [];
                state.measurement = ""; renderSeriesChoices(); changed(); });
              name.append(choose);
              const complete = element("td", { class: "completeness" });
              if (device.completeness !== null) {
                complete.append(element("meter", { min: "0", max: "1", low: "0.95", high: "0.999", optimum: "1",
                  value: String(device.completeness), "aria-hidden": "true" }));
              }
              complete.append(document.createTextNode(percent(device.completeness)));
              const clock = device.implausible_timestamps
                ? element("td", { class: "flag optional",
                  title: "readings stamped in the future or long ago, or a clock skew over 5 minutes" },
                  "⚠ implausible")
                : element("td", { class: "optional" }, device.clock_skew_seconds === null ? "—"
                  : "skew " + duration(Math.round(device.clock_skew_seconds)));
              row.append(name, complete, refused,
                element("td", { class: "num" }, duration(device.lag_seconds === null ? null
                  : Math.round(device.lag_seconds))),
                element("td", { class: "num optional" }, integer.format(device.readings)),
                element("td", { class: "num optional" + (device.gap_readings > 0 ? " flag" : "") },
                  integer.format(device.gap_readings)),
                element("td", { class: "num optional" }, integer.format(device.dropped_readings)),
                element("td", { class: "optional" }, utcSeconds(device.last_seen)), clock, refusal);
              return row;
            });
            body.replaceChildren(...rows);
            $("devices").dataset.count = String(rows.length);
            const total = answer.devices.reduce((sum, device) => sum + device.readings, 0);
            const known = answer.devices.filter((device) => device.completeness !== null);
            const worst = known.length ? Math.min(...known.map((device) => device.completeness)) : null;
            $("devices-summary").textContent = answer.devices.length === 0 ? "No device has sent data yet."
              : answer.devices.length + (answer.devices.length === 1 ? " device, " : " devices, ")
                + integer.format(total) + " readings, lowest completeness " + percent(worst) + ".";
          }

          // Series choice
          // The measurement of a series key: up to its first unescaped comma or space.
          function measurementOf(key) {
            for (let index = 0; index < key.length; index += 1) {
              const c = key[index];
              if (c === "\\") index += 1;
              else if (c === "," || c === " ") return key.slice(0, index);
            }
            return key;
          }
          function renderSeriesChoices() {
            const devices = [...new Set(state.seriesList.map((entry) => entry.device))];
            if (state.device && !devices.includes(state.device)) devices.push(state.device);
            if (!state.device && devices.length) state.device = devices[0];
            const keys = state.seriesList.filter((entry) => entry.device === state.device)
              .map((entry) => entry.series);
            const measurements = [...new Set(keys.map(measurementOf))];
            if (state.measurement && !measurements.includes(state.measurement)) measurements.push(state.measurement);
            if (state.measurement) {
              state.series = keys.filter((key) => measurementOf(key) === state.measurement).slice(0, MAX_SERIES);
            }
            for (const key of state.series) if (!keys.includes(key)) keys.push(key);
            if (!state.series.length && !state.measurement && keys.length) state.series = [keys[0]];
            fillSelect($("device-choice"), devices, [state.device]);
            fillSelect($("series-choice"), keys, state.series);
            fillSelect($("measurement-choice"), [""].concat(measurements), [state.measurement],
              (value) => value || "(pick series)");
          }
          function fillSelect(select, values, chosen, label) {
            const current = [...select.options].map((option) => option.value);
            if (current.length !== values.length || current.some((value, index) => value !== values[index])) {
              select.replaceChildren(...values.map((value) =>
                element("option", { value }, label ? label(value) : value)));
            }
            for (const option of select.options) option.selected = chosen.includes(option.value);
          }

          // Chart
          async function refreshChart() {
            if (!state.device || !state.series.length) {
              showChartMessage(state.measurement ? "Measurement " + state.measurement + " has no series on "
                + state.device + "." : "No series yet.");
              clearChart();
              return;
            }
            const metas = state.series.map((key) => state.seriesList.find((entry) => entry.device === state.device
              && entry.series === key));
            // Several series share one range: from the earliest first reading to the latest last one.
            const known = metas.filter((meta) => meta && meta.first_timestamp !== null);
            const meta = metas.some((entry) => !entry) ? undefined : {
              first_timestamp: known.length ? known.reduce((a, b) =>
                BigInt(b.first_timestamp) < BigInt(a) ? b.first_timestamp : a, known[0].first_timestamp) : null,
              last_timestamp: known.length ? known.reduce((a, b) =>
                BigInt(b.last_timestamp) > BigInt(a) ? b.last_timestamp : a, known[0].last_timestamp) : null,
            };
            const range = chosenRange(meta);
            if (range.error) { showChartMessage(range.error); clearChart(); return; }
            if (document.activeElement !== $("from-input") && document.activeElement !== $("to-input")) {
              $("from-input").value = range.shownFrom;
              $("to-input").value = range.shownTo;
            }
            let answers;
            try {
              answers = await Promise.all(state.series.map((key) => api("/v1/aggregate", { device: state.device,
                series: key, from: range.from, to: range.to, step: range.step })));
            } catch (error) {
              if (error.kind !== "http") throw error;
              showChartMessage("Cannot chart this: " + error.message);
              clearChart();
              return;
            }
            drawChart(answers);
          }
          function showChartMessage(text) { $("chart-message").textContent = text; }
          function clearChart() {
            const chart = $("chart");
            chart.replaceChildren(svg("title", { id: "chart-title" }, "No chart"));
            chart.dataset.buckets = "0";
            chart.dataset.points = "0";
            chart.dataset.seriesCount = "0";
            $("legend").replaceChildren();
            state.points = [];
            state.geometry = null;
          }

          function niceTicks(low, high, count) {
            const raw = (high - low) / count;
            const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
            const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
            const ticks = [];
            for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) {
              ticks.push(Math.abs(value) < step * 1e-9 ? 0 : value);
            }
            return ticks;
          }

          // One line per series, on one y axis; the min-max band only when one series is drawn.
          function drawChart(answers) {
            // The drawing is as wide as its box (in CSS pixels), so labels keep their size on a phone.
            const chart = $("chart");
            const W = Math.round(Math.max(320, Math.min(CHART_WIDTH, chart.clientWidth || CHART_WIDTH)));
            const H = W < 600 ? 240 : 340, left = 56, right = 16, top = 12, bottom = 32;
            const xTicks = W < 600 ? 2 : 4;
            chart.setAttribute("viewBox", "0 0 " + W + " " + H);
            state.chartWidth = W;
            const first = answers[0];
            const from = Number(first.from), to = Number(first.to), step = Number(first.step);
            const finite = (value) => typeof value === "number" && Number.isFinite(value);
            const drawn = answers.map((answer) => answer.buckets.filter((bucket) => finite(bucket.mean)));
            const bucketCount = answers.reduce((sum, answer) => sum + answer.buckets.length, 0);
            const pointCount = drawn.reduce((sum, points) => sum + points.length, 0);
            chart.dataset.buckets = String(bucketCount);
            chart.dataset.points = String(pointCount);
            chart.dataset.seriesCount = String(answers.length);
            chart.dataset.device = first.device;
            chart.dataset.series = answers.map((answer) => answer.series).join("\n");
            chart.dataset.from = String(first.from);
            chart.dataset.to = String(first.to);
            chart.dataset.step = String(first.step);
            const names = answers.length === 1 ? first.series : answers.length + " series";
            const title = names + " on " + first.device + ", " + utc(first.from) + " to " + utc(first.to);
            if (pointCount === 0) {
              clearChart();
              chart.dataset.buckets = String(bucketCount);
              chart.dataset.seriesCount = String(answers.length);
              showChartMessage("No readings in " + title + ".");
              return;
            }
            const band = answers.length === 1;
            let low = Infinity, high = -Infinity;
            for (const points of drawn) {
              for (const bucket of points) {
                low = Math.min(low, band && finite(bucket.min) ? bucket.min : bucket.mean);
                high = Math.max(high, band && finite(bucket.max) ? bucket.max : bucket.mean);
              }
            }
            if (low === high) { const pad = Math.abs(low) * 0.05 || 1; low -= pad; high += pad; }
            const x = (ns) => left + (ns + step / 2 - from) / (to - from) * (W - left - right);
            const y = (value) => top + (high - value) / (high - low) * (H - top - bottom);

            const nodes = [svg("title", { id: "chart-title" }, title)];
            for (const tick of niceTicks(low, high, 5)) {
              nodes.push(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(tick), y2: y(tick) }));
              nodes.push(svg("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, number(tick)));
            }
            const spanMs = (to - from) / 1e6;
            for (let index = 0; index <= xTicks; index += 1) {
              const ns = from + (to - from) * index / xTicks;
              const px = left + (W - left - right) * index / xTicks;
              nodes.push(svg("line", { class: "axis", x1: px, x2: px, y1: H - bottom, y2: H - bottom + 4 }));
              nodes.push(svg("text", { x: px, y: H - 10, "text-anchor": index === 0 ? "start" : index === xTicks ? "end"
                : "middle" }, tickLabel(ns / 1e6, spanMs)));
            }
            nodes.push(svg("line", { class: "axis", x1: left, x2: W - right, y1: H - bottom, y2: H - bottom }));

            state.points = [];
            const legend = [];
            answers.forEach((answer, number) => {
              const points = drawn[number];
              const color = "s" + (number % 8);
              // Runs of adjacent buckets are drawn as one line; a bucket without readings breaks the line.
              const runs = [];
              let previous = null;
              for (const bucket of points) {
                const index = Math.round((bucket.start - from) / step);
                if (previous === null || index !== previous + 1) runs.push([]);
                runs[runs.length - 1].push(bucket);
                previous = index;
              }
              let area = "", line = "";
              for (const run of runs) {
                const upper = run.map((b) => x(b.start).toFixed(1) + " " + y(finite(b.max) ? b.max : b.mean).toFixed(1));
                const lower = run.map((b) => x(b.start).toFixed(1) + " " + y(finite(b.min) ? b.min : b.mean).toFixed(1))
                  .reverse();
                area += "M" + upper.join("L") + "L" + lower.join("L") + "Z";
                line += run.map((b, i) => (i === 0 ? "M" : "L") + x(b.start).toFixed(1) + " " + y(b.mean).toFixed(1))
                  .join("");
              }
              if (band) nodes.push(svg("path", { class: "band", d: area }));
              nodes.push(svg("path", { class: "line " + color, d: line, "data-series": answer.series,
                "data-points": String(points.length), "data-buckets": String(answer.buckets.length) }));
              for (const run of runs.filter((r) => r.length === 1)) {
                nodes.push(svg("circle", { class: "dot " + color, cx: x(run[0].start), cy: y(run[0].mean), r: 3 }));
              }
              for (const bucket of points) state.points.push({ bucket, series: answer.series, px: x(bucket.start) });
              const entry = element("li", { class: color, "data-series": answer.series });
              entry.append(element("span", {}, answer.series + " (" + integer.format(points.length) + " buckets)"));
              legend.push(entry);
            });
            const cursor = svg("line", { class: "cursor", y1: top, y2: H - bottom, visibility: "hidden" });
            const selection = svg("rect", { class: "selection", y: top, height: H - top - bottom, x: 0, width: 0,
              visibility: "hidden" });
            nodes.push(cursor, selection);
            chart.replaceChildren(...nodes);
            $("legend").replaceChildren(...(answers.length > 1 ? legend : []));
            state.cursor = cursor;
            state.selection = selection;
            state.geometry = { left, right, W, from: BigInt(first.from), to: BigInt(first.to) };
            const skipped = bucketCount - pointCount;
            showChartMessage(title + ": " + integer.format(pointCount) + " buckets of "
              + duration(step / 1e9) + (band ? ", mean with min–max band" : ", mean of each series")
              + (skipped ? " (" + skipped + " buckets without a finite mean not drawn)" : "") + ".");
          }

          // Pointer position in the drawing's own units (the viewBox is as wide as the chart box).
          function chartX(event) {
            const box = $("chart").getBoundingClientRect();
            return (event.clientX - box.left) / box.width * state.chartWidth;
          }
          function showReadout(event) {
            if (!state.points.length) return;
            const px = chartX(event);
            let best = state.points[0];
            for (const point of state.points) if (Math.abs(point.px - px) < Math.abs(best.px - px)) best = point;
            state.cursor.setAttribute("x1", best.px);
            state.cursor.setAttribute("x2", best.px);
            state.cursor.setAttribute("visibility", "visible");
            const b = best.bucket;
            const at = state.points.filter((point) => point.bucket.start === b.start);
            $("readout").textContent = utc(b.start) + ": " + at.map((point) => (at.length > 1 || state.series.length > 1
              ? point.series + " " : "") + "mean " + number(point.bucket.mean) + ", min " + number(point.bucket.min)
              + ", max " + number(point.bucket.max) + ", " + integer.format(point.bucket.count) + " readings")
              .join("; ");
          }

          // Zoom: drag across the chart to choose a time range; "Zoom out" goes back one step.
          const MIN_DRAG = 6;
          function nsAt(px) {
            const g = state.geometry;
            const fraction = Math.min(1, Math.max(0, (px - g.left) / (g.W - g.left - g.right)));
            return g.from + BigInt(Math.round(Number(g.to - g.from) * fraction));
          }
          function startDrag(event) {
            showReadout(event);
            if (!state.geometry || event.button !== 0) return;
            state.drag = { start: chartX(event), end: chartX(event) };
            $("chart").setPointerCapture(event.pointerId);
          }
          function moveDrag(event) {
            showReadout(event);
            if (!state.drag) return;
            state.drag.end = chartX(event);
            const low = Math.min(state.drag.start, state.drag.end), high = Math.max(state.drag.start, state.drag.end);
            state.selection.setAttribute("x", low);
            state.selection.setAttribute("width", high - low);
            state.selection.setAttribute("visibility", high - low >= MIN_DRAG ? "visible" : "hidden");
          }
          function endDrag(event) {
            if (!state.drag) return;
            const drag = state.drag;
            state.drag = null;
            drag.end = chartX(event);
            state.selection.setAttribute("visibility", "hidden");
            if (Math.abs(drag.end - drag.start) < MIN_DRAG) return;
            const from = nsAt(Math.min(drag.start, drag.end)), to = nsAt(Math.max(drag.start, drag.end));
            if (to - from < 1000000n) return;  // under a millisecond: nothing to show
            zoomTo(msFloor(from), msCeil(to));
          }
          function zoomTo(from, to) {
            state.zooms.push({ range: state.range, from: state.from, to: state.to, step: state.step });
            state.range = "custom";
            state.from = String(from);
            state.to = String(to);
            state.step = "";
            $("range-choice").value = "custom";
            $("step-input").value = "";
            $("zoom-out").hidden = false;
            changed();
          }
          $("chart").addEventListener("pointermove", moveDrag);
          $("chart").addEventListener("pointerdown", startDrag);
          $("chart").addEventListener("pointerup", endDrag);
          $("chart").addEventListener("pointercancel", () => {
            state.drag = null;
            if (state.selection) state.selection.setAttribute("visibility", "hidden");
          });
          $("zoom-out").addEventListener("click", () => {
            const previous = state.zooms.pop();
            if (!previous) return;
            Object.assign(state, previous);
            $("range-choice").value = state.range;
            $("step-input").value = state.step;
            $("zoom-out").hidden = state.zooms.length === 0;
            changed();
          });

          // Refresh loop and errors
          function askForToken(reason) {
            state.token = null;
            sessionStorage.removeItem(TOKEN_KEY);
            $("token-reason").textContent = reason;
            $("token-form").hidden = false;
            document.body.dataset.state = "token";
            $("status").textContent = "Waiting for the operator token.";
            $("token-input").focus();
          }
          function showBanner(text) {
            $("banner").textContent = text;
            $("banner").hidden = text === null;
          }

          async function refresh() {
            if (state.paused) return;
            if (state.busy) { state.pending = true; return; }
            if (!state.token) {
              // Asked already (perhaps because the token was refused): keep that message.
              if ($("token-form").hidden) askForToken("The query API needs the operator token (kept in this tab only).");
              return;
            }
            state.busy = true;
            try {
              const [devices, series] = await Promise.all([api("/v1/devices"), api("/v1/series", { limit: "10000" })]);
              state.seriesList = series.series;
              renderDevices(devices);
              renderSeriesChoices();
              await refreshChart();
              state.offlineSince = null;
              showBanner(series.truncated ? "More than 10,000 series: the list shows the first 10,000." : null);
              state.refreshes += 1;
              document.body.dataset.refreshes = String(state.refreshes);
              document.body.dataset.state = "ready";
              $("status").textContent = "Updated " + new Date().toISOString().slice(11, 19) + " UTC, every "
                + REFRESH_MS / 1000 + " s.";
            } catch (error) {
              if (error.kind === "auth") {
                askForToken("The collector refused the token. Enter the operator token again.");
              } else if (error.kind === "network") {
                state.offlineSince = state.offlineSince || new Date();
                document.body.dataset.state = "offline";
                showBanner("Cannot reach the collector since " + state.offlineSince.toISOString().slice(11, 19)
                  + " UTC. Showing the last data received; retrying every " + REFRESH_MS / 1000 + " s.");
              } else {
                document.body.dataset.state = "error";
                showBanner("The collector answered: " + error.message);
              }
            } finally {
              state.busy = false;
            }
            // A choice made while this refresh ran is shown now rather than at the next tick.
            if (state.pending) { state.pending = false; refresh(); }
          }

          function changed() {
            writeFragment();
            state.points = [];
            refresh();
          }

          $("token-form").addEventListener("submit", (event) => {
            event.preventDefault();
            const token = $("token-input").value.trim();
            if (!token) return;
            state.token = token;
            sessionStorage.setItem(TOKEN_KEY, token);
            $("token-input").value = "";
            $("token-form").hidden = true;
            showBanner(null);
            refresh();
          });
          $("device-choice").addEventListener("change", (event) => {
            state.device = event.target.value;
            state.series = [];
            state.measurement = "";
            renderSeriesChoices();
            changed();
          });
          $("series-choice").addEventListener("change", (event) => {
            state.series = [...event.target.selectedOptions].map((option) => option.value).slice(0, MAX_SERIES);
            state.measurement = "";
            renderSeriesChoices();
            changed();
          });
          $("measurement-choice").addEventListener("change", (event) => {
            state.measurement = event.target.value;
            if (!state.measurement) state.series = state.series.slice(0, 1);
            renderSeriesChoices();
            changed();
          });
          $("range-choice").addEventListener("change", (event) => {
            state.range = event.target.value;
            if (state.range === "custom") {
              state.from = $("from-input").value;
              state.to = $("to-input").value;
            }
            changed();
          });
          $("chart-controls").addEventListener("submit", (event) => {
            event.preventDefault();
            state.from = $("from-input").value.trim();
            state.to = $("to-input").value.trim();
            state.step = $("step-input").value.trim();
            state.range = "custom";
            $("range-choice").value = "custom";
            document.activeElement.blur();
            changed();
          });
          $("pause").addEventListener("click", () => {
            state.paused = !state.paused;
            $("pause").setAttribute("aria-pressed", String(state.paused));
            $("pause").textContent = state.paused ? "Resume updates" : "Pause updates";
            if (state.paused) $("status").textContent = "Updates paused.";
            else refresh();
          });

          if (![...$("range-choice").options].some((option) => option.value === state.range)) state.range = "all";
          $("range-choice").value = state.range;
          $("step-input").value = state.step;
          refresh();
          setInterval(refresh, REFRESH_MS);
        })();

        """#
}
