import Foundation
import Layers
import Tasks
import Tensors

/// How a run's configuration is put together, lowest precedence first: the trainer's built-in defaults, the task's
/// `TrainingRecipe`, then the keys of a config file or sweep spec, then command-line flags. A fully resolved
/// config.json therefore reproduces its run whatever later recipes say.
extension TrainConfig {
    /// The built-in defaults with the recipe of `task` applied for `layer` (without the recipe's entries for that
    /// layer when `perLayer` is false: what `seqlab config show` tells apart).
    public static func suggested(task: String, layer: String, perLayer: Bool = true) throws -> TrainConfig {
        _ = try LayerRegistry.factory(named: layer)
        let taskRecipe = try TaskRegistry.factory(named: task).recipe
        var recipe = perLayer ? taskRecipe.applying(layer: layer) : taskRecipe
        if !perLayer { recipe.layerOptions = [:] }
        var c = TrainConfig(task: task, model: ModelConfig(layer: layer))
        if let v = recipe.dModel { c.model.dModel = v }
        if let v = recipe.nLayers { c.model.nLayers = v }
        if let v = recipe.feedForward {
            guard let f = FeedForwardKind(rawValue: v) else { throw SequenceLabError("task \(task): recipe feed_forward '\(v)' is not none, mlp or glu") }
            c.model.feedForward = f
        }
        if let v = recipe.bidirectional { c.model.bidirectional = v }
        if let v = recipe.learningRate { c.learningRate = v }
        if let v = recipe.weightDecay { c.weightDecay = v }
        if let v = recipe.batchSize { c.batchSize = v }
        if let v = recipe.maxSteps { c.maxSteps = v }
        if let v = recipe.evalEvery { c.evalEvery = v }
        if let v = recipe.targetAccuracy { c.targetAccuracy = v }
        for (k, v) in recipe.layerOptions[layer] ?? [:] { c.model.layerOptions.values[k] = v }
        return c
    }

    /// A config from a JSON object (a config file, a sweep point): the keys present override
    /// `suggested(task:layer:)` of the object's task and layer; objects merge key by key (layer_options too). Every
    /// key is checked against its declaration, and the layer's and task's options against theirs; errors name
    /// `source` and the key.
    public static func resolve(_ object: [String: Any], source: String) throws -> TrainConfig {
        guard let task = object["task"] as? String else { throw SequenceLabError("\(source): missing key 'task' (a task name)") }
        guard let model = object["model"] as? [String: Any], let layer = model["layer"] as? String else {
            throw SequenceLabError("\(source): missing key 'model.layer' (a layer name)")
        }
        // Unknown keys and values of the wrong type are reported as the file wrote them, before the merge.
        _ = try TrainConfig(object: JSONValue.object(object, source: source), source: source)
        let defaults = try JSONSerialization.jsonObject(with: RunFileCoding.encoder.encode(suggested(task: task, layer: layer)))
        let merged = deepMerge(defaults as? [String: Any] ?? [:], object)
        let config = try TrainConfig(object: JSONValue.object(merged, source: source), source: source)
        do { try config.validate() } catch let e as SequenceLabError { throw SequenceLabError("\(source): \(e.message)") }
        return config
    }

    /// Reads a config file (JSON with the keys of this type; absent keys take the task's suggested values).
    public static func load(from url: URL) throws -> TrainConfig {
        try resolve(loadObject(from: url), source: "config file \(url.path)")
    }

    /// The JSON object of a config file, unresolved (to change keys before `resolve`).
    public static func loadObject(from url: URL) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw SequenceLabError("config file \(url.path) does not exist or cannot be read")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw SequenceLabError("config file \(url.path) is not a JSON object")
        }
        return object
    }
}

/// `over` laid on `base`: nested objects merge key by key, anything else in `over` replaces.
func deepMerge(_ base: [String: Any], _ over: [String: Any]) -> [String: Any] {
    var out = base
    for (k, v) in over {
        if let a = out[k] as? [String: Any], let b = v as? [String: Any] { out[k] = deepMerge(a, b) } else { out[k] = v }
    }
    return out
}

/// Where each value of a resolved configuration came from, lowest precedence first: the declared default, the
/// task's recipe, the recipe's entries for the layer, the config file (or sweep point), the flags.
public enum ConfigSources {
    /// One line per setting: its key path, its value and its source; layer and task options not given are listed
    /// at their declared defaults. `file`: the keys a config file (or sweep point) wrote; `flagged`: the key paths
    /// the flags set.
    public static func explain(_ config: TrainConfig, file: [String: Any]?, fileName: String, flagged: Set<String>) throws
        -> [(key: String, value: String, source: String)] {
        let layer = config.model.layer
        let levels: [(String, [String: String])] = try [
            ("default", flatten(TrainConfig(task: config.task, model: ModelConfig(layer: layer)))),
            ("recipe (\(config.task))", flatten(TrainConfig.suggested(task: config.task, layer: layer, perLayer: false))),
            ("recipe (\(config.task), for \(layer))", flatten(TrainConfig.suggested(task: config.task, layer: layer))),
        ]
        let fileKeys = Set(leaves(file ?? [:]).keys)
        var rows: [(key: String, value: String, source: String)] = []
        for (key, value) in try flatten(config).sorted(by: { $0.key < $1.key }) where key != "git_commit" {
            var source = "default"
            for (name, level) in levels.dropFirst() where level[key] != nil {
                let before = levels.prefix { $0.0 != name }.last?.1[key]
                if before != level[key] { source = name }
            }
            if fileKeys.contains(key) { source = fileName }
            if flagged.contains(key) { source = "flag" }
            rows.append((key, value, source))
        }
        for (prefix, specs, given) in [("model.layer_options.", try LayerRegistry.factory(named: layer).options, config.model.layerOptions),
                                       ("task_options.", try TaskRegistry.factory(named: config.task).options, config.taskOptions)] {
            for spec in specs where given.values[spec.name] == nil {
                rows.append((prefix + spec.name, spec.defaultValue, "default"))
            }
        }
        return rows.sorted { $0.key < $1.key }
    }

    /// A config's leaves as "a.b.c" -> JSON text.
    static func flatten(_ config: TrainConfig) throws -> [String: String] {
        let object = try JSONSerialization.jsonObject(with: RunFileCoding.encoder.encode(config)) as? [String: Any] ?? [:]
        return leaves(object)
    }

    static func leaves(_ object: [String: Any], prefix: String = "") -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in object {
            if let child = v as? [String: Any], !child.isEmpty {
                out.merge(leaves(child, prefix: prefix + k + ".")) { _, new in new }
            } else if !(v is [String: Any]) {
                let data = (try? JSONSerialization.data(withJSONObject: [v], options: [.fragmentsAllowed])) ?? Data()
                out[prefix + k] = String(decoding: data, as: UTF8.self).dropFirst().dropLast().description
            }
        }
        return out
    }
}
