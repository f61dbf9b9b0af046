import ArgumentParser
import Foundation
import Layers
import Tasks
import Tensors
import Training

/// `seqlab train`: one training run; rerunning the same command on the same --out resumes it.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (any layer, any task); resumes when --out already holds the run.",
        discussion: """
            Layer and task options are flags named after them (see `seqlab list`): --n-h 2, --allow-neg-eigval,
            --seq-len 64. A flag without a value means true. Flags override the keys of --config FILE.
            """)

    @Option(help: "Task name (seqlab list).") var task: String?
    @Option(help: "Mixer layer name (seqlab list).") var layer: String?
    @Option(help: "A config file (JSON, the format of a run's config.json); flags override its keys.") var config: String?
    @Option(help: "Run directory.") var out: String

    @Option(name: .customLong("d-model")) var dModel: Int?
    @Option(name: .customLong("n-layers")) var nLayers: Int?
    @Option(help: "layer_norm, rms_norm or batch_norm.") var norm: String?
    @Flag(name: .customLong("postnorm"), help: "Post-norm blocks (default pre-norm).") var postnorm = false
    @Option(name: .customLong("feed-forward"), help: "none, mlp or glu.") var feedForward: String?
    @Option(name: .customLong("feed-forward-expand")) var feedForwardExpand: Int?
    @Option var dropout: Double?
    @Option(help: "mean or last.") var pooling: String?
    @Flag(help: "A second mixer on the reversed sequence (classification tasks).") var bidirectional = false
    @Option(name: .customLong("embedding-init-std"), help: "Std of the embedding's initial normal draw (default 0.02: Zoology, mamba_ssm, fla; 1: PyTorch's nn.Embedding).")
    var embeddingInitStd: Double?

    @Option var seed: UInt64?
    @Option(name: .customLong("batch-size")) var batchSize: Int?
    @Option(name: .customLong("max-steps")) var maxSteps: Int?
    @Option(name: .customLong("max-time"), help: "Wall-clock budget in seconds.") var maxTime: Double?
    @Option(help: "adamw or sgd.") var optimizer: String?
    @Option var lr: Double?
    @Option(name: .customLong("weight-decay")) var weightDecay: Double?
    @Option(name: .customLong("warmup-steps")) var warmupSteps: Int?
    @Option(name: .customLong("min-lr-factor")) var minLrFactor: Double?
    @Option(name: .customLong("grad-clip")) var gradClip: Double?
    @Option(name: .customLong("eval-every")) var evalEvery: Int?
    @Option(name: .customLong("log-every")) var logEvery: Int?
    @Option(name: .customLong("eval-examples")) var evalExamples: Int?
    @Option(name: .customLong("target-accuracy")) var targetAccuracy: Double?
    @Option(help: "float32 (default) or float64 (parity runs against a reference trainer).") var precision: String?
    @Option(name: .customLong("no-decay"), help: "Parameter roles without weight decay, comma-separated, or none: weight, bias, embedding, norm, ssm (default embedding,bias,norm,ssm).") var noDecay: String?
    @Option(name: .customLong("init-from"), help: "Initial weights: a PyTorch state dict (safetensors) keyed by the model's parameter paths (seqlab convert writes one).") var initFrom: String?

    @Argument(parsing: .allUnrecognized, help: "Layer and task options: --name value or --flag.") var extra: [String] = []

    func run() throws {
        let config = reportingErrors { try resolve() }
        _ = reportingErrors {
            try Trainer(config: config, directory: URL(fileURLWithPath: out)) { line in
                print(line)
                fflush(stdout)
            }.train()
        }
    }

    func resolve() throws -> TrainConfig {
        var c: TrainConfig
        if let config {
            var object = try TrainConfig.loadObject(from: URL(fileURLWithPath: config))
            if let task { object["task"] = task }
            if let layer {
                var model = object["model"] as? [String: Any] ?? [:]
                model["layer"] = layer
                object["model"] = model
            }
            c = try TrainConfig.resolve(object, source: "config file \(config)")
        } else {
            guard let task, let layer else { throw SequenceLabError("train: give --task and --layer (or --config FILE)") }
            c = try TrainConfig.suggested(task: task, layer: layer)
        }
        let layerSpecs = try LayerRegistry.factory(named: c.model.layer).options
        let taskSpecs = try TaskRegistry.factory(named: c.task).options
        for (key, value) in try parseExtraFlags(extra) {
            var used = false
            if layerSpecs.contains(where: { $0.name == key }) { c.model.layerOptions.values[key] = value; used = true }
            if taskSpecs.contains(where: { $0.name == key }) { c.taskOptions.values[key] = value; used = true }
            if !used {
                let known = (layerSpecs + taskSpecs).map { "--" + $0.name.replacingOccurrences(of: "_", with: "-") }
                throw SequenceLabError("train: unknown option --\(key.replacingOccurrences(of: "_", with: "-")) for layer \(c.model.layer) and task \(c.task) (their options: \(known.joined(separator: " ")))")
            }
        }
        if let dModel { c.model.dModel = dModel }
        if let nLayers { c.model.nLayers = nLayers }
        if let norm {
            guard let n = NormKind(rawValue: norm) else { throw SequenceLabError("--norm: '\(norm)' is not layer_norm, rms_norm or batch_norm") }
            c.model.norm = n
        }
        if postnorm { c.model.prenorm = false }
        if let feedForward {
            guard let f = FeedForwardKind(rawValue: feedForward) else { throw SequenceLabError("--feed-forward: '\(feedForward)' is not none, mlp or glu") }
            c.model.feedForward = f
        }
        if let feedForwardExpand { c.model.feedForwardExpand = feedForwardExpand }
        if let dropout { c.model.dropout = dropout }
        if let pooling {
            guard let p = ClassificationPooling(rawValue: pooling) else { throw SequenceLabError("--pooling: '\(pooling)' is not mean or last") }
            c.model.pooling = p
        }
        if bidirectional { c.model.bidirectional = true }
        if let embeddingInitStd { c.model.embeddingInitStd = embeddingInitStd }
        if let seed { c.seed = seed }
        if let batchSize { c.batchSize = batchSize }
        if let maxSteps { c.maxSteps = maxSteps }
        if let maxTime { c.maxTime = maxTime }
        if let optimizer { c.optimizer = optimizer }
        if let lr { c.learningRate = lr }
        if let weightDecay { c.weightDecay = weightDecay }
        if let warmupSteps { c.warmupSteps = warmupSteps }
        if let minLrFactor { c.minLearningRateFactor = minLrFactor }
        if let gradClip { c.gradientClip = gradClip > 0 ? gradClip : nil }
        if let evalEvery { c.evalEvery = evalEvery }
        if let logEvery { c.logEvery = logEvery }
        if let evalExamples { c.evalExamples = evalExamples }
        if let targetAccuracy { c.targetAccuracy = targetAccuracy }
        if let initFrom { c.initFrom = initFrom }
        if let noDecay {
            c.noDecay = try noDecay == "none" ? [] : noDecay.split(separator: ",").map { name in
                guard let role = ParameterRole(rawValue: String(name)) else {
                    throw SequenceLabError("--no-decay: '\(name)' is not a parameter role (\(ParameterRole.allCases.map(\.rawValue).joined(separator: ", ")), or none)")
                }
                return role
            }
        }
        if let precision {
            guard let p = Precision(rawValue: precision) else { throw SequenceLabError("--precision: '\(precision)' is not float32 or float64") }
            c.precision = p
        }
        try c.validate()
        return c
    }
}

/// ["--n-h", "2", "--allow-neg-eigval"] -> [("n_h", "2"), ("allow_neg_eigval", "true")].
func parseExtraFlags(_ args: [String]) throws -> [(String, String)] {
    var pairs: [(String, String)] = []
    var i = 0
    while i < args.count {
        let arg = args[i]
        guard arg.hasPrefix("--"), arg.count > 2 else { throw SequenceLabError("unexpected argument '\(arg)'") }
        var name = String(arg.dropFirst(2))
        var value: String
        if let eq = name.firstIndex(of: "=") {
            value = String(name[name.index(after: eq)...])
            name = String(name[..<eq])
        } else if i + 1 < args.count, !args[i + 1].hasPrefix("--") {
            value = args[i + 1]
            i += 1
        } else {
            value = "true"
        }
        pairs.append((name.replacingOccurrences(of: "-", with: "_"), value))
        i += 1
    }
    return pairs
}
