import Foundation
import Tasks
import Tensors

/// How a run's configuration is put together, lowest precedence first: the trainer's built-in defaults, the task's
/// `TrainingRecipe`, then the keys of a config file or sweep spec, then command-line flags. A fully resolved
/// config.json therefore reproduces its run whatever later recipes say.
extension TrainConfig {
    /// The built-in defaults with the recipe of `task` applied for `layer`.
    public static func suggested(task: String, layer: String) throws -> TrainConfig {
        let recipe = try TaskRegistry.factory(named: task).recipe.applying(layer: layer)
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
    /// `suggested(task:layer:)` of the object's task and layer; objects merge key by key (layer_options too).
    public static func resolve(_ object: [String: Any], source: String) throws -> TrainConfig {
        guard let task = object["task"] as? String else { throw SequenceLabError("\(source): missing key 'task'") }
        guard let model = object["model"] as? [String: Any], let layer = model["layer"] as? String else {
            throw SequenceLabError("\(source): missing key 'model.layer'")
        }
        let defaults = try JSONSerialization.jsonObject(with: RunFileCoding.encoder.encode(suggested(task: task, layer: layer)))
        let merged = deepMerge(defaults as? [String: Any] ?? [:], object)
        do {
            return try RunFileCoding.decoder.decode(TrainConfig.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch {
            throw SequenceLabError("\(source) is not a valid config: \(oneLine(error))")
        }
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
