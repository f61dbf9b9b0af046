import Foundation
import Tensors

/// The least memory training a model needs, checked before it is allocated: every parameter four times (the weights,
/// their gradients and AdamW's two moments) at the model's precision, against the memory the process may use
/// (`MemoryLimit.process`: physical memory, the cgroup's limit of a Slurm job or a container, `ulimit -v`).
/// `SequenceModel` builds its first block, counts it (blocks are alike) and checks
///     4 x bytes per scalar x (embedding + n_layers x block + head)  <=  the process's memory limit
/// before the other blocks exist, so that a configuration the machine cannot hold (every setting within its bounds,
/// d_model 8192 x n_layers 1024, say) is a one-line error instead of the kernel's out-of-memory kill. The trainer
/// adds, before each batch longer than any before, the activations one step surely holds with `checkStep`: counted
/// (`SequenceModel.activationFloor`: the logits, their softmax, the residual stream), then, if that fits, measured
/// (`ActivationProbe`: everything the forward pass keeps, each layer's intermediates too). Floors, not forecasts.
public enum ModelMemory {
    /// Copies of every parameter that training keeps: weights, gradients, AdamW's first and second moments.
    public static let copiesPerParameter = 4

    /// Throws when `parameters` scalars of `scalarBytes` bytes, kept `copiesPerParameter` times, exceed `limit` bytes.
    public static func check(parameters: Double, scalarBytes: Int, limit: MemoryLimit = .process, describe: () -> String) throws {
        let needed = keptBytes(parameters: parameters, scalarBytes: scalarBytes)
        guard needed > limit.bytes else { return }
        throw SequenceLabError(String(format: "model: %@ has at least %.3g parameters; training keeps each %d times (weights, gradients, AdamW moments): %@ at the least, and this process may use %@",
                                      describe(), parameters, copiesPerParameter, gigabytes(needed), limit.description))
    }

    /// Throws when one training step cannot fit: the parameters' floor (as `check`) plus the activations exceed `limit`
    /// bytes. The activations are the larger of `activations` scalars (the model's counted `activationFloor` of the
    /// batch about to run) and `measuredBytes` (what its forward pass keeps, `ActivationProbe`), when measured.
    /// `describe` names the step.
    public static func checkStep(parameters: Double, activations: Double, scalarBytes: Int, measuredBytes: Double? = nil,
                                 limit: MemoryLimit = .process, describe: () -> String) throws {
        let kept = keptBytes(parameters: parameters, scalarBytes: scalarBytes), counted = activations * Double(scalarBytes)
        let live = max(counted, measuredBytes ?? 0)
        guard kept + live > limit.bytes else { return }
        let what = live > counted ? "what its forward pass keeps for the backward pass, measured on its first one and two sequences"
                                  : "the logits, their softmax and the residual stream"
        throw SequenceLabError("training: \(describe()) needs at least \(gigabytes(kept + live)) for one step (\(gigabytes(kept)) for the parameters kept \(copiesPerParameter) times, \(gigabytes(live)) for \(what)), and this process may use \(limit)")
    }

    /// Bytes of `parameters` scalars kept `copiesPerParameter` times.
    static func keptBytes(parameters: Double, scalarBytes: Int) -> Double { parameters * Double(scalarBytes * copiesPerParameter) }

    static func gigabytes(_ bytes: Double) -> String { String(format: "%.1f GB", bytes / 1e9) }
}
