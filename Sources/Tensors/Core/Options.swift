/// A user-facing error: one line naming the problem (unknown name, malformed option, wrong shape).
public struct SequenceLabError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One declared setting of a layer, task or kernel: its name, type, range, default and one-line help.
///
/// The declaration is the only place the setting's default and its range are written: `Options.resolved(against:)`
/// checks every given value against it (unknown names with the closest valid one, types, ranges, choices), fills in
/// the defaults, and the owner reads typed values from the result without restating them. `seqlab list`, the flags
/// of `seqlab train`, config files and sweep keys all go through it.
public struct OptionSpec: Sendable {
    /// The value's type.
    public enum Kind: Sendable, Equatable {
        case integer, number, boolean, text
        /// One of these words.
        case choice([String])
        /// A comma-separated list of integers ("" is the empty list): extra test lengths, say.
        case integerList
    }

    public let name: String
    /// The default as text ("auto" where the owner derives it, "" for an empty list or text).
    public let defaultValue: String
    public let help: String
    public let kind: Kind
    /// Bounds of numbers and integers (and of each element of an integer list); nil for none.
    public let minimum: Double?
    public let maximum: Double?
    /// Whether `minimum` itself is excluded (a value must be above it).
    public let minimumExcluded: Bool
    /// Whether `maximum` itself is excluded (a value must be below it).
    public let maximumExcluded: Bool
    /// The word that leaves the value unset, if one is accepted: "auto" where the owner derives it (from d_model, say),
    /// "none" where there is none (no time budget); `OptionValues.optionalInt` and friends give nil for it.
    public let unsetWord: String?
    /// Whether the option must be given (kernel sizes of `seqlab op`).
    public let isRequired: Bool

    init(_ name: String, _ defaultValue: String, _ help: String, kind: Kind, minimum: Double? = nil, maximum: Double? = nil,
         minimumExcluded: Bool = false, maximumExcluded: Bool = false, unsetWord: String? = nil, isRequired: Bool = false) {
        self.name = name
        self.defaultValue = defaultValue
        self.help = help
        self.kind = kind
        self.minimum = minimum
        self.maximum = maximum
        self.minimumExcluded = minimumExcluded
        self.maximumExcluded = maximumExcluded
        self.unsetWord = unsetWord
        self.isRequired = isRequired
    }

    /// An integer in [min, max]; with `orAuto`, "auto" is accepted too (the owner derives the value).
    public static func int(_ name: String, _ value: Int, _ help: String, min: Int? = nil, max: Int? = nil,
                           orAuto: Bool = false) -> OptionSpec {
        OptionSpec(name, "\(value)", help, kind: .integer, minimum: min.map(Double.init), maximum: max.map(Double.init),
                   unsetWord: orAuto ? "auto" : nil)
    }

    /// An integer in [min, max] or "auto" (the default): the owner derives it.
    public static func intOrAuto(_ name: String, _ help: String, min: Int? = nil, max: Int? = nil) -> OptionSpec {
        OptionSpec(name, "auto", help, kind: .integer, minimum: min.map(Double.init), maximum: max.map(Double.init), unsetWord: "auto")
    }

    /// An integer that must be given (no default).
    public static func requiredInt(_ name: String, _ help: String, min: Int? = nil, max: Int? = nil) -> OptionSpec {
        OptionSpec(name, "(required)", help, kind: .integer, minimum: min.map(Double.init), maximum: max.map(Double.init),
                   isRequired: true)
    }

    /// A finite number, at least `min` (or above `above`) and at most `max` (or below `below`).
    public static func number(_ name: String, _ value: Double, _ help: String, min: Double? = nil, above: Double? = nil,
                              max: Double? = nil, below: Double? = nil) -> OptionSpec {
        OptionSpec(name, Self.text(value), help, kind: .number, minimum: above ?? min, maximum: below ?? max,
                   minimumExcluded: above != nil, maximumExcluded: below != nil)
    }

    /// A probability of dropping: in [0, 1).
    public static func dropout(_ name: String, _ help: String) -> OptionSpec {
        number(name, 0, help, min: 0, below: 1)
    }

    /// A finite number or "auto" (the default; `derived` says what the owner uses then, e.g. "K^-1/2").
    public static func numberOrAuto(_ name: String, derived: String, _ help: String, above: Double? = nil) -> OptionSpec {
        OptionSpec(name, "auto", help + " (auto: \(derived))", kind: .number, minimum: above, minimumExcluded: above != nil,
                   unsetWord: "auto")
    }

    /// An integer in [min, max], or "none" (the default).
    public static func optionalInt(_ name: String, _ help: String, min: Int? = nil, max: Int? = nil) -> OptionSpec {
        OptionSpec(name, "none", help, kind: .integer, minimum: min.map(Double.init), maximum: max.map(Double.init), unsetWord: "none")
    }

    /// A number in its bounds, or "none" (the default).
    public static func optionalNumber(_ name: String, _ help: String, min: Double? = nil, above: Double? = nil,
                                      max: Double? = nil) -> OptionSpec {
        OptionSpec(name, "none", help, kind: .number, minimum: above ?? min, maximum: max, minimumExcluded: above != nil,
                   unsetWord: "none")
    }

    /// One of `choices`, or "none" (the default).
    public static func optionalChoice(_ name: String, _ choices: [String], _ help: String) -> OptionSpec {
        OptionSpec(name, "none", help, kind: .choice(choices), unsetWord: "none")
    }

    /// Free text, or "none" (the default).
    public static func optionalText(_ name: String, _ help: String) -> OptionSpec {
        OptionSpec(name, "none", help, kind: .text, unsetWord: "none")
    }

    /// true or false (also 1/0, yes/no, on/off).
    public static func bool(_ name: String, _ value: Bool, _ help: String) -> OptionSpec {
        OptionSpec(name, value ? "true" : "false", help, kind: .boolean)
    }

    /// One of `choices`.
    public static func choice(_ name: String, _ value: String, _ choices: [String], _ help: String) -> OptionSpec {
        precondition(choices.contains(value), "option \(name): default '\(value)' is not one of its choices")
        return OptionSpec(name, value, help, kind: .choice(choices))
    }

    /// Free text (a path, a group name the owner checks).
    public static func text(_ name: String, _ value: String, _ help: String) -> OptionSpec {
        OptionSpec(name, value, help, kind: .text)
    }

    /// A comma-separated list of distinct integers, each in [min, max] ("" is the empty list).
    public static func intList(_ name: String, _ value: String, _ help: String, min: Int? = nil, max: Int? = nil) -> OptionSpec {
        OptionSpec(name, value, help, kind: .integerList, minimum: min.map(Double.init), maximum: max.map(Double.init))
    }

    /// The shortest text of a number: 0.001, 10000, 0.5.
    static func text(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
    }

    /// The type and range in words, for `seqlab list` and errors: "integer >= 1", "number > 0", "chunked | recurrent".
    public var typeDescription: String {
        var words: String
        switch kind {
        case .integer: words = "integer"
        case .number: words = "number"
        case .boolean: return "true | false"
        case .text: return "text"
        case .choice(let choices): return (choices + (unsetWord.map { [$0] } ?? [])).joined(separator: " | ")
        case .integerList: words = "integers, comma-separated"
        }
        if let minimum { words += (minimumExcluded ? " > " : " >= ") + Self.text(minimum) }
        if let maximum { words += (minimum == nil ? " " : ", ") + (maximumExcluded ? "< " : "<= ") + Self.text(maximum) }
        if let unsetWord { words += " or \(unsetWord)" }
        return words
    }

    /// Checks one given value; the error names the owner, the option (as `label`, default "option NAME") and the
    /// accepted values.
    public func check(_ value: String, owner: String, label: String? = nil) throws {
        func fail(_ why: String) -> SequenceLabError {
            SequenceLabError("\(owner): \(label ?? "option \(name)"): '\(value)' \(why)")
        }
        if let unsetWord, value == unsetWord { return }
        switch kind {
        case .text: return
        case .boolean:
            guard Options.parseBool(value) != nil else { throw fail("is not true or false") }
        case .choice(let choices):
            guard choices.contains(value) else {
                throw fail("is not one of \(choices.joined(separator: ", "))" + suggestion(value, among: choices))
            }
        case .integer:
            guard let v = Int(value) else { throw fail("is not an integer" + (unsetWord.map { " or \($0)" } ?? "")) }
            try checkBounds(Double(v), fail)
        case .number:
            guard let v = Double(value), v.isFinite else { throw fail("is not a number" + (unsetWord.map { " or \($0)" } ?? "")) }
            try checkBounds(v, fail)
        case .integerList:
            _ = try Options.integerList(value, bounds: { try self.checkBounds(Double($0), fail) }, fail: fail)
        }
    }

    private func checkBounds(_ v: Double, _ fail: (String) -> SequenceLabError) throws {
        if let minimum, minimumExcluded ? !(v > minimum) : !(v >= minimum) {
            throw fail("must be \(minimumExcluded ? "above" : "at least") \(Self.text(minimum))")
        }
        if let maximum, maximumExcluded ? !(v < maximum) : !(v <= maximum) {
            throw fail("must be \(maximumExcluded ? "below" : "at most") \(Self.text(maximum))")
        }
    }
}

/// The options a layer, task or kernel is given: string values (from flags, config files or sweep specs), checked
/// and completed against the owner's `OptionSpec`s by `resolved(against:owner:)`.
public struct Options: Sendable, Equatable, Codable {
    public var values: [String: String]
    public init(_ values: [String: String] = [:]) { self.values = values }

    /// Encoded as a plain object of strings: {"n_h": "2"}.
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let strings = try? c.decode([String: String].self) {
            values = strings
            return
        }
        // Numbers and booleans in hand-written configs are accepted and kept as their text.
        let loose = try c.decode([String: LooseScalar].self)
        values = loose.mapValues(\.text)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(values)
    }

    /// The values checked against `specs` (an unknown name fails with the closest valid one; a value of the wrong
    /// type or out of range, or a missing required option, fails naming the option), with every default filled in.
    /// `keyPath`: for the settings of a config file ("model."), whose errors name keys by their path instead.
    public func resolved(against specs: [OptionSpec], owner: String, keyPath: String? = nil) throws -> OptionValues {
        for key in values.keys.sorted() {
            guard let spec = specs.first(where: { $0.name == key }) else {
                let names = specs.map(\.name)
                if let keyPath {
                    throw SequenceLabError("\(owner): unknown key '\(keyPath)\(key)'" + suggestion(key, among: names, prefix: keyPath))
                }
                throw SequenceLabError("\(owner): unknown option '\(key)'" + suggestion(key, among: names)
                                       + " (options: \(names.isEmpty ? "none" : names.joined(separator: ", ")))")
            }
            try spec.check(values[key]!, owner: owner, label: keyPath.map { $0 + key })
        }
        for spec in specs where spec.isRequired && values[spec.name] == nil {
            throw SequenceLabError("\(owner): option \(spec.name) must be given (\(spec.help))")
        }
        return OptionValues(owner: owner, specs: specs, values: values)
    }

    public static func parseBool(_ s: String) -> Bool? {
        switch s.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: return nil
        }
    }

    static func integerList(_ text: String, bounds: (Int) throws -> Void, fail: (String) -> SequenceLabError) throws -> [Int] {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { return [] }
        let values = try trimmed.split(separator: ",", omittingEmptySubsequences: false).map { part -> Int in
            guard let v = Int(part.trimmingCharacters(in: .whitespaces)) else {
                throw fail("is not a comma-separated list of integers (such as 80,160)")
            }
            try bounds(v)
            return v
        }
        guard Set(values).count == values.count else { throw fail("lists a value twice") }
        return values
    }
}

/// An owner's options after `Options.resolved(against:owner:)`: every value checked, every default known, so the
/// typed reads below cannot fail (asking for an undeclared option or the wrong type is a programming error).
public struct OptionValues: Sendable {
    /// Who the options belong to ("layer mamba"), for the owner's own one-line errors.
    public let owner: String
    let specs: [OptionSpec]
    let values: [String: String]

    private func text(_ name: String, _ kind: OptionSpec.Kind) -> String {
        guard let spec = specs.first(where: { $0.name == name }) else { preconditionFailure("\(owner): option \(name) is not declared") }
        switch (spec.kind, kind) {
        case (.choice, .choice), (.integer, .integer), (.number, .number), (.boolean, .boolean), (.text, .text), (.integerList, .integerList):
            break
        case (.integer, .number):  // an integer option read as a number is fine
            break
        default: preconditionFailure("\(owner): option \(name) is declared \(spec.kind), read as \(kind)")
        }
        return values[name] ?? spec.defaultValue
    }

    public func int(_ name: String) -> Int {
        let s = text(name, .integer)
        guard let v = Int(s) else { preconditionFailure("\(owner): option \(name) may be unset; read it with optionalInt") }
        return v
    }

    /// nil for the option's unset word ("auto", "none").
    public func optionalInt(_ name: String) -> Int? { Int(text(name, .integer)) }

    public func double(_ name: String) -> Double {
        let s = text(name, .number)
        guard let v = Double(s) else { preconditionFailure("\(owner): option \(name) may be unset; read it with optionalDouble") }
        return v
    }

    /// nil for the option's unset word ("auto", "none").
    public func optionalDouble(_ name: String) -> Double? { Double(text(name, .number)) }

    public func bool(_ name: String) -> Bool { Options.parseBool(text(name, .boolean))! }

    /// A text or choice option.
    public func string(_ name: String) -> String {
        guard let spec = specs.first(where: { $0.name == name }) else { preconditionFailure("\(owner): option \(name) is not declared") }
        if case .choice = spec.kind { return values[name] ?? spec.defaultValue }
        return text(name, .text)
    }

    /// A text or choice option; nil for its unset word.
    public func optionalString(_ name: String) -> String? {
        let s = string(name)
        return s == specs.first(where: { $0.name == name })?.unsetWord ? nil : s
    }

    /// An integer list (checked when resolved, so parsing it again cannot fail).
    public func intList(_ name: String) -> [Int] {
        try! Options.integerList(text(name, .integerList), bounds: { _ in }, fail: { SequenceLabError($0) })
    }
}

/// The options of a layer (the same type as every other component's options).
public typealias LayerOptions = Options
/// One option of a layer.
public typealias LayerOptionSpec = OptionSpec

/// " (did you mean 'n_heads'?)" when a name among `names` is a near miss of `name`, else "".
public func suggestion(_ name: String, among names: [String], prefix: String = "") -> String {
    guard let best = closestName(to: name, among: names) else { return "" }
    return " (did you mean '\(prefix)\(best)'?)"
}

/// The name among `names` within a small edit distance of `name` (a typo, a dash for an underscore), if any.
public func closestName(to name: String, among names: [String]) -> String? {
    let normalized = name.lowercased().replacingOccurrences(of: "-", with: "_")
    var best: (String, Int)?
    for candidate in names {
        let d = editDistance(Array(normalized), Array(candidate.lowercased()))
        if d <= max(2, candidate.count / 3), d < (best?.1 ?? Int.max) { best = (candidate, d) }
    }
    return best?.0
}

/// Levenshtein distance.
func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    var row = Array(0...b.count)
    for i in 1...a.count {
        var previous = row[0]
        row[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let current = row[j]
            row[j] = Swift.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return row[b.count]
}

/// A JSON scalar read as text (options in config files may be written as 2, 0.5, true or "2").
private struct LooseScalar: Decodable {
    let text: String
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { text = b ? "true" : "false" }
        else if let i = try? c.decode(Int.self) { text = String(i) }
        else if let d = try? c.decode(Double.self) { text = String(d) }
        else { text = try c.decode(String.self) }
    }
}
