import ArgumentParser
import Layers
import Tasks
import Tensors
import Training

/// `seqlab list`: the trainer and model settings, layers, ops, checks and tasks, each option with its type, range,
/// default and help (all printed from their declarations).
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List settings, layers, ops, checks and tasks with their options.")

    /// One option: "name = default  (type)  help".
    static func line(_ o: OptionSpec) -> String { "      \(o.name) = \(o.defaultValue)    (\(o.typeDescription))  \(o.help)" }

    func run() throws {
        print("Trainer settings (config keys; flags --name-with-dashes):")
        for o in TrainConfig.settings { print(Self.line(o)) }
        print("\nModel settings (config keys under model; flags --name-with-dashes):")
        for o in ModelConfig.settings { print(Self.line(o)) }
        print("\nLayers (--layer NAME; options under model.layer_options, flags --layer.NAME):")
        for f in LayerRegistry.factories {
            print("  \(f.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(f.summary)")
            for o in f.options { print(Self.line(o)) }
        }
        print("\nOps (seqlab op NAME --in IN.safetensors --out OUT.safetensors):")
        for k in KernelRegistry.kernels {
            let inputs = k.inputs.map { $0.optional ? "\($0.name)?" : $0.name }.joined(separator: ", ")
            print("  \(k.name.padding(toLength: 14, withPad: " ", startingAt: 0)) (\(inputs)) -> (\(k.outputs.joined(separator: ", ")))")
            for o in k.options { print(Self.line(o)) }
        }
        print("\nOp checks (seqlab check --op NAME):")
        let names = CheckCatalog.opChecks.map(\.name)
        stride(from: 0, to: names.count, by: 6).forEach { print("  " + names[$0..<min($0 + 6, names.count)].joined(separator: ", ")) }
        print("\nTasks (seqlab train --task NAME; options under task_options, flags --task.NAME, e.g. --task.seq_len 64):")
        for f in TaskRegistry.factories {
            print("  \(f.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(f.summary)")
            for o in f.options { print(Self.line(o)) }
            let recipe = f.recipe.entries()
            if !recipe.isEmpty {
                print("      training: " + recipe.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                      + (f.recipe.note.isEmpty ? "" : "  (\(f.recipe.note))"))
            }
        }
    }
}
