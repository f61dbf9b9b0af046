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
