import EdgeSyncCodec
import EdgeSyncProtocol

/// Readings dropped, flagged, reduced and emitted by one rule.
package struct ProcessingCounts: Sendable, Hashable {
    /// Readings removed: invalid (`validate` with `drop`) or of a dropped series (`drop`).
    package var dropped: Int64 = 0
    /// Invalid readings kept in a flagged sibling series (`validate` with `flag`).
    package var flagged: Int64 = 0
    /// Readings a `deadband` or `downsample` rule did not store as themselves.
    package var reduced: Int64 = 0
    /// Readings a `downsample` rule made (one per window and aggregate).
    package var emitted: Int64 = 0
    /// Readings the rule matched and passed on as themselves: valid ones (`validate`), stored ones
    /// (`deadband`), converted or rounded ones (`convert`, `error_bound`), late or non-finite ones
    /// a `downsample` lets through. Aggregates an earlier downsample made count at later rules.
    package var kept: Int64 = 0

    package init(dropped: Int64 = 0, flagged: Int64 = 0, reduced: Int64 = 0, emitted: Int64 = 0, kept: Int64 = 0) {
        self.dropped = dropped
        self.flagged = flagged
        self.reduced = reduced
        self.emitted = emitted
        self.kept = kept
    }

    package var isZero: Bool { dropped == 0 && flagged == 0 && reduced == 0 && emitted == 0 && kept == 0 }

    package static func += (lhs: inout ProcessingCounts, rhs: ProcessingCounts) {
        lhs.dropped += rhs.dropped
        lhs.flagged += rhs.flagged
        lhs.reduced += rhs.reduced
        lhs.emitted += rhs.emitted
        lhs.kept += rhs.kept
    }
}

/// The processing rules compiled, with the state the reducing rules keep per series. A pure value:
/// no I/O, no clock (the caller passes `now`), no locks (`ProcessingSink` owns one under a mutex).
///
/// Each series key is compiled once into a plan (its output keys and the steps its readings go
/// through) and cached by key; a series no rule touches is cached as "unchanged", and a write whose
/// series are all unchanged is handed back as it came, after one dictionary lookup per distinct
/// series. The cache holds at most `capacity` series (the spool's series limit): past it, every
/// entry is forgotten at the end of a write, pending downsample windows emitted first, so memory
/// stays bounded whatever the producers send.
package struct ProcessingEngine: Sendable {
    package let rules: [ProcessingRule]
    package let capacity: Int
    private var cache: [ExactString: Int32] = [:]
    private var slots: [Slot] = []
    /// Changes whenever the cache is cleared; undo records of an older epoch are void.
    private var epoch = 0
    /// Numbers each `process` call, so per-slot scratch data is reset lazily.
    private var generation = 0

    /// What processing a write produced.
    package struct Output: Sendable {
        /// True when nothing changed: store the write as it came (`seriesKeys` and `readings` are empty).
        package var isUnchanged = false
        package var seriesKeys: [String] = []
        package var readings: [Reading] = []
        /// Per rule (indexes of `rules`), what this write did; add them up once it is stored.
        package var counts: [ProcessingCounts] = []
        /// Hands back the reducers' state if the write is not stored (`restore(_:)`).
        package var undo = Undo()
    }

    /// The reducer state a write changed, as it was before.
    package struct Undo: Sendable {
        fileprivate var epoch = 0
        fileprivate var entries: [(slot: Int32, version: UInt64, states: [ReducerState])] = []
        package var isEmpty: Bool { entries.isEmpty }
    }

    fileprivate enum ReducerState: Sendable {
        case deadband(Held?)
        case downsample(Window?)
    }

    fileprivate struct Held: Sendable {
        var value: Double
        var time: Int64
    }

    fileprivate struct Window: Sendable {
        var start: Int64
        var count: Int
        var sum: Double
        var minimum: Double
        var minimumTime: Int64
        var maximum: Double
        var maximumTime: Int64
        var last: Double
        var lastTime: Int64
        /// The caller's clock when the window last took a reading (for `flush(idleBefore:)`).
        var arrival: Int64
    }

    fileprivate enum Step: Sendable {
        case validate(rule: Int, ProcessingRule.Validation, flagKey: Int)
        case linear(rule: Int, scale: Double, offset: Double)
        case quantize(rule: Int, exponent: Int, bound: Double)
        /// A `convert` that only renames: counts what passes it.
        case pass(rule: Int)
        case deadband(rule: Int, ProcessingRule.Deadband, state: Int)
        /// `keys`: the plan's key index per aggregate.
        case downsample(
            rule: Int, window: Int64, aggregates: [ProcessingRule.Downsample.Aggregate], keys: [Int], state: Int)
    }

    fileprivate struct Plan: Sendable {
        /// `keys[0]` is the series' key after the rules; flagged and aggregate series follow.
        var keys: [String]
        /// The rule that drops every reading of the series.
        var droppedBy: Int?
        var steps: [Step]
        var hasReducers: Bool
    }

    fileprivate struct Slot: Sendable {
        var plan: Plan
        var states: [ReducerState]
        var version: UInt64 = 0
        /// This write's output index per plan key (valid when `generation` is the engine's).
        var outputs: [Int] = []
        var generation = -1
        var undoGeneration = -1
    }

    package init(rules: [ProcessingRule], capacity: Int = 100_000) {
        self.rules = rules
        self.capacity = max(1, capacity)
    }

    /// Series the cache holds now.
    package var cachedSeries: Int { cache.count }

    // MARK: Compiling

    /// The plan of `key`, or nil when no rule changes anything about it.
    private func compile(_ key: String) -> (plan: Plan, states: [ReducerState])? {
        guard !rules.isEmpty, var name = SeriesName(key: key) else { return nil }
        var steps: [Step] = []
        var states: [ReducerState] = []
        var renamed = false
        var flagRules: [(rule: Int, tag: String)] = []
        var downsampleRules: [(stepIndex: Int, aggregates: [ProcessingRule.Downsample.Aggregate])] = []
        for (index, rule) in rules.enumerated() where rule.match.matches(name) {
            switch rule.action {
            case .drop:
                return (Plan(keys: [key], droppedBy: index, steps: [], hasReducers: false), [])
            case .validate(let validation):
                var flagKey = 0
                if case .flag(let tag) = validation.action {
                    flagRules.append((index, tag))
                    flagKey = flagRules.count  // resolved below, after the key is final
                }
                // `flagKey` says what to do with an invalid reading; without the tag's string the
                // step holds no reference, so reading it per reading retains nothing.
                var check = validation
                check.action = .drop
                steps.append(.validate(rule: index, check, flagKey: flagKey))
            case .convert(let conversion):
                name.apply(conversion)
                renamed = true
                steps.append(
                    conversion.changesValues
                        ? .linear(rule: index, scale: conversion.scale, offset: conversion.offset) : .pass(rule: index))
            case .errorBound(let bound):
                steps.append(.quantize(rule: index, exponent: ErrorBound.exponent(for: bound), bound: bound))
            case .deadband(let deadband):
                steps.append(.deadband(rule: index, deadband, state: states.count))
                states.append(.deadband(nil))
            case .downsample(let downsample):
                downsampleRules.append((steps.count, downsample.aggregates))
                steps.append(
                    .downsample(
                        rule: index, window: downsample.window, aggregates: downsample.aggregates, keys: [],
                        state: states.count))
                states.append(.downsample(nil))
            }
        }
        guard !steps.isEmpty || renamed else { return nil }
        let final = name.key
        var keys = [final]
        for (rule, tag) in flagRules {
            var flagged = name
            flagged.setTag(tag, rules[rule].name)
            keys.append(flagged.key)
        }
        for (stepIndex, aggregates) in downsampleRules {
            guard case .downsample(let rule, let window, _, _, let state) = steps[stepIndex] else { continue }
            var aggregateKeys: [Int] = []
            if aggregates.count == 1 {
                aggregateKeys = [0]
            } else {
                for aggregate in aggregates {
                    var forked = name
                    forked.field += "_" + aggregate.rawValue
                    aggregateKeys.append(keys.count)
                    keys.append(forked.key)
                }
            }
            steps[stepIndex] = .downsample(
                rule: rule, window: window, aggregates: aggregates, keys: aggregateKeys, state: state)
        }
        // Only renames that leave the key as it was: nothing to do, nothing to count.
        if steps.allSatisfy({ if case .pass = $0 { true } else { false } }), final.utf8.elementsEqual(key.utf8) {
            return nil
        }
        return (Plan(keys: keys, droppedBy: nil, steps: steps, hasReducers: !states.isEmpty), states)
    }

    // MARK: Processing

    /// Applies the rules to one write (`readings` index `seriesKeys`); `now` is the caller's clock in
    /// nanoseconds since the epoch, for timestamp validation and idle windows.
    package mutating func process(seriesKeys: [String], readings: [Reading], now: Int64) -> Output {
        generation &+= 1
        var local = [Int32](repeating: -1, count: seriesKeys.count)
        var isUnchanged = true
        for (index, key) in seriesKeys.enumerated() {
            let exact = ExactString(key)
            if let slot = cache[exact] {
                local[index] = slot
                if slot >= 0 { isUnchanged = false }
                continue
            }
            var slot: Int32 = -1
            if let (plan, states) = compile(key) {
                slot = Int32(slots.count)
                slots.append(Slot(plan: plan, states: states))
                isUnchanged = false
            }
            cache[exact] = slot
            local[index] = slot
        }
        var output = Output()
        if isUnchanged, cache.count <= capacity {
            output.isUnchanged = true
            return output
        }
        var builder = Builder(ruleCount: rules.count, generation: generation)
        builder.undo.epoch = epoch
        builder.readings.reserveCapacity(readings.count)
        var unchangedOutput = [Int](repeating: -1, count: seriesKeys.count)
        for reading in readings {
            let slot = local[reading.series]
            if slot < 0 {
                var target = unchangedOutput[reading.series]
                if target < 0 {
                    target = builder.output(for: seriesKeys[reading.series])
                    unchangedOutput[reading.series] = target
                }
                builder.readings.append(Reading(series: target, timestamp: reading.timestamp, value: reading.value))
                continue
            }
            let index = Int(slot)
            if let rule = slots[index].plan.droppedBy {
                builder.counts[rule].dropped += 1
                continue
            }
            if slots[index].plan.hasReducers, slots[index].undoGeneration != generation {
                slots[index].undoGeneration = generation
                builder.undo.entries.append((slot, 0, slots[index].states))
            }
            run(slot: index, from: 0, time: reading.timestamp, value: reading.value, key: 0, now: now, into: &builder)
        }
        for entry in builder.undo.entries.indices {
            let slot = Int(builder.undo.entries[entry].slot)
            slots[slot].version &+= 1
            builder.undo.entries[entry].version = slots[slot].version
        }
        if cache.count > capacity { evictAll(into: &builder) }
        output.seriesKeys = builder.keys
        output.readings = builder.readings
        output.counts = builder.counts
        output.undo = builder.undo
        return output
    }

    /// Puts the reducer state of a write that was not stored back as it was, where no later write
    /// changed it since; where one did, deadbands forget their held value (the next reading is
    /// stored), so the promise holds for what is stored.
    package mutating func restore(_ undo: Undo) {
        guard undo.epoch == epoch else { return }
        for entry in undo.entries {
            let slot = Int(entry.slot)
            guard slot < slots.count else { continue }
            if slots[slot].version == entry.version {
                slots[slot].states = entry.states
            } else {
                for state in slots[slot].states.indices {
                    if case .deadband = slots[slot].states[state] { slots[slot].states[state] = .deadband(nil) }
                }
            }
            slots[slot].version &+= 1
        }
    }

    /// Emits the downsample windows that took no reading since `idleBefore` (the caller's clock), or
    /// all of them when nil (shutdown). Nil when there is nothing to emit.
    package mutating func flush(idleBefore: Int64?, now: Int64) -> Output? {
        flush(idleBefore.map { .arrivedBefore($0) } ?? .all, now: now)
    }

    /// Emits the downsample windows that took no reading for one window width of their rule (by
    /// the caller's clock): the series has gone quiet, and no later reading will close them.
    /// Nil when there is nothing to emit.
    package mutating func flushQuietWindows(now: Int64) -> Output? {
        flush(.quietForWidth, now: now)
    }

    /// Which open windows a flush emits.
    private enum Due {
        case all
        case arrivedBefore(Int64)
        case quietForWidth
    }

    private mutating func flush(_ due: Due, now: Int64) -> Output? {
        generation &+= 1
        var builder = Builder(ruleCount: rules.count, generation: generation)
        builder.undo.epoch = epoch
        for index in slots.indices where slots[index].plan.hasReducers {
            emitWindows(slot: index, due: due, now: now, into: &builder)
        }
        guard !builder.readings.isEmpty else { return nil }
        for entry in builder.undo.entries.indices {
            let slot = Int(builder.undo.entries[entry].slot)
            slots[slot].version &+= 1
            builder.undo.entries[entry].version = slots[slot].version
        }
        var output = Output()
        output.seriesKeys = builder.keys
        output.readings = builder.readings
        output.counts = builder.counts
        output.undo = builder.undo
        return output
    }

    private mutating func emitWindows(slot index: Int, due: Due, now: Int64, into builder: inout Builder) {
        let steps = slots[index].plan.steps
        for (position, step) in steps.enumerated() {
            guard case .downsample(let rule, let width, let aggregates, let keys, let state) = step,
                case .downsample(let pending?) = slots[index].states[state]
            else { continue }
            switch due {
            case .all: break
            case .arrivedBefore(let time): if pending.arrival >= time { continue }
            case .quietForWidth: if now &- pending.arrival < width { continue }
            }
            if slots[index].undoGeneration != generation {
                slots[index].undoGeneration = generation
                builder.undo.entries.append((Int32(index), 0, slots[index].states))
            }
            slots[index].states[state] = .downsample(nil)
            emit(
                pending, slot: index, rule: rule, aggregates: aggregates, keys: keys, after: position, now: now,
                into: &builder)
        }
    }

    private mutating func evictAll(into builder: inout Builder) {
        for index in slots.indices where slots[index].plan.hasReducers {
            emitWindows(slot: index, due: .all, now: 0, into: &builder)
        }
        cache.removeAll(keepingCapacity: false)
        slots.removeAll(keepingCapacity: false)
        epoch &+= 1
        // What this write changed cannot be put back into slots that are gone.
        builder.undo.entries.removeAll()
    }

    /// Runs the plan's steps from `from` on one reading and appends what survives.
    private mutating func run(
        slot index: Int, from start: Int, time: Int64, value: Double, key: Int, now: Int64, into builder: inout Builder
    ) {
        var value = value
        var key = key
        var position = start
        let count = slots[index].plan.steps.count
        while position < count {
            switch slots[index].plan.steps[position] {
            case .validate(let rule, let validation, let flagKey):
                if Self.isInvalid(time: time, value: value, validation, now: now) {
                    if flagKey == 0 {
                        builder.counts[rule].dropped += 1
                        return
                    }
                    if key == 0 {
                        key = flagKey
                        builder.counts[rule].flagged += 1
                    }
                } else {
                    builder.counts[rule].kept += 1
                }
            case .pass(let rule):
                builder.counts[rule].kept += 1
            case .linear(let rule, let scale, let offset):
                builder.counts[rule].kept += 1
                value = value * scale + offset
            case .quantize(let rule, let exponent, let bound):
                builder.counts[rule].kept += 1
                value = ErrorBound.quantize(value, exponent: exponent, bound: bound)
            case .deadband(let rule, let deadband, let state):
                // Flagged readings and aggregate series are not reduced (see `Docs/configuration.md`).
                guard key == 0, case .deadband(let held) = slots[index].states[state] else {
                    builder.counts[rule].kept += 1
                    break
                }
                if let held, Self.isWithin(deadband, value: value, time: time, of: held) {
                    builder.counts[rule].reduced += 1
                    return
                }
                builder.counts[rule].kept += 1
                slots[index].states[state] = .deadband(Held(value: value, time: time))
            case .downsample(let rule, let width, let aggregates, let keys, let state):
                guard key == 0, value.isFinite, case .downsample(let pending) = slots[index].states[state] else {
                    builder.counts[rule].kept += 1
                    break
                }
                let start = Self.windowStart(time, width: width)
                if var window = pending {
                    if start == window.start {
                        window.add(value, at: time, arrival: now)
                        slots[index].states[state] = .downsample(window)
                        builder.counts[rule].reduced += 1
                        return
                    }
                    // A reading older than the open window passes unreduced: it was late, and
                    // folding it into a window already emitted would change a stored reading.
                    guard start > window.start else {
                        builder.counts[rule].kept += 1
                        break
                    }
                    slots[index].states[state] = .downsample(
                        Window(start: start, value: value, time: time, arrival: now))
                    builder.counts[rule].reduced += 1
                    emit(
                        window, slot: index, rule: rule, aggregates: aggregates, keys: keys, after: position, now: now,
                        into: &builder)
                    return
                }
                slots[index].states[state] = .downsample(Window(start: start, value: value, time: time, arrival: now))
                builder.counts[rule].reduced += 1
                return
            }
            position += 1
        }
        let target = builder.output(slot: index, key: key, in: &slots)
        builder.readings.append(Reading(series: target, timestamp: time, value: value))
    }

    private mutating func emit(
        _ window: Window, slot index: Int, rule: Int, aggregates: [ProcessingRule.Downsample.Aggregate], keys: [Int],
        after position: Int, now: Int64, into builder: inout Builder
    ) {
        for (aggregate, key) in zip(aggregates, keys) {
            let (time, value): (Int64, Double) =
                switch aggregate {
                case .last: (window.lastTime, window.last)
                case .mean: (window.start, window.sum / Double(window.count))
                case .min: (window.minimumTime, window.minimum)
                case .max: (window.maximumTime, window.maximum)
                }
            builder.counts[rule].emitted += 1
            run(slot: index, from: position + 1, time: time, value: value, key: key, now: now, into: &builder)
        }
    }

    @inline(__always)
    private static func isInvalid(time: Int64, value: Double, _ rule: ProcessingRule.Validation, now: Int64) -> Bool {
        if !value.isFinite { return rule.rejectsNonFinite }
        if let minimum = rule.minimum, value < minimum { return true }
        if let maximum = rule.maximum, value > maximum { return true }
        if let future = rule.maximumFuture, time > now &+ future { return true }
        if let past = rule.maximumPast, time < now &- past { return true }
        return false
    }

    /// Whether a reading may be left out: the held value stands for it within `delta`, and the
    /// heartbeat is not due. Readings before the held one, and changes to or from NaN or an
    /// infinity, are always stored.
    @inline(__always)
    private static func isWithin(_ rule: ProcessingRule.Deadband, value: Double, time: Int64, of held: Held) -> Bool {
        guard time >= held.time, time - held.time < rule.heartbeat else { return false }
        if value.isFinite, held.value.isFinite { return (value - held.value).magnitude <= rule.delta }
        return value.bitPattern == held.value.bitPattern
    }

    /// The start of the epoch-aligned window of `width` holding `time` (floor division, so times
    /// before 1970 fall into the right window too).
    @inline(__always)
    package static func windowStart(_ time: Int64, width: Int64) -> Int64 {
        let (quotient, remainder) = time.quotientAndRemainder(dividingBy: width)
        return (remainder < 0 ? quotient - 1 : quotient) &* width
    }

    /// The output of one call under construction.
    private struct Builder {
        var keys: [String] = []
        var index: [ExactString: Int] = [:]
        var readings: [Reading] = []
        var counts: [ProcessingCounts]
        var undo = Undo()
        var generation = 0

        init(ruleCount: Int, generation: Int) {
            counts = Array(repeating: ProcessingCounts(), count: ruleCount)
            self.generation = generation
        }

        /// The output index of `key`, added when new (two input series may become one).
        mutating func output(for key: String) -> Int {
            let exact = ExactString(key)
            if let known = index[exact] { return known }
            keys.append(key)
            index[exact] = keys.count - 1
            return keys.count - 1
        }

        mutating func output(slot: Int, key: Int, in slots: inout [Slot]) -> Int {
            if slots[slot].generation != generation {
                slots[slot].generation = generation
                slots[slot].outputs = Array(repeating: -1, count: slots[slot].plan.keys.count)
            }
            var target = slots[slot].outputs[key]
            if target < 0 {
                target = output(for: slots[slot].plan.keys[key])
                slots[slot].outputs[key] = target
            }
            return target
        }
    }
}

extension ProcessingEngine.Window {
    init(start: Int64, value: Double, time: Int64, arrival: Int64) {
        self.init(
            start: start, count: 1, sum: value, minimum: value, minimumTime: time, maximum: value, maximumTime: time,
            last: value, lastTime: time, arrival: arrival)
    }

    mutating func add(_ value: Double, at time: Int64, arrival: Int64) {
        count += 1
        sum += value
        if value < minimum {
            minimum = value
            minimumTime = time
        }
        if value > maximum {
            maximum = value
            maximumTime = time
        }
        if time >= lastTime {
            last = value
            lastTime = time
        }
        self.arrival = arrival
    }
}
