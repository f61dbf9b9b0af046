import Tensors

/// The training settings a task suggests so that `seqlab train --task T --layer L --out DIR` is a sensible small CPU
/// run: model width and depth, feed-forward, learning rate, steps, evaluation cadence, early-stopping target, and
/// per-layer options where a layer's defaults (taken from its reference implementation at large widths) do not fit
/// the task's width (Zoology likewise configures each model per task). Every field left nil keeps the trainer's
/// built-in default; a config file, a sweep spec or a command-line flag overrides any of them.
public struct TrainingRecipe: Sendable {
    public var dModel: Int?
    public var nLayers: Int?
    /// none, mlp or glu.
    public var feedForward: String?
    /// A second mixer on the reversed sequence (LRA's encoders see the whole input).
    public var bidirectional: Bool?
    public var learningRate: Double?
    public var weightDecay: Double?
    public var batchSize: Int?
    public var maxSteps: Int?
    public var evalEvery: Int?
    public var targetAccuracy: Double?
    /// Layer options by layer name, e.g. ["gla": ["heads": "1"]].
    public var layerOptions: [String: [String: String]]
    /// Settings of this recipe replaced for one layer (by name), where a layer trains best with others (Grazzi et
    /// al. likewise set each model's batch and width per task). Nested overrides are ignored.
    public var layerOverrides: [String: TrainingRecipe]
    /// One line on where the settings come from (shown by `seqlab list`).
    public var note: String

    public init(dModel: Int? = nil, nLayers: Int? = nil, feedForward: String? = nil, bidirectional: Bool? = nil, learningRate: Double? = nil,
                weightDecay: Double? = nil, batchSize: Int? = nil, maxSteps: Int? = nil, evalEvery: Int? = nil,
                targetAccuracy: Double? = nil, layerOptions: [String: [String: String]] = [:],
                layerOverrides: [String: TrainingRecipe] = [:], note: String = "") {
        (self.dModel, self.nLayers, self.feedForward, self.learningRate) = (dModel, nLayers, feedForward, learningRate)
        self.bidirectional = bidirectional
        (self.weightDecay, self.batchSize, self.maxSteps, self.evalEvery) = (weightDecay, batchSize, maxSteps, evalEvery)
        (self.targetAccuracy, self.layerOptions, self.layerOverrides, self.note) = (targetAccuracy, layerOptions, layerOverrides, note)
    }

    /// This recipe with `layer`'s overrides applied (the recipe a run of that layer uses).
    public func applying(layer: String) -> TrainingRecipe {
        guard let o = layerOverrides[layer] else { return self }
        var r = self
        r.dModel = o.dModel ?? dModel; r.nLayers = o.nLayers ?? nLayers; r.feedForward = o.feedForward ?? feedForward
        r.bidirectional = o.bidirectional ?? bidirectional
        r.learningRate = o.learningRate ?? learningRate; r.weightDecay = o.weightDecay ?? weightDecay
        r.batchSize = o.batchSize ?? batchSize; r.maxSteps = o.maxSteps ?? maxSteps; r.evalEvery = o.evalEvery ?? evalEvery
        r.targetAccuracy = o.targetAccuracy ?? targetAccuracy
        r.layerOptions[layer, default: [:]].merge(o.layerOptions[layer] ?? [:]) { _, new in new }
        r.layerOverrides = [:]
        return r
    }

    /// The settings as config.json keys and values (layer options and overrides of `layer` only, or of every layer
    /// as `layer.key`), for listing.
    public func entries(layer: String? = nil) -> [(key: String, value: String)] {
        var e: [(String, String)] = []
        func add(_ k: String, _ v: (any CustomStringConvertible)?) { if let v { e.append((k, v.description)) } }
        add("d_model", dModel); add("n_layers", nLayers); add("feed_forward", feedForward); add("bidirectional", bidirectional)
        add("lr", learningRate)
        add("weight_decay", weightDecay); add("batch_size", batchSize); add("max_steps", maxSteps)
        add("eval_every", evalEvery); add("target_accuracy", targetAccuracy)
        for name in layerOptions.keys.sorted() where layer == nil || layer == name {
            for (k, v) in layerOptions[name]!.sorted(by: { $0.key < $1.key }) { e.append(("\(name).\(k)", v)) }
        }
        for name in layerOverrides.keys.sorted() where layer == nil || layer == name {
            for (k, v) in layerOverrides[name]!.entries(layer: name) { e.append(("\(name):\(k)", v)) }
        }
        return e
    }
}
