import EdgeSyncTestSupport
import Foundation
import Testing

/// Debian's headless Chromium, run as a child process with a time limit, for the dashboard tests.
enum Chromium {
    /// The `chromium` executable on `PATH`, or `nil` (the tests that need it are then skipped).
    static let path: String? = {
        let found = executableOnPath("chromium")?.path
        if found == nil { print("DashboardBrowserTests skipped: \(missingReason)") }
        return found
    }()

    static let missingReason: Comment =
        "chromium is not installed (apt-get install chromium); the dashboard is not tested in a browser"

    /// How long one Chromium run may take before it is killed and the test fails.
    static let timeLimit = Duration.seconds(60)

    /// The package checkout, found from this file's path; the screenshot goes to its `.build/`.
    static var packageDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// Loads `url`, lets the page run for `virtualTimeMilliseconds` of virtual time (timers fire at
    /// once, network waits pause the clock), and returns the DOM it ended with.
    static func dumpDOM(_ url: String, scratch: String, virtualTimeMilliseconds: Int = 10_000) async throws
        -> DOMSnapshot
    {
        let output = try await run(["--virtual-time-budget=\(virtualTimeMilliseconds)", "--dump-dom", url], scratch)
        guard output.status == 0, output.stdout.contains("</html>") else {
            throw ChildProcess.Failure("chromium --dump-dom failed (\(output.status)): \(output.stderr)")
        }
        return DOMSnapshot(html: output.stdout)
    }

    /// Saves a 1280×900 PNG of `url` to `file`.
    static func screenshot(_ url: String, to file: String, scratch: String) async throws {
        try FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let output = try await run(
            [
                "--virtual-time-budget=10000", "--hide-scrollbars", "--window-size=1280,900", "--screenshot=\(file)",
                url,
            ],
            scratch)
        guard output.status == 0 else {
            throw ChildProcess.Failure("chromium --screenshot failed (\(output.status)): \(output.stderr)")
        }
    }

    /// Runs Chromium with a fresh profile under `scratch`; kills it after `timeLimit`.
    private static func run(_ arguments: [String], _ scratch: String) async throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        guard let path else { throw ChildProcess.Failure("\(missingReason)") }
        let profile = scratch + "/chromium-\(UUID().uuidString)"
        let child = try ChildProcess(
            URL(fileURLWithPath: path),
            [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                "--user-data-dir=\(profile)",
            ] + arguments,
            environment: ["HOME": scratch])
        let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                _ = await child.waitForExit()
                await child.waitForOutputToClose()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeLimit)
                return false
            }
            let first = try await group.next() ?? false
            if !first {
                child.kill()
            }
            group.cancelAll()
            return first
        }
        guard finished else {
            throw ChildProcess.Failure("chromium ran longer than \(timeLimit) and was killed")
        }
        return (await child.waitForExit(), child.stdoutText, child.stderrLines.joined(separator: "\n"))
    }
}

/// Just enough reading of Chromium's serialised DOM for the tests: elements by tag, with their
/// attributes and text. The page is ours, so no element the tests read nests inside one of its kind.
struct DOMSnapshot {
    struct Element {
        var attributes: [String: String]
        var text: String
    }

    let html: String

    /// Every `<tag …>…</tag>` (or start tag alone, for elements without an end tag), in order.
    func elements(tag: String) -> [Element] {
        var result: [Element] = []
        var rest = html[...]
        while let open = rest.range(of: "<\(tag)", options: .caseInsensitive) {
            let afterName = rest[open.upperBound...]
            guard let next = afterName.first, next == ">" || next == " " || next == "\n",
                let headEnd = afterName.firstIndex(of: ">")
            else {
                rest = afterName
                continue
            }
            let attributes = Self.attributes(afterName[..<headEnd])
            let content = afterName[afterName.index(after: headEnd)...]
            let close = content.range(of: "</\(tag)>", options: .caseInsensitive)
            let inner = close.map { content[..<$0.lowerBound] } ?? ""
            result.append(Element(attributes: attributes, text: Self.text(inner)))
            rest = close.map { content[$0.upperBound...] } ?? content
        }
        return result
    }

    /// The attributes of the first `tag` element (empty when there is none).
    func attributes(of tag: String) -> [String: String] {
        elements(tag: tag).first?.attributes ?? [:]
    }

    private static func attributes(_ head: Substring) -> [String: String] {
        var result: [String: String] = [:]
        var rest = head
        while true {
            rest = rest.drop { $0 == " " || $0 == "\n" || $0 == "/" }
            guard !rest.isEmpty else { return result }
            let name = rest.prefix { $0 != "=" && $0 != " " && $0 != "\n" }
            rest = rest.dropFirst(name.count)
            guard rest.hasPrefix("=\"") else {
                result[name.lowercased()] = ""
                continue
            }
            rest = rest.dropFirst(2)
            let value = rest.prefix { $0 != "\"" }
            result[name.lowercased()] = unescape(value)
            rest = rest.dropFirst(value.count + 1)
        }
    }

    /// Text without tags, entities resolved.
    private static func text(_ markup: Substring) -> String {
        var text = ""
        var isInTag = false
        for character in markup {
            if character == "<" {
                isInTag = true
            } else if character == ">" {
                isInTag = false
            } else if !isInTag {
                text.append(character)
            }
        }
        return unescape(text[...])
    }

    private static func unescape(_ text: Substring) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&nbsp;", with: "\u{A0}")
            .replacingOccurrences(of: "&#39;", with: "'").replacingOccurrences(of: "&amp;", with: "&")
    }
}
