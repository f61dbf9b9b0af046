import Foundation
import Tasks
import Tensors

/// Everything that determines a training run. Written to DIR/config.json fully resolved (with the seed and the git
/// commit), compared on resume, and readable back with `--config FILE` (JSON).
public struct TrainConfig: Codable, Equatable, Sendable {
    public var task: String
    public var taskOptions: Options
    public var model: ModelConfig
    public var seed: UInt64 = 0
    public var batchSize: Int = 32
    /// Optimiser steps; the schedule's horizon.
    public var maxSteps: Int = 2000
    /// Wall-clock budget in seconds (over all resumptions of the run); nil for none.
    public var maxTime: Double? = nil
    public var optimizer: String = "adamw"
    public var learningRate: Double = 1e-3
    public var weightDecay: Double = 0.1
    /// Linear warmup steps; nil = 10% of maxSteps.
    public var warmupSteps: Int? = nil
    /// The cosine schedule ends at learningRate * minLearningRateFactor.
    public var minLearningRateFactor: Double = 0.01
    /// Global gradient-norm clipping; nil for none.
    public var gradientClip: Double? = 1.0
    /// Evaluate on validation (and, at a new best, on the test sets) and checkpoint every this many steps.
    public var evalEvery: Int = 100
    /// Write a training log line every this many steps.
    public var logEvery: Int = 25
    /// Evaluate on at most this many examples per split (nil: all).
    public var evalExamples: Int? = nil
    /// Stop early once validation accuracy reaches this.
    public var targetAccuracy: Double? = nil
    /// The parameter roles that take no weight decay (the rest decay at `weightDecay`); the layers declare the roles.
    public var noDecay: [ParameterRole] = ParameterTags.defaultNoDecay
    /// The arithmetic of the run: Float32 (training, benchmarks) or Float64 (parity with a reference trainer).
    public var precision: Precision = .float32
    /// A PyTorch state dict (safetensors, the model's parameter paths as keys: `seqlab convert` writes one, and so
    /// does `scripts/interop/torch_model.py`) whose weights replace the initial ones; nil to start from the seed's init.
    public var initFrom: String? = nil
    /// The commit of the code that ran (filled in by the trainer; ignored when comparing configs on resume).
    public var gitCommit: String? = nil

    public init(task: String, taskOptions: Options = Options(), model: ModelConfig) {
        self.task = task
        self.taskOptions = taskOptions
        self.model = model
    }

    /// The schedule: linear warmup, then cosine to `minLearningRateFactor`.
    public var schedule: LearningRateSchedule {
        .warmupCosine(warmupSteps: warmupSteps ?? max(1, maxSteps / 10), totalSteps: maxSteps, minFactor: minLearningRateFactor)
    }

    /// Fails with a one-line error on values no run can use.
    public func validate() throws {
        func require(_ ok: Bool, _ message: String) throws { if !ok { throw SequenceLabError("config: \(message)") } }
        try require(batchSize > 0, "batch_size must be positive, got \(batchSize)")
        try require(maxSteps > 0, "max_steps must be positive, got \(maxSteps)")
        try require(learningRate > 0 && learningRate.isFinite, "lr must be positive, got \(learningRate)")
        try require(evalEvery > 0 && logEvery > 0, "eval_every and log_every must be positive")
        try require(["adamw", "sgd"].contains(optimizer), "optimizer must be adamw or sgd, got '\(optimizer)'")
        try require(model.dropout >= 0 && model.dropout < 1, "dropout must be in [0, 1), got \(model.dropout)")
        try require(maxTime.map { $0 > 0 } ?? true, "max_time must be positive")
    }

    /// The configuration of the run `directory` holds (finished or checkpointed), or nil when it holds none yet; a
    /// corrupt config.json is a one-line error. A trainer or sweep refuses a directory whose run differs.
    public static func heldRun(in directory: URL) throws -> TrainConfig? { try RunDirectory(url: directory).heldConfig() }

    /// The model's parameters with weight decay set from `noDecay` (what the optimiser gets).
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

    /// Decodes a config; every key but `task` and `model` may be absent (its default is used).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(task: try c.decode(String.self, forKey: .task),
                  taskOptions: try c.decodeIfPresent(Options.self, forKey: .taskOptions) ?? Options(),
                  model: try c.decode(ModelConfig.self, forKey: .model))
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? batchSize
        maxSteps = try c.decodeIfPresent(Int.self, forKey: .maxSteps) ?? maxSteps
        maxTime = try c.decodeIfPresent(Double.self, forKey: .maxTime)
        optimizer = try c.decodeIfPresent(String.self, forKey: .optimizer) ?? optimizer
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate) ?? learningRate
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? weightDecay
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps)
        minLearningRateFactor = try c.decodeIfPresent(Double.self, forKey: .minLearningRateFactor) ?? minLearningRateFactor
        gradientClip = try c.decodeIfPresent(Double.self, forKey: .gradientClip) ?? gradientClip
        evalEvery = try c.decodeIfPresent(Int.self, forKey: .evalEvery) ?? evalEvery
        logEvery = try c.decodeIfPresent(Int.self, forKey: .logEvery) ?? logEvery
        evalExamples = try c.decodeIfPresent(Int.self, forKey: .evalExamples)
        targetAccuracy = try c.decodeIfPresent(Double.self, forKey: .targetAccuracy)
        gitCommit = try c.decodeIfPresent(String.self, forKey: .gitCommit)
        initFrom = try c.decodeIfPresent(String.self, forKey: .initFrom)
        precision = try c.decodeIfPresent(Precision.self, forKey: .precision) ?? precision
        // A config without the key predates it (TrainConfig.resolve always writes it): what such runs used.
        noDecay = try c.decodeIfPresent([ParameterRole].self, forKey: .noDecay) ?? ParameterTags.legacyNoDecay
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
