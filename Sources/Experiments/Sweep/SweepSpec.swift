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
/// `"lists": [[...], [...]]` crosses several lists of variations (tasks x layer variants). Several such sweeps over one
/// base are written as `"parts": [{"grid": ..., "list": ..., "lists": ...}, ...]` (their union: say, every layer on
/// two tasks plus a few layers on two more). The task's recipe (`TrainingRecipe`) lies under the base.
///
/// `"notes": {"model.layer=s4d": "one line"}` annotates table rows: the sweep writes them to DIR/notes.json and
/// `seqlab table` shows a row's note (every `key=value` of the selector, space-separated, matches the row) in a last
/// column: why a layer does not learn in that setting, said where the number is.
///
/// `"slurm": {"partition": ..., "time": ..., "cpus_per_task": ...}` holds the sbatch settings of `seqlab sweep --slurm`
/// (`SlurmSettings`).
public struct SweepSpec {
    public let description: String
    let base: [String: Any]
    let parts: [Part]
    /// Row selector ("key=value key=value") -> note.
    public let notes: [String: String]
    /// The "slurm" object's sbatch settings (`seqlab sweep --slurm`; flags override them).
    public let slurm: SlurmSettings

    /// One grid crossed with one list of variations.
    struct Part {
        let grid: [(key: String, values: [Any])]
        let list: [[String: Any]]
    }

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
        let known: Set = ["description", "base", "grid", "list", "lists", "parts", "notes", "slurm"]
        if let stray = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw SequenceLabError("\(source): unknown key '\(stray)' (keys: base, grid, list, lists, parts, notes, slurm, description)")
        }
        slurm = try SlurmSettings(spec: object["slurm"], source: source)
        guard let notes = object["notes"].map({ $0 as? [String: String] }) ?? [:],
              notes.keys.allSatisfy({ RowNotes.selector($0) != nil }) else {
            throw SequenceLabError("\(source): 'notes' must map row selectors ('key=value key=value') to one-line notes")
        }
        self.notes = notes
        guard let base = object["base"] as? [String: Any] else { throw SequenceLabError("\(source): needs a 'base' object") }
        self.base = base
        description = object["description"] as? String ?? ""
        if let p = object["parts"] {
            guard object["grid"] == nil && object["list"] == nil && object["lists"] == nil else {
                throw SequenceLabError("\(source): give either 'parts' or a top-level 'grid'/'list'/'lists', not both")
            }
            guard let objects = p as? [[String: Any]], !objects.isEmpty else {
                throw SequenceLabError("\(source): 'parts' must be a non-empty list of objects with 'grid' and/or 'list'")
            }
            parts = try objects.enumerated().map { i, o in
                if let stray = o.keys.sorted().first(where: { !["grid", "list", "lists"].contains($0) }) {
                    throw SequenceLabError("\(source): parts[\(i)] has unknown key '\(stray)' (keys: grid, list, lists)")
                }
                return try Self.part(o, source: "\(source): parts[\(i)]")
            }
        } else {
            parts = [try Self.part(object, source: source)]
        }
    }

    private static func part(_ object: [String: Any], source: String) throws -> Part {
        let gridObject = object["grid"] as? [String: Any] ?? [:]
        let grid = try gridObject.keys.sorted().map { key in
            guard let values = gridObject[key] as? [Any], !values.isEmpty else {
                throw SequenceLabError("\(source): grid key '\(key)' needs a non-empty list of values")
            }
            return (key, values)
        }
        var list: [[String: Any]] = [[:]]
        if let l = object["list"] {
            guard let entries = l as? [[String: Any]] else { throw SequenceLabError("\(source): 'list' must be a list of objects") }
            list = entries
        }
        // "lists": several lists of variations crossed with each other (say, tasks x layer variants).
        if let ls = object["lists"] {
            guard let lists = ls as? [[[String: Any]]], lists.allSatisfy({ !$0.isEmpty }) else {
                throw SequenceLabError("\(source): 'lists' must be a list of non-empty lists of objects")
            }
            for l in lists { list = list.flatMap { a in l.map { b in a.merging(b) { _, new in new } } } }
        }
        return Part(grid: grid, list: list)
    }

    /// The most runs a spec may expand to (a grid this size is a typo or a job for several specs).
    public static let maximumRuns = 100_000

    /// Every run, in a stable order (part by part).
    public func runs() throws -> [Run] {
        var total = 0
        for part in parts {
            var count = part.list.count
            for (_, values) in part.grid {
                let (product, overflow) = count.multipliedReportingOverflow(by: values.count)
                count = overflow ? Int.max : product
            }
            total = total > Int.max - count ? Int.max : total + count
        }
        guard total <= Self.maximumRuns else {
            throw SequenceLabError("sweep: the spec expands to \(total == Int.max ? "more than \(Int.max)" : "\(total)") runs, more than \(Self.maximumRuns); split it")
        }
        var swept: [String] = []
        for part in parts {
            for k in part.grid.map(\.key) + Array(Set(part.list.flatMap(\.keys))).sorted() where !swept.contains(k) { swept.append(k) }
        }
        let labels = Self.labels(for: swept)
        var runs: [Run] = []
        var seen = Set<String>()
        for part in parts {
            var points: [[(String, Any)]] = [[]]
            for (key, values) in part.grid { points = points.flatMap { p in values.map { p + [(key, $0)] } } }
            for entry in part.list {
                for point in points {
                    var settings: [String: Any] = [:]
                    for (k, v) in point { settings[k] = v }
                    for (k, v) in entry { settings[k] = v }
                    var object = base
                    for (k, v) in settings { try Self.set(&object, path: k, value: v) }
                    let described = settings.keys.sorted().map { "\($0)=\(Self.text(settings[$0]!))" }.joined(separator: " ")
                    let config = try TrainConfig.resolve(object, source: "sweep run \(described)")
                    try config.validate()
                    let shown = swept.filter { settings[$0] != nil }.map { ($0, Self.text(settings[$0]!)) }
                    var id = shown.map { "\(labels[$0.0]!)-\($0.1)" }.joined(separator: "_")
                    if id.isEmpty { id = "run" }
                    id = Self.sanitized(id)
                    guard seen.insert(id).inserted else { throw SequenceLabError("sweep: two runs share the id '\(id)' (a list entry repeats a grid point?)") }
                    runs.append(Run(id: id, config: config, settings: shown))
                }
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
        case let a as [Any]: return a.isEmpty ? "none" : a.map(text).joined(separator: "+")
        default: return "\(value)"
        }
    }

    static func sanitized(_ id: String) -> String {
        String(id.map { $0.isLetter || $0.isNumber || "-_.=+".contains($0) ? $0 : "-" })
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
