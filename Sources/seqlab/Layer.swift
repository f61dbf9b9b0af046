import ArgumentParser
import Foundation
import Layers
import Tensors

/// `seqlab layer`: evaluate one registered layer on given weights and input (docs/interop.md).
struct Layer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate one registered layer on weights in PyTorch's state_dict keys and layouts; with grad_y, also write grad_x and grad_<key>.")

    @Argument(help: "The layer name (see `seqlab list`).") var name: String
    @Option(name: .customLong("in"), help: "Input safetensors file: x [B, L, D], the layer's state_dict, optional grad_y; options in __metadata__.") var input: String
    @Option(name: .customLong("out"), help: "Output safetensors file (written atomically): y, and grad_x, grad_<key> with grad_y.") var output: String

    func run() throws {
        reportingErrors {
            try LayerRunner.run(name, input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: output))
        }
    }
}
