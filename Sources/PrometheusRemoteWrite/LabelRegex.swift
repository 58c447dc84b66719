/// A regular expression for label matchers (`=~`, `!~`), matched against a whole value as
/// Prometheus does (`^(?:re)$`), in time linear in the value's length whatever the pattern.
///
/// The pattern is compiled to a Thompson NFA and run as a set of threads advancing together one
/// Unicode scalar at a time (a Pike VM without captures), so there is no backtracking: `(a+)+b`
/// against a long run of `a` costs the same as `a+b`. Work is at most the value's length times the
/// program's size, and the program is bounded by `maximumProgramSize`.
///
/// Syntax, an RE2 subset: literals; `.` (any scalar but newline); classes `[abc]`, `[a-z]`,
/// `[^…]`; escapes `\d \D \w \W \s \S \n \r \t` and `\` before any punctuation; groups `(…)` and
/// `(?:…)`; alternation `|`; `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}` (n, m ≤ 1000), each optionally
/// lazy (`*?`, which matches the same values); `^` and `$`. Flags (`(?i)`), named groups,
/// backreferences, lookaround, `\b`, `\p{…}` and POSIX classes are refused with an error that
/// says so, never misread.
package struct LabelRegex: Sendable {
    /// Most NFA instructions one pattern compiles to (a `{n,m}` repeat copies its body).
    package static let maximumProgramSize = 20_000
    /// Deepest nesting of groups.
    package static let maximumNesting = 100

    private let program: [Instruction]
    /// The pattern as written, for messages.
    package let pattern: String

    /// Why a pattern was refused: what and where (a scalar index into the pattern).
    package struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        package var offset: Int
        package var reason: String

        package var description: String { "regex: at character \(offset): \(reason)" }
    }

    package init(_ pattern: String) throws(Error) {
        self.pattern = pattern
        var parser = Parser(Array(pattern.unicodeScalars))
        let node = try parser.parseAll()
        var compiler = Compiler()
        try compiler.emit(node)
        compiler.program.append(.match)
        guard compiler.program.count <= Self.maximumProgramSize else { throw Compiler.tooLarge }
        program = compiler.program
    }

    /// Instructions the last `matches` call stepped through; the benchmark and the tests' bound on work.
    package func matches(_ value: String) -> Bool {
        var steps = 0
        return matches(value, steps: &steps)
    }

    /// Whether the whole of `value` matches; `steps` counts thread steps, at most
    /// `(scalars + 1) * program size`.
    package func matches(_ value: String, steps: inout Int) -> Bool {
        let count = program.count
        var current = ThreadList(capacity: count)
        var next = ThreadList(capacity: count)
        var stack: [Int] = []
        let scalars = Array(value.unicodeScalars)
        add(0, at: 0, of: scalars.count, to: &current, stack: &stack, steps: &steps)
        for index in 0...scalars.count {
            if current.isEmpty { return false }
            let scalar: Unicode.Scalar? = index < scalars.count ? scalars[index] : nil
            next.clear()
            for slot in 0..<current.count {
                let pc = current.members[slot]
                steps += 1
                switch program[pc] {
                case .match:
                    if scalar == nil { return true }
                case .scalars(let set):
                    if let scalar, set.contains(scalar) {
                        add(pc + 1, at: index + 1, of: scalars.count, to: &next, stack: &stack, steps: &steps)
                    }
                case .split, .jump, .assertStart, .assertEnd:
                    break  // followed by `add`; never on a list
                }
            }
            swap(&current, &next)
        }
        return false
    }

    /// Adds the thread at `pc` and every thread reachable from it without consuming a scalar.
    private func add(
        _ pc: Int, at position: Int, of length: Int, to list: inout ThreadList, stack: inout [Int], steps: inout Int
    ) {
        stack.removeAll(keepingCapacity: true)
        stack.append(pc)
        while let top = stack.popLast() {
            guard list.insert(top) else { continue }
            steps += 1
            switch program[top] {
            case .jump(let target): stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .assertStart: if position == 0 { stack.append(top + 1) }
            case .assertEnd: if position == length { stack.append(top + 1) }
            case .scalars, .match: break
            }
        }
    }

    // MARK: Program

    enum Instruction: Sendable {
        case scalars(ScalarSet)
        case split(Int, Int)
        case jump(Int)
        case assertStart
        case assertEnd
        case match
    }

    /// A sparse set of program counters, cleared in O(1).
    private struct ThreadList {
        var members: [Int]
        var index: [Int]
        var count = 0
        var isEmpty: Bool { count == 0 }

        init(capacity: Int) {
            members = [Int](repeating: 0, count: capacity)
            index = [Int](repeating: 0, count: capacity)
        }

        mutating func clear() { count = 0 }

        /// Inserts `pc`; false when it was there already.
        mutating func insert(_ pc: Int) -> Bool {
            let slot = index[pc]
            if slot < count, members[slot] == pc { return false }
            index[pc] = count
            members[count] = pc
            count += 1
            return true
        }
    }

    /// Scalar ranges, sorted, possibly negated.
    struct ScalarSet: Sendable {
        var ranges: [ClosedRange<UInt32>]
        var negated: Bool

        func contains(_ scalar: Unicode.Scalar) -> Bool {
            let value = scalar.value
            var found = false
            for range in ranges where range.contains(value) {
                found = true
                break
            }
            return found != negated
        }

        static func single(_ scalar: Unicode.Scalar) -> ScalarSet {
            ScalarSet(ranges: [scalar.value...scalar.value], negated: false)
        }

        static let digits: [ClosedRange<UInt32>] = [0x30...0x39]
        static let word: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
        static let space: [ClosedRange<UInt32>] = [0x09...0x0A, 0x0C...0x0D, 0x20...0x20]
        static let anyButNewline = ScalarSet(ranges: [0x0A...0x0A], negated: true)
    }

    indirect enum Node {
        case empty
        case scalars(ScalarSet)
        case concatenation([Node])
        case alternation([Node])
        case repetition(Node, minimum: Int, maximum: Int?)
        case assertStart
        case assertEnd
    }

    // MARK: Parsing

    struct Parser {
        let scalars: [Unicode.Scalar]
        var position = 0
        var depth = 0

        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        func error(_ reason: String, at offset: Int? = nil) -> Error {
            Error(offset: offset ?? position, reason: reason)
        }

        var peek: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

        mutating func parseAll() throws(Error) -> Node {
            let node = try parseAlternation()
            if position < scalars.count {
                throw error("unmatched \")\"")
            }
            return node
        }

        mutating func parseAlternation() throws(Error) -> Node {
            var branches = [try parseConcatenation()]
            while peek == "|" {
                position += 1
                branches.append(try parseConcatenation())
            }
            return branches.count == 1 ? branches[0] : .alternation(branches)
        }

        mutating func parseConcatenation() throws(Error) -> Node {
            var items: [Node] = []
            while let scalar = peek, scalar != "|", scalar != ")" {
                var atom = try parseAtom()
                var quantified = false
                while let quantifier = peek, "*+?{".unicodeScalars.contains(quantifier) {
                    if quantifier == "{", !looksLikeCount() { break }
                    // As in Go's regexp: `a**` and `a+{2}` are mistakes, not nested repeats.
                    if quantified { throw error("a quantifier follows another quantifier") }
                    quantified = true
                    if case .assertStart = atom { throw error("a quantifier after \"^\" repeats nothing") }
                    if case .assertEnd = atom { throw error("a quantifier after \"$\" repeats nothing") }
                    let start = position
                    position += 1
                    let (minimum, maximum): (Int, Int?)
                    switch quantifier {
                    case "*": (minimum, maximum) = (0, nil)
                    case "+": (minimum, maximum) = (1, nil)
                    case "?": (minimum, maximum) = (0, 1)
                    default: (minimum, maximum) = try parseCount(from: start)
                    }
                    if peek == "?" { position += 1 }  // lazy: the same set of matching values
                    atom = .repetition(atom, minimum: minimum, maximum: maximum)
                }
                items.append(atom)
            }
            switch items.count {
            case 0: return .empty
            case 1: return items[0]
            default: return .concatenation(items)
            }
        }

        /// `{` starts a counted repeat only as `{n}`, `{n,}` or `{n,m}`; otherwise it is a literal (as in RE2).
        func looksLikeCount() -> Bool {
            var index = position + 1
            var digits = 0
            while index < scalars.count, ("0"..."9").contains(scalars[index]) {
                index += 1
                digits += 1
            }
            guard digits > 0, index < scalars.count else { return false }
            if scalars[index] == "}" { return true }
            guard scalars[index] == "," else { return false }
            index += 1
            while index < scalars.count, ("0"..."9").contains(scalars[index]) { index += 1 }
            return index < scalars.count && scalars[index] == "}"
        }

        mutating func parseCount(from start: Int) throws(Error) -> (Int, Int?) {
            func number(_ parser: inout Parser) throws(Error) -> Int? {
                var value = 0
                var any = false
                while let scalar = parser.peek, ("0"..."9").contains(scalar) {
                    value = value * 10 + Int(scalar.value - 0x30)
                    if value > 1000 { throw parser.error("a repeat count is above 1000", at: start) }
                    parser.position += 1
                    any = true
                }
                return any ? value : nil
            }
            // looksLikeCount checked the shape.
            let minimum = try number(&self) ?? 0
            var maximum: Int? = minimum
            if peek == "," {
                position += 1
                maximum = try number(&self)
            }
            position += 1  // "}"
            if let maximum, maximum < minimum {
                throw error("repeat {\(minimum),\(maximum)} has its maximum below its minimum", at: start)
            }
            return (minimum, maximum)
        }

        mutating func parseAtom() throws(Error) -> Node {
            let start = position
            guard let scalar = peek else { throw error("the pattern ends where an expression was expected") }
            position += 1
            switch scalar {
            case "(":
                if peek == "?" {
                    guard position + 1 < scalars.count, scalars[position + 1] == ":" else {
                        throw error(
                            "flags and named groups (\"(?\") are not supported; only (?:…) groups", at: start)
                    }
                    position += 2
                }
                depth += 1
                guard depth <= LabelRegex.maximumNesting else {
                    throw error("groups are nested more than \(LabelRegex.maximumNesting) deep", at: start)
                }
                let inner = try parseAlternation()
                guard peek == ")" else { throw error("missing \")\" for the group opened here", at: start) }
                position += 1
                depth -= 1
                return inner
            case ")": throw error("unmatched \")\"", at: start)
            case "*", "+", "?": throw error("\"\(scalar)\" repeats nothing", at: start)
            case ".": return .scalars(.anyButNewline)
            case "^": return .assertStart
            case "$": return .assertEnd
            case "[": return .scalars(try parseClass(from: start))
            case "\\": return .scalars(try parseEscape(from: start, inClass: false))
            default: return .scalars(.single(scalar))
            }
        }

        mutating func parseEscape(from start: Int, inClass: Bool) throws(Error) -> ScalarSet {
            guard let scalar = peek else { throw error("the pattern ends after \"\\\"", at: start) }
            position += 1
            switch scalar {
            case "d": return ScalarSet(ranges: ScalarSet.digits, negated: false)
            case "D": return ScalarSet(ranges: ScalarSet.digits, negated: true)
            case "w": return ScalarSet(ranges: ScalarSet.word, negated: false)
            case "W": return ScalarSet(ranges: ScalarSet.word, negated: true)
            case "s": return ScalarSet(ranges: ScalarSet.space, negated: false)
            case "S": return ScalarSet(ranges: ScalarSet.space, negated: true)
            case "n": return .single("\n")
            case "r": return .single("\r")
            case "t": return .single("\t")
            case "f": return .single("\u{0C}")
            case "v": return .single("\u{0B}")
            default:
                // Only punctuation may be escaped to mean itself: \b, \p, \1, \x… mean something
                // else in RE2 and are refused rather than read as letters.
                guard scalar.isASCII, !("0"..."9").contains(scalar), !("a"..."z").contains(scalar),
                    !("A"..."Z").contains(scalar), scalar.value > 0x20
                else {
                    throw error("the escape \"\\\(scalar)\" is not supported", at: start)
                }
                return .single(scalar)
            }
        }

        mutating func parseClass(from start: Int) throws(Error) -> ScalarSet {
            var set = ScalarSet(ranges: [], negated: false)
            if peek == "^" {
                set.negated = true
                position += 1
            }
            var first = true
            while true {
                guard let scalar = peek else { throw error("missing \"]\" for the class opened here", at: start) }
                if scalar == "]", !first {
                    position += 1
                    break
                }
                first = false
                if scalar == "[", position + 1 < scalars.count, scalars[position + 1] == ":" {
                    throw error("POSIX classes ([:alpha:]) are not supported")
                }
                let itemStart = position
                position += 1
                var low: Unicode.Scalar = scalar
                if scalar == "\\" {
                    let escaped = try parseEscape(from: itemStart, inClass: true)
                    guard !escaped.negated, escaped.ranges.count == 1, escaped.ranges[0].count == 1,
                        let single = Unicode.Scalar(escaped.ranges[0].lowerBound)
                    else {
                        // \d, \w, \s and their negations inside a class.
                        if escaped.negated {
                            throw error(
                                "negated escapes (\\D, \\W, \\S) inside a class are not supported", at: itemStart)
                        }
                        set.ranges += escaped.ranges
                        continue
                    }
                    low = single
                }
                // A range "a-z", unless the "-" is last ("[a-]").
                if peek == "-", position + 1 < scalars.count, scalars[position + 1] != "]" {
                    position += 1
                    guard var high = peek else { throw error("missing \"]\" for the class opened here", at: start) }
                    let highStart = position
                    position += 1
                    if high == "\\" {
                        let escaped = try parseEscape(from: highStart, inClass: true)
                        guard !escaped.negated, escaped.ranges.count == 1, escaped.ranges[0].count == 1,
                            let single = Unicode.Scalar(escaped.ranges[0].lowerBound)
                        else { throw error("a class range ends in a class escape", at: highStart) }
                        high = single
                    }
                    guard low.value <= high.value else {
                        throw error("the class range \(low)-\(high) is backwards", at: itemStart)
                    }
                    set.ranges.append(low.value...high.value)
                } else {
                    set.ranges.append(low.value...low.value)
                }
            }
            guard set.ranges.count <= 1000 else { throw error("a class has more than 1000 items", at: start) }
            return set
        }
    }

    // MARK: Compiling

    struct Compiler {
        var program: [Instruction] = []

        static let tooLarge = Error(
            offset: 0,
            reason:
                "the pattern compiles to more than \(LabelRegex.maximumProgramSize) instructions; use smaller repeat counts"
        )

        mutating func append(_ instruction: Instruction) throws(Error) -> Int {
            guard program.count < LabelRegex.maximumProgramSize else { throw Self.tooLarge }
            program.append(instruction)
            return program.count - 1
        }

        mutating func emit(_ node: Node) throws(Error) {
            switch node {
            case .empty: break
            case .scalars(let set): _ = try append(.scalars(set))
            case .assertStart: _ = try append(.assertStart)
            case .assertEnd: _ = try append(.assertEnd)
            case .concatenation(let items):
                for item in items { try emit(item) }
            case .alternation(let branches):
                // split L1, next; L1: branch; jump end; next: split L2, … ; last branch
                var jumps: [Int] = []
                for (index, branch) in branches.enumerated() {
                    if index == branches.count - 1 {
                        try emit(branch)
                    } else {
                        let split = try append(.split(0, 0))
                        try emit(branch)
                        jumps.append(try append(.jump(0)))
                        program[split] = .split(split + 1, program.count)
                    }
                }
                for jump in jumps { program[jump] = .jump(program.count) }
            case .repetition(let body, let minimum, let maximum):
                for _ in 0..<minimum { try emit(body) }
                if let maximum {
                    // Each optional copy: split body, end. All exits patched to the end.
                    var splits: [Int] = []
                    for _ in minimum..<maximum {
                        splits.append(try append(.split(0, 0)))
                        try emit(body)
                    }
                    for split in splits { program[split] = .split(split + 1, program.count) }
                } else {
                    // loop: split body, end; body; jump loop
                    let split = try append(.split(0, 0))
                    try emit(body)
                    _ = try append(.jump(split))
                    program[split] = .split(split + 1, program.count)
                }
            }
        }
    }
}
