import EdgeSyncTestSupport
import Foundation
import PrometheusRemoteWrite
import Testing

/// The label matcher regex: whole-value matching, the RE2 subset it accepts, what it refuses and
/// why, agreement with Foundation's regex engine on random patterns, and work bounded by
/// value length × program size on patterns that make backtracking engines take exponential time.
struct LabelRegexTests {
    func matches(_ pattern: String, _ value: String) throws -> Bool {
        try LabelRegex(pattern).matches(value)
    }

    @Test(arguments: [
        ("abc", "abc", true), ("abc", "abcd", false), ("abc", "xabc", false), ("a.c", "a-c", true),
        ("a.c", "a\nc", false), (".*", "", true), (".+", "", false), ("a|b|cd", "cd", true), ("a|b|cd", "c", false),
        ("gw-(1|2)", "gw-2", true), ("gw-(?:1|2)+", "gw-1212", true), ("[a-c]+x", "abcx", true),
        ("[^a-c]+", "def", true), ("[^a-c]+", "dax", false), ("[a-]", "-", true), ("[]a]", "]", true),
        (#"\d{2,3}"#, "123", true), (#"\d{2,3}"#, "1234", false), (#"\d{2}"#, "12", true), (#"\d{2,}"#, "12345", true),
        (#"\w+\s\S"#, "ab_9 x", true), (#"\D"#, "5", false), (#"\."#, ".", true), (#"\."#, "x", false),
        ("a{,2}", "a{,2}", true), ("x{", "x{", true), ("a*?b", "aab", true), ("^ab$", "ab", true), ("a^b", "ab", false),
        ("", "", true), ("", "a", false), ("(|a)b", "b", true), ("é+", "éé", true), ("[à-ÿ]", "é", true),
        ("(a*)*", "aaaa", true), ("(a?){3}a{3}", "aaa", true), (#"[\d.]+"#, "1.5", true),
    ])
    func matchesTheWholeValue(pattern: String, value: String, expected: Bool) throws {
        #expect(try matches(pattern, value) == expected)
    }

    @Test(arguments: [
        "(", ")", "a)", "(?i)abc", "(?P<n>a)", "*a", "a**", "[abc", #"\b"#, #"\p{L}"#, #"\1"#, "[[:alpha:]]",
        "a{1001}", "a{3,2}", "[z-a]", #"a\"#, "(a{1000}){1000}",
        String(repeating: "(", count: 200) + "a"
            + String(repeating: ")", count: 200),
    ])
    func unsupportedOrBrokenPatternsAreRefusedWithAReason(pattern: String) {
        #expect(throws: LabelRegex.Error.self) { try LabelRegex(pattern) }
    }

    /// Patterns that take exponential time in a backtracking engine take linear time here: the
    /// thread steps never exceed (value length + 1) × program size.
    @Test(arguments: ["(a+)+b", "(a|aa)+b", "(a*)*b", "(a|a)*b", "(.*a){20}", "(x+x+)+y", "((a+)+)+$b"])
    func backtrackingBombsTakeBoundedWork(pattern: String) throws {
        let regex = try LabelRegex(pattern)
        let value = String(repeating: "a", count: 4096)
        var steps = 0
        #expect(!regex.matches(value, steps: &steps) || pattern == "(.*a){20}")
        #expect(steps <= (value.unicodeScalars.count + 1) * 3 * LabelRegex.maximumProgramSize)
        // Concretely small: a few hundred instructions at most for these patterns.
        #expect(steps <= (value.count + 1) * 400)
    }

    /// Random patterns over a small alphabet agree with NSRegularExpression (anchored) on random values.
    @Test func agreesWithFoundationOnRandomPatterns() throws {
        var random = SeededRandom(seed: 2026)
        let atoms = ["a", "b", ".", "[ab]", "[^a]", "(a|b)", "(?:ab)", "(a|)", #"\d"#, "1"]
        let quantifiers = ["", "", "*", "+", "?", "{2}", "{1,2}", "{0,}"]
        var compared = 0
        for _ in 0..<400 {
            let pattern = (0..<Int.random(in: 1...4, using: &random)).map { _ in
                atoms.randomElement(using: &random)! + quantifiers.randomElement(using: &random)!
            }.joined(separator: Bool.random(using: &random) ? "" : "|")
            let foundation = try NSRegularExpression(pattern: "^(?:" + pattern + ")$")
            let regex = try LabelRegex(pattern)
            for _ in 0..<10 {
                let value = String(
                    (0..<Int.random(in: 0...6, using: &random)).map { _ in "ab1x".randomElement(using: &random)! })
                let range = NSRange(value.startIndex..., in: value)
                let expected = foundation.firstMatch(in: value, range: range) != nil
                #expect(regex.matches(value) == expected, "pattern \(pattern) value \(value)")
                compared += 1
            }
        }
        #expect(compared == 4000)
    }
}
