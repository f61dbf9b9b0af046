import ArgumentParser
import Foundation
import Tensors
import Training

/// `seqlab convert`: a run's checkpoint as a PyTorch state dict (docs/interop.md).
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a run's weights as a PyTorch state dict (safetensors; keys are the model's parameter paths, layouts PyTorch's); `seqlab train --init-from FILE` reads one back.")

    @Argument(help: "A run directory (holding checkpoint.safetensors).") var directory: String
    @Option(help: "The state dict to write (safetensors, atomically).") var out: String

    func run() throws {
        reportingErrors {
            try StateDict.export(run: URL(fileURLWithPath: directory)).write(to: URL(fileURLWithPath: out))
        }
    }
}
