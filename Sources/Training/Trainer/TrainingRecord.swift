import Foundation
import Tasks
import Tensors

/// What a run feeds its optimiser, written out for a reference trainer to replay (scripts/interop/train_parity.py):
/// the batches of steps 0..<N exactly as the trainer draws them (the same `BatchSampler`), the schedule's learning-rate
/// factor at each step, and the optimiser's parameter groups (which parameters decay, which have their own learning
/// rate) by parameter path; with `evaluation`, also the validation and test examples the trainer evaluates on.
public enum TrainingRecord {
    /// tokens [N, B, L] and targets [N, B, L] (I64; every batch padded to the longest of the N with the pad token and
    /// target -100), labels [N, B] (I64), lr_factor [N] (F64); metadata: `seqlab_config` (the config as JSON),
    /// `vocabulary`, `classes`, `train_size`, `state_size` (final.json's), `param_groups` (JSON: [{"name", "role", "weight_decay", "lr"}], lr null = the base lr).
    /// With `evaluation`: per evaluated split (validation first, then the tests; `eval_splits` in the metadata names
    /// them) `eval.<split>.tokens`, `eval.<split>.targets` [n, L] and `eval.<split>.labels` [n]: its first
    /// min(size, eval_examples) examples, the ones the trainer's evaluation scores.
    public static func make(config: TrainConfig, steps: Int, evaluation: Bool = false) throws -> SafeTensors {
        try config.validate()
        guard steps >= 1 else { throw SequenceLabError("batches: steps must be positive, got \(steps)") }
        let (examples, limit) = (steps.multipliedReportingOverflow(by: config.batchSize), 10_000_000)
        guard !examples.overflow, examples.partialValue <= limit else {
            throw SequenceLabError("batches: \(steps) steps x batch \(config.batchSize) is more than \(limit) examples (the record is held in memory)")
        }
        let task = try TaskRegistry.make(config.task, options: config.taskOptions, seed: config.seed)
        let sampler = BatchSampler(dataset: task.train, batchSize: config.batchSize, seed: config.seed, padToken: task.padToken)
        let batches = (0..<steps).map { sampler.batch(step: $0) }
        let length = batches.map(\.length).max() ?? 0, b = config.batchSize
        var tokens = [Int](repeating: task.padToken, count: steps * b * length)
        var targets = [Int](repeating: Example.ignored, count: steps * b * length)
        var labels = [Int](repeating: 0, count: steps * b)
        for (s, batch) in batches.enumerated() {
            for i in 0..<b {
                labels[s * b + i] = batch.labels[i]
                for t in 0..<batch.length {
                    tokens[(s * b + i) * length + t] = batch.tokens[i * batch.length + t]
                    if !batch.targets.isEmpty { targets[(s * b + i) * length + t] = batch.targets[i * batch.length + t] }
                }
            }
        }
        var file = SafeTensors()
        if evaluation {
            let splits = [task.validation] + task.tests
            for split in splits {
                let examples = (0..<min(split.count, config.evalExamples ?? split.count)).map { split.example($0) }
                try setPadded(&file, "eval.\(split.name)", examples, padToken: task.padToken)
            }
            file.metadata["eval_splits"] = String(decoding: try JSONSerialization.data(withJSONObject: splits.map(\.name)), as: UTF8.self)
        }
        try file.setIntegers("tokens", tokens, shape: [steps, b, length])
        try file.setIntegers("targets", targets, shape: [steps, b, length])
        try file.setIntegers("labels", labels, shape: [steps, b])
        let schedule = config.schedule
        file.set("lr_factor", Tensor<Double>(shape: [steps], data: (0..<steps).map { schedule.factor(step: $0) }))
        let model = try SequenceModel<Float>(config: config.model, task: task, seed: config.seed)
        let groups: [[String: Any]] = config.optimizerGroups(model.parameters).map {
            ["name": $0.name, "role": $0.tags.role.rawValue, "weight_decay": $0.tags.weightDecay,
             "lr": $0.tags.learningRate.map { $0 as Any } ?? NSNull()]
        }
        file.metadata["param_groups"] = String(decoding: try JSONSerialization.data(withJSONObject: groups, options: [.sortedKeys]), as: UTF8.self)
        file.metadata["seqlab_config"] = String(decoding: try RunFileCoding.encoder.encode(config), as: UTF8.self)
        file.metadata["vocabulary"] = String(task.inputVocabulary)
        file.metadata["classes"] = String(task.outputClasses)
        file.metadata["train_size"] = String(task.train.count)
        file.metadata["state_size"] = String(model.stateSize(sequenceLength: config.stateLength(task: task)))
        return file
    }

    /// `<prefix>.tokens`, `.targets` [n, L] (padded to the longest with the pad token and target -100) and `.labels` [n].
    private static func setPadded(_ file: inout SafeTensors, _ prefix: String, _ examples: [Example], padToken: Int) throws {
        let n = examples.count, length = examples.map(\.tokens.count).max() ?? 0
        var tokens = [Int](repeating: padToken, count: n * length), targets = [Int](repeating: Example.ignored, count: n * length)
        for (i, e) in examples.enumerated() {
            for t in e.tokens.indices {
                tokens[i * length + t] = e.tokens[t]
                if !e.targets.isEmpty { targets[i * length + t] = e.targets[t] }
            }
        }
        try file.setIntegers("\(prefix).tokens", tokens, shape: [n, length])
        try file.setIntegers("\(prefix).targets", targets, shape: [n, length])
        try file.setIntegers("\(prefix).labels", examples.map(\.label), shape: [n])
    }
}
