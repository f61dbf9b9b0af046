import Foundation
import Tasks
import Tensors

/// What a run feeds its optimiser, written out for a reference trainer to replay (scripts/interop/train_parity.py):
/// the batches of steps 0..<N exactly as the trainer draws them (the same `BatchSampler`), the schedule's learning-rate
/// factor at each step, and the optimiser's parameter groups (which parameters decay, which have their own learning
/// rate) by parameter path.
public enum TrainingRecord {
    /// tokens [N, B, L] and targets [N, B, L] (I64; every batch padded to the longest of the N with the pad token and
    /// target -100), labels [N, B] (I64), lr_factor [N] (F64); metadata: `seqlab_config` (the config as JSON),
    /// `vocabulary`, `classes`, `param_groups` (JSON: [{"name", "role", "weight_decay", "lr"}], lr null = the base lr).
    public static func make(config: TrainConfig, steps: Int) throws -> SafeTensors {
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
        return file
    }
}
