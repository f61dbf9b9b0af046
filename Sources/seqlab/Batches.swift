import ArgumentParser
import Foundation
import Tensors
import Training

/// `seqlab batches`: a run's batches, learning-rate factors and parameter groups, for a reference trainer.
struct Batches: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the first N batches a run draws, the schedule's lr factor per step and the optimiser's parameter groups (safetensors), so that a reference trainer replays the same run.")

    @Option(help: "The run's config (JSON, the format of config.json).") var config: String
    @Option(parsing: .unconditional, help: "How many steps.") var steps: Int
    @Option(help: "The file to write (safetensors, atomically).") var out: String
    @Flag(help: "Also write the validation and test examples the trainer evaluates on (eval.<split>.tokens / targets / labels).")
    var evaluation = false

    func run() throws {
        reportingErrors {
            let object = try TrainConfig.loadObject(from: URL(fileURLWithPath: config))
            let c = try TrainConfig.resolve(object, source: "config file \(config)")
            try TrainingRecord.make(config: c, steps: steps, evaluation: evaluation).write(to: URL(fileURLWithPath: out))
        }
    }
}
