import ArgumentParser
import Layers
import Tasks
import Tensors

/// `seqlab list`: layers, ops and checks with their options and defaults.
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List layers, ops and checks with their options.")

    func run() throws {
        print("Layers (--layer NAME):")
        for f in LayerRegistry.factories {
            print("  \(f.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(f.summary)")
            for o in f.options { print("      \(o.name) = \(o.defaultValue)    \(o.help)") }
        }
        print("\nOps (seqlab op NAME --in IN.safetensors --out OUT.safetensors):")
        for k in KernelRegistry.kernels {
            let inputs = k.inputs.map { $0.optional ? "\($0.name)?" : $0.name }.joined(separator: ", ")
            print("  \(k.name.padding(toLength: 14, withPad: " ", startingAt: 0)) (\(inputs)) -> (\(k.outputs.joined(separator: ", ")))")
            for o in k.options { print("      \(o.name) = \(o.defaultValue)    \(o.help)") }
        }
        print("\nOp checks (seqlab check --op NAME):")
        let names = CheckCatalog.opChecks.map(\.name)
        stride(from: 0, to: names.count, by: 6).forEach { print("  " + names[$0..<min($0 + 6, names.count)].joined(separator: ", ")) }
        print("\nTasks (seqlab train --task NAME; options as flags, e.g. --seq-len 64):")
        for f in TaskRegistry.factories {
            print("  \(f.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(f.summary)")
            for o in f.options { print("      \(o.name) = \(o.defaultValue)    \(o.help)") }
            let recipe = f.recipe.entries()
            if !recipe.isEmpty {
                print("      training: " + recipe.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                      + (f.recipe.note.isEmpty ? "" : "  (\(f.recipe.note))"))
            }
        }
    }
}
