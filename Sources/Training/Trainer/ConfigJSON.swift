import Foundation
import Tensors

/// A JSON value as a config file holds it, kept with its JSON type so that each key can be checked against its
/// declared setting (an integer setting given 16.5, or a number given as text, is refused by name) before use.
public enum JSONValue: Codable, Equatable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// The value as JSON text (`16.5`, `"layer_norm"`, `true`).
    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return "\(i)"
        case .number(let d): return "\(d)"
        case .string(let s): return "\"\(s)\""
        case .array: return "a list"
        case .object: return "an object"
        }
    }

    /// An object from JSONSerialization's output (a config file or sweep point assembled as [String: Any]).
    public static func object(_ any: [String: Any], source: String) throws -> [String: JSONValue] {
        do {
            let data = try JSONSerialization.data(withJSONObject: any)
            return try JSONDecoder().decode([String: JSONValue].self, from: data)
        } catch {
            throw SequenceLabError("\(source) is not a JSON object of settings")
        }
    }

    /// The keys of `object` checked against `specs` (unknown keys fail with the closest declared one or one of
    /// `extraKeys`, the structural keys handled by the caller), each value of its declared JSON type and in range;
    /// `keyPath` prefixes the keys in errors ("model.").
    static func settings(_ object: [String: JSONValue], against specs: [OptionSpec], source: String, keyPath: String,
                         extraKeys: [String]) throws -> OptionValues {
        var texts: [String: String] = [:]
        for key in object.keys.sorted() {
            guard let spec = specs.first(where: { $0.name == key }) else {
                throw SequenceLabError("\(source): unknown key '\(keyPath)\(key)'"
                                       + suggestion(key, among: specs.map(\.name) + extraKeys, prefix: keyPath))
            }
            texts[key] = try text(of: object[key]!, for: spec, source: source, label: keyPath + key)
        }
        return try Options(texts).resolved(against: specs, owner: source, keyPath: keyPath)
    }

    /// The text `spec` checks, from a value of the JSON type the setting takes.
    private static func text(of value: JSONValue, for spec: OptionSpec, source: String, label: String) throws -> String {
        switch (spec.kind, value) {
        case (_, .null):
            guard let word = spec.unsetWord else { throw SequenceLabError("\(source): \(label) must not be null (\(spec.typeDescription))") }
            return word
        case (_, .string(let s)) where s == spec.unsetWord: return s
        case (.integer, .int(let i)), (.number, .int(let i)): return "\(i)"
        case (.integer, .number(let d)), (.number, .number(let d)): return "\(d)"
        case (.boolean, .bool(let b)): return b ? "true" : "false"
        case (.choice, .string(let s)), (.text, .string(let s)), (.integerList, .string(let s)): return s
        default:
            throw SequenceLabError("\(source): \(label): \(value) is not of its type (\(spec.typeDescription))")
        }
    }

    /// A layer's or task's options object: scalars (text, numbers, booleans) kept as their text; each option is
    /// checked against its owner's declarations when the config is validated.
    static func options(_ value: JSONValue?, source: String, key: String) throws -> Options {
        guard let value else { return Options() }
        guard case .object(let object) = value else { throw SequenceLabError("\(source): \(key) must be an object") }
        var texts: [String: String] = [:]
        for (name, v) in object {
            switch v {
            case .string(let s): texts[name] = s
            case .int(let i): texts[name] = "\(i)"
            case .number(let d): texts[name] = "\(d)"
            case .bool(let b): texts[name] = b ? "true" : "false"
            default: throw SequenceLabError("\(source): \(key).\(name): \(v) is not a value (text, number or true/false)")
            }
        }
        return Options(texts)
    }
}
