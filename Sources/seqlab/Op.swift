import ArgumentParser
import Foundation
import Layers
import Tensors

/// `seqlab op`: evaluate one functional kernel of KERNELS.md on tensors from a safetensors file.
struct Op: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate one functional kernel (KERNELS.md) on given tensors; with grad_<output> cotangents, also write grad_<input>.")

    @Argument(help: "The kernel name (see `seqlab list`).") var name: String
    @Option(name: .customLong("in"), help: "Input safetensors file.") var input: String
    @Option(name: .customLong("out"), help: "Output safetensors file (written atomically).") var output: String

    func run() throws {
        reportingErrors {
            try KernelRegistry.run(name, input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: output))
        }
    }
}
