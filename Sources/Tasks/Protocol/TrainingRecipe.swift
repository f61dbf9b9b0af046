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
    public var learningRate: Double?
    public var weightDecay: Double?
    public var batchSize: Int?
    public var maxSteps: Int?
    public var evalEvery: Int?
    public var targetAccuracy: Double?
    /// Layer options by layer name, e.g. ["gla": ["heads": "1"]].
    public var layerOptions: [String: [String: String]]
    /// One line on where the settings come from (shown by `seqlab list`).
    public var note: String

    public init(dModel: Int? = nil, nLayers: Int? = nil, feedForward: String? = nil, learningRate: Double? = nil,
                weightDecay: Double? = nil, batchSize: Int? = nil, maxSteps: Int? = nil, evalEvery: Int? = nil,
                targetAccuracy: Double? = nil, layerOptions: [String: [String: String]] = [:], note: String = "") {
        (self.dModel, self.nLayers, self.feedForward, self.learningRate) = (dModel, nLayers, feedForward, learningRate)
        (self.weightDecay, self.batchSize, self.maxSteps, self.evalEvery) = (weightDecay, batchSize, maxSteps, evalEvery)
        (self.targetAccuracy, self.layerOptions, self.note) = (targetAccuracy, layerOptions, note)
    }

    /// The settings as config.json keys and values (layer options of `layer` only), for listing.
    public func entries(layer: String? = nil) -> [(key: String, value: String)] {
        var e: [(String, String)] = []
        func add(_ k: String, _ v: (any CustomStringConvertible)?) { if let v { e.append((k, v.description)) } }
        add("d_model", dModel); add("n_layers", nLayers); add("feed_forward", feedForward); add("lr", learningRate)
        add("weight_decay", weightDecay); add("batch_size", batchSize); add("max_steps", maxSteps)
        add("eval_every", evalEvery); add("target_accuracy", targetAccuracy)
        for name in layerOptions.keys.sorted() where layer == nil || layer == name {
            for (k, v) in layerOptions[name]!.sorted(by: { $0.key < $1.key }) { e.append(("\(name).\(k)", v)) }
        }
        return e
    }
}
