import Foundation
import Layers
import Tensors
import Training

// The downstream example (README.md in this folder):
//   DownstreamExample train [STEPS]              trains its own layer and attention on MQAR for STEPS steps (20)
//   DownstreamExample bench [LAYER...] [--shape lra|long|BxL]
//                                                forward + backward ms of each layer (default: every registered one)

/// Prints `message` to standard error and exits with status 1.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
}

do {
    try LayerRegistry.register(DecayedAverageFactory.self)
} catch {
    fail("\(error)")
}

var arguments = Array(CommandLine.arguments.dropFirst())
let command = arguments.isEmpty ? "train" : arguments.removeFirst()
switch command {
case "train":
    guard arguments.count <= 1, let steps = Int(arguments.first ?? "20"), (1...100_000).contains(steps) else {
        fail("usage: DownstreamExample train [STEPS], STEPS an integer in 1...100000")
    }
    let runs = FileManager.default.temporaryDirectory.appendingPathComponent("downstream-example-\(getpid())")
    defer { try? FileManager.default.removeItem(at: runs) }
    for layer in ["decayed_average", "attention"] {
        var config = TrainConfig(
            task: "mqar", taskOptions: Options(["train_size": "256", "val_size": "32", "test_size": "32", "seq_len": "32", "num_pairs": "4"]),
            model: ModelConfig(layer: layer, dModel: 32, nLayers: 2))
        config.maxSteps = steps
        config.evalEvery = steps
        config.batchSize = 16
        do {
            try config.validate()
            let final = try Trainer(config: config, directory: runs.appendingPathComponent(layer)) { _ in }.train()
            print(String(format: "%@: %d steps, %d parameters, test loss %.4f, test accuracy %.3f, %.2f s",
                         layer as NSString, final.steps, final.params, final.testLoss, final.testAccuracy, final.wallS))
        } catch {
            fail("\(layer): \(error)")
        }
    }
case "bench":
    var shape = BenchmarkShape.lra, layers = [String]()
    while !arguments.isEmpty {
        let a = arguments.removeFirst()
        if a == "--shape" {
            guard !arguments.isEmpty, let s = BenchmarkShape(rawValue: arguments.removeFirst()) else { fail("--shape needs lra, long or BxL") }
            shape = s
        } else {
            layers.append(a)
        }
    }
    print("vector kernels: \(SystemBenchmark.instructionSet); \(SystemBenchmark.blasCore); \(MemoryTuning.note)")
    for name in layers.isEmpty ? LayerRegistry.names : layers {
        do {
            let r = try LayerBenchmark.run(name, shape: shape, repeats: 3)
            print(String(format: "%-16@ %-6@ fwd+bwd %8.1f ms  fwd %8.1f ms", r.layer as NSString, r.shape as NSString, r.fwd_bwd_ms, r.fwd_ms))
        } catch {
            fail("\(name): \(error)")
        }
    }
default:
    fail("unknown command '\(command)' (train or bench)")
}
