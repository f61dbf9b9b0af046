import Foundation
import Tensors

/// A model's weights as a PyTorch state dict: every parameter and buffer under its path ("embedding.weight",
/// "blocks.0.norm1.weight", "blocks.0.mixer.in_proj.weight", "norm.weight", "head.output.weight") in the layouts of
/// the reference modules (docs/interop.md), so that a PyTorch model built with the same module names
/// (`scripts/interop/torch_model.py`) loads it with `load_state_dict(strict=True)`, and a state dict saved from such a
/// model loads here. A checkpoint holds the same tensors under "param." and "buffer." prefixes.
public enum StateDict {
    /// The model's parameters and buffers, keyed by path, in the model's precision.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func export<T: TensorScalar>(_ model: SequenceModel<T>) -> SafeTensors {
        var file = SafeTensors()
        for p in model.parameters { file.set(p.name, p.tensor) }
        for (name, b) in model.buffers { file.set(name, b) }
        return file
    }

    /// The state dict of the run in `directory`: its checkpoint's parameters and buffers with the "param." and
    /// "buffer." prefixes removed (no optimiser moments), Float32, and its config.json in the metadata under
    /// "seqlab_config". A checkpoint of another format is refused (Checkpoint.format).
    public static func export(run directory: URL) throws -> SafeTensors {
        let run = RunDirectory(url: directory)
        guard run.exists(run.checkpoint) else { throw SequenceLabError("\(directory.path): no checkpoint.safetensors (is it a run directory?)") }
        let checkpoint = try SafeTensors.read(from: run.checkpoint)
        guard checkpoint.metadata["format"] == Checkpoint.format else {
            throw SequenceLabError("\(run.checkpoint.path): format '\(checkpoint.metadata["format"] ?? "none")' is not \(Checkpoint.format)")
        }
        var file = SafeTensors(metadata: ["format": "pt"])
        for name in checkpoint.names {
            for prefix in ["param.", "buffer."] where name.hasPrefix(prefix) {
                file.arrays[String(name.dropFirst(prefix.count))] = checkpoint.arrays[name]
            }
        }
        if run.exists(run.config) { file.metadata["seqlab_config"] = try String(contentsOf: run.config, encoding: .utf8) }
        return file
    }

    /// Writes the tensors of `file` into `model`: every parameter and buffer must be present with its exact shape,
    /// and no other tensor may be; otherwise a one-line error naming the tensor, with the model left unchanged.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func load<T: TensorScalar>(_ file: SafeTensors, into model: SequenceModel<T>, source: String) throws {
        try file.assign(to: model.parameters.map { ($0.name, $0.tensor) } + model.buffers.map { (name: $0.0, tensor: $0.1) }, owner: source)
        model.stateDidLoad()
    }
}
