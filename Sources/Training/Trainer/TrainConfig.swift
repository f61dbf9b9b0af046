import Foundation
import Layers
import Tasks
import Tensors

/// Everything that determines a training run. Written to DIR/config.json fully resolved (with the seed and the git
/// commit), compared on resume, and readable back with `--config FILE` (JSON).
///
/// Every trainer setting is declared once, with its type, range, default and help, in `TrainConfig.settings` (the
/// model's in `ModelConfig.settings`, a task's and a layer's in their factories): the defaults below come from there,
/// and config files, sweep keys, the flags of `seqlab train` and `seqlab list --settings` all go through it.
public struct TrainConfig: Codable, Equatable, Sendable {
    public var task: String
    public var taskOptions: Options
    public var model: ModelConfig
    public var seed: UInt64
    public var batchSize: Int
    /// Optimiser steps; the schedule's horizon.
    public var maxSteps: Int
    /// Wall-clock budget in seconds (over all resumptions of the run); nil for none.
    public var maxTime: Double?
    public var optimizer: String
    public var learningRate: Double
    public var weightDecay: Double
    /// Linear warmup steps; nil = 10% of maxSteps.
    public var warmupSteps: Int?
    /// The cosine schedule ends at learningRate * minLearningRateFactor.
    public var minLearningRateFactor: Double
    /// Global gradient-norm clipping at this norm; 0 for none.
    public var gradientClip: Double
    /// Evaluate on validation (and, at a new best, on the test sets) and checkpoint every this many steps.
    public var evalEvery: Int
    /// Write a training log line every this many steps.
    public var logEvery: Int
    /// Evaluate on at most this many examples per split (nil: all).
    public var evalExamples: Int?
    /// Stop early once validation accuracy reaches this.
    public var targetAccuracy: Double?
    /// The parameter roles that take no weight decay (the rest decay at `weightDecay`); the layers declare the roles.
    public var noDecay: [ParameterRole]
    /// The arithmetic of the run: Float32 (training, benchmarks) or Float64 (parity with a reference trainer).
    public var precision: Precision
    /// A PyTorch state dict (safetensors, the model's parameter paths as keys: `seqlab convert` writes one, and so
    /// does `scripts/interop/torch_model.py`) whose weights replace the initial ones; nil to start from the seed's init.
    public var initFrom: String?
    /// The commit of the code that ran (filled in by the trainer; ignored when comparing configs on resume).
    public var gitCommit: String? = nil

    /// The trainer's settings: the keys of a config file beside `task`, `task_options` and `model`.
    public static let settings: [OptionSpec] = [
        .int("seed", 0, "seed of the task's examples, the init and the batch order", min: 0),
        .int("batch_size", 32, "examples per optimiser step", min: 1, max: 1 << 20),
        .int("max_steps", 2000, "optimiser steps; the schedule's horizon", min: 1, max: 1_000_000_000),
        .optionalNumber("max_time", "wall-clock budget in seconds over all resumptions", above: 0),
        .choice("optimizer", "adamw", ["adamw", "sgd"], "AdamW (betas 0.9, 0.999, eps 1e-8) or SGD"),
        .number("lr", 1e-3, "peak learning rate", above: 0),
        .number("weight_decay", 0.1, "decoupled weight decay of the roles not in no_decay", min: 0),
        .optionalInt("warmup_steps", "linear warmup steps (none: 10% of max_steps)", min: 0),
        .number("min_lr_factor", 0.01, "the cosine schedule ends at lr times this", min: 0, max: 1),
        .number("grad_clip", 1, "clip the global gradient norm at this (0: no clipping)", min: 0),
        .int("eval_every", 100, "steps between evaluations (and checkpoints)", min: 1),
        .int("log_every", 25, "steps between training log lines", min: 1),
        .optionalInt("eval_examples", "evaluate on at most this many examples per split (none: all)", min: 1),
        .optionalNumber("target_accuracy", "stop once validation accuracy reaches this", above: 0, max: 1),
        .text("no_decay", ParameterTags.defaultNoDecay.map(\.rawValue).joined(separator: ","),
              "parameter roles without weight decay, comma-separated, or none: "
              + ParameterRole.allCases.map(\.rawValue).joined(separator: ", ")),
        .choice("precision", Precision.float32.rawValue, Precision.allCases.map(\.rawValue),
                "float32 (training, benchmarks) or float64 (parity runs against a reference trainer)"),
        .optionalText("init_from", "initial weights: a PyTorch state dict (safetensors) keyed by the model's parameter paths"),
    ]

    /// A run of `task` with `model`, every trainer setting at `settings` (the declared defaults unless given).
    public init(task: String, taskOptions: Options = Options(), model: ModelConfig,
                settings v: OptionValues = TrainConfig.defaultSettings) {
        self.task = task
        self.taskOptions = taskOptions
        self.model = model
        seed = UInt64(v.int("seed"))
        batchSize = v.int("batch_size")
        maxSteps = v.int("max_steps")
        maxTime = v.optionalDouble("max_time")
        optimizer = v.string("optimizer")
        learningRate = v.double("lr")
        weightDecay = v.double("weight_decay")
        warmupSteps = v.optionalInt("warmup_steps")
        minLearningRateFactor = v.double("min_lr_factor")
        gradientClip = v.double("grad_clip")
        evalEvery = v.int("eval_every")
        logEvery = v.int("log_every")
        evalExamples = v.optionalInt("eval_examples")
        targetAccuracy = v.optionalDouble("target_accuracy")
        noDecay = ParameterRole.list(v.string("no_decay"))!
        precision = Precision(rawValue: v.string("precision"))!
        initFrom = v.optionalString("init_from")
    }

    /// Every trainer setting at its declared default.
    public static let defaultSettings = try! Options().resolved(against: settings, owner: "trainer")

    /// The schedule: linear warmup, then cosine to `minLearningRateFactor`.
    public var schedule: LearningRateSchedule {
        .warmupCosine(warmupSteps: warmupSteps ?? max(1, maxSteps / 10), totalSteps: maxSteps, minFactor: minLearningRateFactor)
    }

    /// Fails with a one-line error on combinations no run can use (each value on its own was checked against its
    /// declaration when read): the layer and its options, a registered task's options (a task handed to a `Trainer`
    /// directly checks its own), warmup beyond the run.
    public func validate() throws {
        _ = try LayerRegistry.resolvedOptions(model.layer, model.layerOptions)
        if TaskRegistry.names.contains(task) { _ = try TaskRegistry.resolvedOptions(task, taskOptions) }
        if let warmupSteps, warmupSteps > maxSteps {
            throw SequenceLabError("warmup_steps \(warmupSteps) exceeds max_steps \(maxSteps)")
        }
    }

    /// The configuration of the run `directory` holds (finished or checkpointed), or nil when it holds none yet; a
    /// corrupt config.json is a one-line error. A trainer or sweep refuses a directory whose run differs.
    public static func heldRun(in directory: URL) throws -> TrainConfig? { try RunDirectory(url: directory).heldConfig() }

    /// The model's parameters with weight decay set from `noDecay` (what the optimiser gets).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func optimizerGroups<T: TensorScalar>(_ parameters: [NamedParameter<T>]) -> [NamedParameter<T>] {
        parameters.map { p in
            var q = p
            q.tags = p.tags.decaying(unless: noDecay)
            return q
        }
    }

    /// Whether two configurations describe the same run (the git commit they were written at aside).
    public func sameRun(as other: TrainConfig) -> Bool {
        var a = self, b = other
        a.gitCommit = nil
        b.gitCommit = nil
        return a == b
    }
}

extension ParameterRole {
    /// "embedding,bias" or "none" (the empty list); nil if a name is not a role.
    static func list(_ text: String) -> [ParameterRole]? {
        if text == "none" || text.isEmpty { return [] }
        var roles: [ParameterRole] = []
        for name in text.split(separator: ",") {
            guard let role = ParameterRole(rawValue: name.trimmingCharacters(in: .whitespaces)) else { return nil }
            roles.append(role)
        }
        return roles
    }
}

/// The scalar type a run computes in.
public enum Precision: String, Codable, Sendable, CaseIterable {
    case float32, float64
}

/// A decoding error in one line.
func oneLine(_ error: Error) -> String {
    if let e = error as? DecodingError {
        switch e {
        case .keyNotFound(let key, _): return "missing key '\(key.stringValue)'"
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            let path = c.codingPath.map(\.stringValue).joined(separator: ".")
            return "\(path.isEmpty ? "" : "at '\(path)': ")\(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }
    return "\(error)".replacingOccurrences(of: "\n", with: " ")
}

extension TrainConfig {
    enum CodingKeys: String, CodingKey {
        case task, model, seed, optimizer
        case taskOptions = "task_options", batchSize = "batch_size", maxSteps = "max_steps", maxTime = "max_time"
        case learningRate = "lr", weightDecay = "weight_decay", warmupSteps = "warmup_steps"
        case minLearningRateFactor = "min_lr_factor", gradientClip = "grad_clip", evalEvery = "eval_every"
        case logEvery = "log_every", evalExamples = "eval_examples", targetAccuracy = "target_accuracy"
        case gitCommit = "git_commit", initFrom = "init_from", precision, noDecay = "no_decay"
    }

    /// Decodes a config.json (through `init(object:source:)`: every key checked against the declared settings).
    public init(from decoder: Decoder) throws {
        try self.init(object: decoder.singleValueContainer().decode([String: JSONValue].self), source: "config")
    }

    /// A config from a JSON object: `task` and `model.layer` must be there, every other key may be absent (its
    /// declared default), and every key present must be a declared setting holding a value of its type and range,
    /// else a one-line error naming `source`, the key path and, for a near miss, the closest valid key.
    public init(object: [String: JSONValue], source: String) throws {
        let structural = ["task", "task_options", "model", "git_commit"]
        guard case .string(let task)? = object["task"] else {
            throw SequenceLabError("\(source): " + (object["task"] == nil ? "missing key 'task'" : "task must be a name (text)"))
        }
        guard case .object(let modelObject)? = object["model"] else {
            throw SequenceLabError("\(source): " + (object["model"] == nil ? "missing key 'model'" : "model must be an object"))
        }
        var settings = object.filter { !structural.contains($0.key) }
        // A config without these keys predates them (the trainer always writes both): what such runs used.
        if settings["no_decay"] == nil { settings["no_decay"] = .array(ParameterTags.legacyNoDecay.map { .string($0.rawValue) }) }
        if case .array(let roles)? = settings["no_decay"] {
            var names: [String] = []
            for role in roles {
                guard case .string(let name) = role else { throw SequenceLabError("\(source): no_decay must be a list of role names") }
                names.append(name)
            }
            settings["no_decay"] = .string(names.isEmpty ? "none" : names.joined(separator: ","))
        }
        let values = try JSONValue.settings(settings, against: Self.settings, source: source, keyPath: "", extraKeys: structural)
        if ParameterRole.list(values.string("no_decay")) == nil {
            throw SequenceLabError("\(source): no_decay: '\(values.string("no_decay"))' is not a list of parameter roles ("
                                   + ParameterRole.allCases.map(\.rawValue).joined(separator: ", ") + ", or none)")
        }
        self.init(task: task, taskOptions: try JSONValue.options(object["task_options"], source: source, key: "task_options"),
                  model: try ModelConfig(object: modelObject, source: source), settings: values)
        if case .string(let commit)? = object["git_commit"] { gitCommit = commit }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(task, forKey: .task)
        try c.encode(taskOptions, forKey: .taskOptions)
        try c.encode(model, forKey: .model)
        try c.encode(seed, forKey: .seed)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(maxSteps, forKey: .maxSteps)
        try c.encodeIfPresent(maxTime, forKey: .maxTime)
        try c.encode(optimizer, forKey: .optimizer)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(weightDecay, forKey: .weightDecay)
        try c.encodeIfPresent(warmupSteps, forKey: .warmupSteps)
        try c.encode(minLearningRateFactor, forKey: .minLearningRateFactor)
        try c.encode(gradientClip, forKey: .gradientClip)
        try c.encode(evalEvery, forKey: .evalEvery)
        try c.encode(logEvery, forKey: .logEvery)
        try c.encodeIfPresent(evalExamples, forKey: .evalExamples)
        try c.encodeIfPresent(targetAccuracy, forKey: .targetAccuracy)
        try c.encode(noDecay, forKey: .noDecay)
        try c.encode(precision, forKey: .precision)
        try c.encodeIfPresent(initFrom, forKey: .initFrom)
        try c.encodeIfPresent(gitCommit, forKey: .gitCommit)
    }
}

/// The JSON coders of configs and run files (keys are snake_case through the types' CodingKeys: `batch_size`, `d_model`).
public enum RunFileCoding {
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }

    public static var decoder: JSONDecoder { JSONDecoder() }
}
