import Foundation
import Tensors
import Training

/// A sweep: a base configuration crossed with a grid and (optionally) a list of explicit variations.
///
///     {
///       "description": "MQAR accuracy against width (Zoology, CPU-sized)",
///       "base": {"task": "mqar", "model": {"layer": "attention", "n_layers": 2, "feed_forward": "none"}, "max_steps": 2000},
///       "grid": {"model.layer": ["attention", "gla"], "model.d_model": [32, 64], "lr": [0.001, 0.003], "seed": [0, 1]},
///       "list": [{"model.layer": "deltaproduct", "model.layer_options.n_h": "2"}, {"model.layer": "mamba"}]
///     }
///
/// Keys are dotted paths into the config (the keys of a run's config.json). The runs are every list entry (or one
/// empty entry) crossed with every grid point; list entries may set keys the grid also sets (the entry wins). Each run
/// gets a readable, stable id built from the values of the swept keys ("layer-gla_d_model-64_lr-0.001_seed-0").
public struct SweepSpec {
    public let description: String
    let base: [String: Any]
    let grid: [(key: String, values: [Any])]
    let list: [[String: Any]]

    /// One run of a sweep: its id and its fully resolved configuration.
    public struct Run {
        public let id: String
        public let config: TrainConfig
        /// The swept keys and their values, for tables.
        public let settings: [(key: String, value: String)]
    }

    /// Reads a spec file (JSON); a one-line error for a missing or malformed file.
    public static func load(from url: URL) throws -> SweepSpec {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw SequenceLabError("sweep spec \(url.path) does not exist or cannot be read")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw SequenceLabError("sweep spec \(url.path) is not a JSON object")
        }
        return try SweepSpec(object, source: url.path)
    }

    /// A spec from its JSON object.
    public init(_ object: [String: Any], source: String = "sweep spec") throws {
        let known: Set = ["description", "base", "grid", "list"]
        if let stray = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw SequenceLabError("\(source): unknown key '\(stray)' (keys: base, grid, list, description)")
        }
        guard let base = object["base"] as? [String: Any] else { throw SequenceLabError("\(source): needs a 'base' object") }
        self.base = base
        description = object["description"] as? String ?? ""
        let gridObject = object["grid"] as? [String: Any] ?? [:]
        grid = try gridObject.keys.sorted().map { key in
            guard let values = gridObject[key] as? [Any], !values.isEmpty else {
                throw SequenceLabError("\(source): grid key '\(key)' needs a non-empty list of values")
            }
            return (key, values)
        }
        if let l = object["list"] {
            guard let entries = l as? [[String: Any]] else { throw SequenceLabError("\(source): 'list' must be a list of objects") }
            list = entries
        } else {
            list = [[:]]
        }
    }

    /// Every run, in a stable order.
    public func runs() throws -> [Run] {
        var points: [[(String, Any)]] = [[]]
        for (key, values) in grid { points = points.flatMap { p in values.map { p + [(key, $0)] } } }
        let listKeys = Array(Set(list.flatMap(\.keys))).sorted()
        let swept = grid.map(\.key) + listKeys.filter { k in !grid.contains { $0.key == k } }
        let labels = Self.labels(for: swept)
        var runs: [Run] = []
        var seen = Set<String>()
        for entry in list {
            for point in points {
                var settings: [String: Any] = [:]
                for (k, v) in point { settings[k] = v }
                for (k, v) in entry { settings[k] = v }
                var object = base
                for (k, v) in settings { try Self.set(&object, path: k, value: v) }
                let data = try JSONSerialization.data(withJSONObject: object)
                let config: TrainConfig
                do { config = try RunFileCoding.decoder.decode(TrainConfig.self, from: data) } catch {
                    throw SequenceLabError("sweep: a run's configuration is invalid: \(error)")
                }
                try config.validate()
                let shown = swept.filter { settings[$0] != nil }.map { ($0, Self.text(settings[$0]!)) }
                var id = shown.map { "\(labels[$0.0]!)-\($0.1)" }.joined(separator: "_")
                if id.isEmpty { id = "run" }
                id = Self.sanitized(id)
                guard seen.insert(id).inserted else { throw SequenceLabError("sweep: two runs share the id '\(id)' (a list entry repeats a grid point?)") }
                runs.append(Run(id: id, config: config, settings: shown))
            }
        }
        return runs
    }

    /// The label of each swept key in run ids: its last path component, or the whole path where two would clash.
    static func labels(for keys: [String]) -> [String: String] {
        let last = keys.map { $0.split(separator: ".").last.map(String.init) ?? $0 }
        var labels: [String: String] = [:]
        for (k, l) in zip(keys, last) { labels[k] = last.filter { $0 == l }.count > 1 ? k : l }
        return labels
    }

    static func text(_ value: Any) -> String {
        switch value {
        case let n as NSNumber where String(cString: n.objCType) == "c": return n.boolValue ? "true" : "false"
        case let n as NSNumber: return "\(n)"
        case let s as String: return s
        default: return "\(value)"
        }
    }

    static func sanitized(_ id: String) -> String {
        String(id.map { $0.isLetter || $0.isNumber || "-_.=".contains($0) ? $0 : "-" })
    }

    /// Sets `value` at a dotted path, creating objects on the way. Values under *_options are stored as strings.
    static func set(_ object: inout [String: Any], path: String, value: Any) throws {
        let parts = path.split(separator: ".").map(String.init)
        guard !parts.isEmpty else { throw SequenceLabError("sweep: empty key") }
        if parts.count == 1 {
            object[parts[0]] = value
            return
        }
        var child = object[parts[0]] as? [String: Any] ?? [:]
        if parts.count == 2 && parts[0].hasSuffix("options") {
            child[parts[1]] = text(value)
        } else {
            try set(&child, path: parts.dropFirst().joined(separator: "."), value: value)
        }
        object[parts[0]] = child
    }
}
