/// A user-facing error: one line naming the problem (unknown name, malformed option, wrong shape).
public struct SequenceLabError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One option a layer, task or kernel accepts, with its default and a one-line help (shown by `seqlab list`).
public struct OptionSpec: Sendable {
    public let name: String
    public let defaultValue: String
    public let help: String
    public init(_ name: String, _ defaultValue: String, _ help: String) {
        self.name = name
        self.defaultValue = defaultValue
        self.help = help
    }
}

/// The options a layer, task or kernel is built with: string values (from flags, config files or sweep specs) read
/// through typed accessors that fail with a one-line error naming the option and the bad value.
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

    /// The value of `name`, or `defaultValue` if absent.
    public func string(_ name: String, _ defaultValue: String) -> String { values[name] ?? defaultValue }

    public func int(_ name: String, _ defaultValue: Int) throws -> Int {
        guard let s = values[name] else { return defaultValue }
        guard let v = Int(s) else { throw SequenceLabError("option \(name): '\(s)' is not an integer") }
        return v
    }

    public func double(_ name: String, _ defaultValue: Double) throws -> Double {
        guard let s = values[name] else { return defaultValue }
        guard let v = Double(s), v.isFinite else { throw SequenceLabError("option \(name): '\(s)' is not a number") }
        return v
    }

    public func bool(_ name: String, _ defaultValue: Bool) throws -> Bool {
        guard let s = values[name] else { return defaultValue }
        switch s.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw SequenceLabError("option \(name): '\(s)' is not true or false")
        }
    }

    /// Fails if an option is not among `known` (catches typos such as `n_head` for `n_heads`).
    public func validate(against known: [OptionSpec], owner layer: String) throws {
        let names = Set(known.map(\.name))
        for key in values.keys.sorted() where !names.contains(key) {
            throw SequenceLabError("\(layer): unknown option '\(key)' (options: \(known.map(\.name).joined(separator: ", ")))")
        }
    }
}

/// The options of a layer (the same type as every other component's options).
public typealias LayerOptions = Options
/// One option of a layer.
public typealias LayerOptionSpec = OptionSpec

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
