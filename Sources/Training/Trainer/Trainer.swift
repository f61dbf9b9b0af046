import Foundation
import Layers
import Tasks
import Tensors

/// Trains a `SequenceModel` on a task and leaves the run files of DESIGN.md in its directory.
///
/// AdamW (or SGD) with the parameter groups the layers tag, linear warmup + cosine, global-norm clipping; validation
/// every `evalEvery` steps, the test splits at each new best validation accuracy (ties: lower validation loss), an atomic checkpoint after each
/// evaluation. Everything random is a function of (seed, step): the data order (one permutation per epoch) and the
/// dropout masks. So a run killed at any moment and restarted with the same command resumes from its last
/// checkpoint and ends with the same metrics as an uninterrupted run. With `StopSignals` installed, SIGTERM, SIGUSR1
/// or SIGINT stop it after the current step with a checkpoint of that step (`TrainingStopped`).
public final class Trainer {
    public let config: TrainConfig
    let run: RunDirectory
    let log: (String) -> Void
    let providedTask: (any SequenceTask)?

    /// A trainer for `config` writing to `directory`; `log` receives progress lines. `task` replaces the registry's
    /// task named in the config (for tasks defined outside the registry, such as tests' own).
    public init(config: TrainConfig, directory: URL, task: (any SequenceTask)? = nil, log: @escaping (String) -> Void = { print($0) }) {
        self.config = config
        run = RunDirectory(url: directory)
        providedTask = task
        self.log = log
    }

    /// Trains (or resumes, or returns the finished result) and returns the final metrics.
    @discardableResult
    public func train() throws -> FinalMetrics { try run(interruptingAt: nil)! }

    /// Trains until `step` and leaves the run as a kill right after that step's checkpoint would (tests).
    func trainSteps(upTo step: Int) throws { _ = try run(interruptingAt: step) }

    private func run(interruptingAt interruption: Int?) throws -> FinalMetrics? {
        try config.validate()
        switch config.precision {
        case .float64: return try run(interruptingAt: interruption, as: Double.self)
        case .float32: return try run(interruptingAt: interruption, as: Float.self)
        }
    }

    /// The run in precision T (`config.precision`): Float32 for training, Float64 for parity checks against a reference.
    private func run<T: TensorScalar>(interruptingAt interruption: Int?, as _: T.Type) throws -> FinalMetrics? {
        try run.create()
        let lock = try run.lock()
        defer { withExtendedLifetime(lock) {} }
        if let held = try run.heldConfig(), !held.sameRun(as: config) {
            throw SequenceLabError("\(run.url.path) holds a run with a different configuration (see its config.json); use another --out")
        }
        if run.exists(run.final) {
            log("\(run.url.path): already finished (final.json exists)")
            return try run.readJSON(FinalMetrics.self, from: run.final)
        }
        let task = try providedTask ?? TaskRegistry.make(config.task, options: config.taskOptions, seed: config.seed)
        let model = try SequenceModel<T>(config: config.model, task: task, seed: config.seed)
        let parameters = config.optimizerGroups(model.parameters)
        let optimizer: any Optimizer<T> = config.optimizer == "sgd"
            ? SGD(parameters: parameters, learningRate: config.learningRate, weightDecay: config.weightDecay)
            : AdamW(parameters: parameters, learningRate: config.learningRate, weightDecay: config.weightDecay)
        var state = TrainerState()
        if run.exists(run.checkpoint) {
            state = try Checkpoint.load(from: run.checkpoint, model: model, optimizer: optimizer)
            try run.truncateMetrics(after: state.step)
            log("resuming \(run.url.path) at step \(state.step)")
        } else {
            if let path = config.initFrom {
                let url = URL(fileURLWithPath: path)
                try StateDict.load(try SafeTensors.read(from: url), into: model, source: url.path)
                log("initial weights from \(url.path)")
            }
            var resolved = config
            resolved.gitCommit = currentGitCommit()
            try run.writeJSON(resolved, to: run.config)
            try? FileManager.default.removeItem(at: run.metrics)
        }

        let progress = ProgressReporter(total: config.maxSteps, log: log)
        let data = BatchSampler(dataset: task.train, batchSize: config.batchSize, seed: config.seed, padToken: task.padToken)
        let schedule = config.schedule
        let started = Date()
        let wallBefore = state.wallSeconds
        var lastEvaluatedStep = state.step > 0 && state.step % config.evalEvery == 0 ? state.step : -1
        var windowStart = Date(), windowTokens = 0
        // the step's memory floor (`ModelMemory.checkStep`), checked again whenever a batch is longer than any before
        let parameterCount = Double(model.parameters.scalarCount)
        var checkedLengths = (0, 0)

        while state.step < config.maxSteps && state.stoppedBy == nil {
            if let maxTime = config.maxTime, wallBefore + Date().timeIntervalSince(started) >= maxTime {
                state.stoppedBy = "max_time"
                break
            }
            let batch = data.batch(step: state.step)
            let lengths = (batch.length, batch.paired?.length ?? 0)
            if lengths.0 > checkedLengths.0 || lengths.1 > checkedLengths.1 {
                let step = "\(config.task), batch \(batch.size) x length \(batch.length), \(task.outputClasses) classes, "
                    + "\(config.model.layer) d_model \(config.model.dModel) x \(config.model.nLayers) layers"
                let counted = model.activationFloor(batch), scalarBytes = MemoryLayout<T>.size
                // the counted floor first: a step it refuses is not probed (the probe's forward passes could not fit either)
                try ModelMemory.checkStep(parameters: parameterCount, activations: counted, scalarBytes: scalarBytes) { step }
                try ModelMemory.checkStep(parameters: parameterCount, activations: counted, scalarBytes: scalarBytes,
                                          measuredBytes: ActivationProbe.keptBytes(model: model, batch: batch)) { step }
                checkedLengths = (max(lengths.0, checkedLengths.0), max(lengths.1, checkedLengths.1))
            }
            var dropoutRNG = RandomGenerator(seed: config.seed ^ UInt64(state.step &+ 1) &* 0x9E37_79B9_7F4A_7C15)
            let (loss, correct, scored) = model.loss(batch, training: true, rng: &dropoutRNG)
            guard loss.item.isFinite else { throw divergence("training loss is \(loss.item) at step \(state.step + 1)") }
            loss.backward()
            if config.gradientClip > 0 { clipGradientNorm(parameters, maxNorm: T(config.gradientClip)) }
            let factor = schedule.factor(step: state.step)
            optimizer.step(scheduleFactor: factor)
            optimizer.zeroGrad()
            state.step += 1
            state.tokensSeen += batch.tokenCount
            windowTokens += batch.tokenCount
            state.windowLoss += Double(loss.item)
            state.windowCorrect += correct
            state.windowScored += scored
            state.windowSteps += 1
            state.wallSeconds = wallBefore + Date().timeIntervalSince(started)
            let epoch = Double(state.step * config.batchSize) / Double(max(1, task.train.count))
            progress.update(step: state.step, loss: Double(loss.item), accuracy: Double(correct) / Double(max(1, scored)))

            if state.step % config.logEvery == 0 {
                let seconds = max(1e-9, Date().timeIntervalSince(windowStart))
                try run.append(MetricsRecord(
                    step: state.step, epoch: epoch, split: "train", loss: state.windowLoss / Double(state.windowSteps),
                    accuracy: Double(state.windowCorrect) / Double(max(1, state.windowScored)),
                    lr: config.learningRate * factor, tokensPerS: Double(windowTokens) / seconds, wallS: state.wallSeconds))
                progress.window(step: state.step, loss: state.windowLoss / Double(state.windowSteps),
                                accuracy: Double(state.windowCorrect) / Double(max(1, state.windowScored)),
                                stepsPerSecond: Double(state.windowSteps) / seconds)
                (state.windowLoss, state.windowCorrect, state.windowScored, state.windowSteps) = (0, 0, 0, 0)
                windowStart = Date()
                windowTokens = 0
            }
            if state.step % config.evalEvery == 0 || state.step == config.maxSteps {
                try evaluateAndCheckpoint(task: task, model: model, optimizer: optimizer, state: &state, epoch: epoch, lr: config.learningRate * factor)
                lastEvaluatedStep = state.step
            }
            if state.step == interruption { return nil }
            if let signal = StopSignals.received, state.step < config.maxSteps, state.stoppedBy == nil {
                if lastEvaluatedStep != state.step {  // else the evaluation just wrote this step's checkpoint
                    try Checkpoint.save(to: run.checkpoint, model: model, optimizer: optimizer, state: state)
                    try run.writeJSON(state, to: run.trainerState)
                }
                let stopped = TrainingStopped(signal: signal, step: state.step, directory: run.url.path)
                log(stopped.description)
                throw stopped
            }
        }
        if lastEvaluatedStep != state.step {
            let epoch = Double(state.step * config.batchSize) / Double(max(1, task.train.count))
            try evaluateAndCheckpoint(task: task, model: model, optimizer: optimizer, state: &state, epoch: epoch,
                                      lr: config.learningRate * schedule.factor(step: max(0, state.step - 1)))
        }
        progress.finish()
        let final = FinalMetrics(
            bestValAccuracy: state.bestValidationAccuracy, bestValStep: state.bestStep,
            testAccuracy: state.testMetricsAtBest["test_accuracy"] ?? .nan, testLoss: state.testMetricsAtBest["test_loss"] ?? .nan,
            steps: state.step, params: parameters.reduce(0) { $0 + $1.tensor.count },
            stateSize: model.stateSize(sequenceLength: config.stateLength(task: task)), wallS: state.wallSeconds,
            stoppedBy: state.stoppedBy ?? "max_steps", tests: state.testMetricsAtBest)
        try run.writeJSON(final, to: run.final)
        log(String(format: "done: best val acc %.4f at step %d, test acc %.4f (%@)", final.bestValAccuracy, final.bestValStep,
                   final.testAccuracy, final.stoppedBy as NSString))
        return final
    }

    /// Validation, the test splits at a new best, an atomic checkpoint, and the early-stopping decision.
    /// The error of a run whose loss (training or evaluation) left the finite numbers: where it happened, and what
    /// the run directory keeps (the last checkpoint's step, read from the files, or that there is none yet).
    private func divergence(_ what: String) -> SequenceLabError {
        let kept: String
        if run.exists(run.checkpoint), let file = try? SafeTensors.read(from: run.checkpoint),
           let json = file.metadata["trainer_state"], let saved = try? JSONDecoder().decode(TrainerState.self, from: Data(json.utf8)) {
            kept = "the last checkpoint (step \(saved.step)) is kept in \(run.url.path)"
        } else {
            kept = "no checkpoint was written yet (the first comes at step \(min(config.evalEvery, config.maxSteps)))"
        }
        return SequenceLabError("\(what): stopping (try a lower learning rate); \(kept)")
    }

    private func evaluateAndCheckpoint<T: TensorScalar>(
        task: any SequenceTask, model: SequenceModel<T>, optimizer: any Optimizer<T>, state: inout TrainerState,
        epoch: Double, lr: Double
    ) throws {
        let validation = Evaluator.evaluate(model, on: task.validation, batchSize: config.batchSize, limit: config.evalExamples, padToken: task.padToken)
        guard validation.loss.isFinite else { throw divergence("the \(task.validation.name) loss is \(validation.loss) at step \(state.step)") }
        try run.append(MetricsRecord(step: state.step, epoch: epoch, split: task.validation.name, loss: validation.loss,
                                     accuracy: validation.accuracy, lr: lr, tokensPerS: 0, wallS: state.wallSeconds))
        // Model selection on validation accuracy, ties broken by validation loss (a saturated validation accuracy, as
        // in-distribution parity reaches early, keeps selecting the better-calibrated model for the test splits).
        let better = validation.accuracy > state.bestValidationAccuracy
            || (validation.accuracy == state.bestValidationAccuracy && validation.loss < state.bestValidationLoss ?? .infinity)
        if better {
            state.bestValidationAccuracy = validation.accuracy
            state.bestValidationLoss = validation.loss
            state.bestStep = state.step
            state.testMetricsAtBest = [:]
            for split in task.tests {
                let r = Evaluator.evaluate(model, on: split, batchSize: config.batchSize, limit: config.evalExamples, padToken: task.padToken)
                guard r.loss.isFinite else { throw divergence("the \(split.name) loss is \(r.loss) at step \(state.step)") }
                state.testMetricsAtBest["\(split.name)_accuracy"] = r.accuracy
                state.testMetricsAtBest["\(split.name)_loss"] = r.loss
                try run.append(MetricsRecord(step: state.step, epoch: epoch, split: split.name, loss: r.loss, accuracy: r.accuracy,
                                             lr: lr, tokensPerS: 0, wallS: state.wallSeconds))
            }
        }
        log(String(format: "step %d: val loss %.4f acc %.4f (best %.4f at %d)", state.step, validation.loss, validation.accuracy,
                   state.bestValidationAccuracy, state.bestStep))
        if let target = config.targetAccuracy, validation.accuracy >= target { state.stoppedBy = "target_accuracy" }
        try Checkpoint.save(to: run.checkpoint, model: model, optimizer: optimizer, state: state)
        try run.writeJSON(state, to: run.trainerState)
    }
}

/// The batches of one run: example indices from a per-epoch permutation of the training split, a pure function of
/// (seed, step).
final class BatchSampler {
    let dataset: Dataset
    let batchSize: Int
    let seed: UInt64
    let padToken: Int
    private var cached: (epoch: Int, order: [Int])? = nil

    init(dataset: Dataset, batchSize: Int, seed: UInt64, padToken: Int) {
        self.dataset = dataset
        self.batchSize = batchSize
        self.seed = seed
        self.padToken = padToken
    }

    func permutation(epoch: Int) -> [Int] {
        var order = Array(0..<dataset.count)
        var rng = RandomGenerator(seed: seed &+ 0x5EED &+ UInt64(epoch) &* 0x2545_F491_4F6C_DD1D)
        order.shuffle(using: &rng)
        return order
    }

    func batch(step: Int) -> Batch {
        let n = dataset.count
        let examples = (0..<batchSize).map { k -> Example in
            let index = step * batchSize + k
            let epoch = index / n
            if cached?.epoch != epoch { cached = (epoch, permutation(epoch: epoch)) }
            return dataset.example(cached!.order[index % n])
        }
        return Batch(examples, padToken: padToken)
    }
}

/// Loss and accuracy of a model on a split (no gradients, no dropout).
public enum Evaluator {
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func evaluate<T: TensorScalar>(
        _ model: SequenceModel<T>, on split: Dataset, batchSize: Int, limit: Int?, padToken: Int
    ) -> (loss: Double, accuracy: Double) {
        let count = min(split.count, limit ?? split.count)
        var totalLoss = 0.0, correct = 0, scored = 0
        var rng = RandomGenerator(seed: 0)
        Tape.withoutGradients {
            for start in stride(from: 0, to: count, by: batchSize) {
                let examples = (start..<min(count, start + batchSize)).map { split.example($0) }
                let r = model.loss(Batch(examples, padToken: padToken), training: false, rng: &rng)
                totalLoss += Double(r.loss.item) * Double(r.scored)
                correct += r.correct
                scored += r.scored
            }
        }
        return (totalLoss / Double(max(1, scored)), Double(correct) / Double(max(1, scored)))
    }
}
