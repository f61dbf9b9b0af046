import Foundation
import Tensors

/// checkpoint.safetensors: parameters ("param.<name>", F32), buffers ("buffer.<name>"), the optimiser's moments
/// ("optim.m.<name>", "optim.v.<name>", F64) and, in the metadata, the trainer state as JSON ("trainer_state").
/// One file written atomically, so weights, moments and progress always agree. The parameters load in PyTorch as
/// they are (`safetensors.torch.load_file`), under their path names, in PyTorch's layouts (format 2: nn.Linear
/// [out, in], nn.Conv1d [out, in / groups, k]); a format-1 checkpoint (Linear weights [in, out]) is refused, since
/// a square weight would otherwise load transposed without any error.
enum Checkpoint {
    /// The format this build writes and reads.
    static let format = "seqlab-checkpoint-2"

    static func save<T: TensorScalar>(to url: URL, model: SequenceModel<T>, optimizer: any Optimizer<T>, state: TrainerState) throws {
        var file = SafeTensors()
        for p in model.parameters { file.set("param.\(p.name)", p.tensor) }
        for (name, b) in model.buffers { file.set("buffer.\(name)", b) }
        let optimizerState = optimizer.state
        for (name, m) in optimizerState.firstMoments { file.set("optim.m.\(name)", Tensor<Double>(shape: [m.count], data: m)) }
        for (name, v) in optimizerState.secondMoments { file.set("optim.v.\(name)", Tensor<Double>(shape: [v.count], data: v)) }
        var saved = state
        saved.optimizerKind = optimizerState.kind
        saved.optimizerStep = optimizerState.step
        saved.parameterSteps = optimizerState.parameterSteps
        file.metadata["trainer_state"] = String(decoding: try JSONEncoder().encode(saved), as: UTF8.self)
        file.metadata["format"] = format
        file.metadata["checksum"] = checksum(file)
        try file.write(to: url)
    }

    /// FNV-1a (64 bit) over every array's name, dtype, shape and bytes and the trainer state, as 16 hex digits: a
    /// flipped byte anywhere in the weights, moments or progress is found on resume.
    static func checksum(_ file: SafeTensors) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        }
        for name in file.names.sorted() {
            let a = file.arrays[name]!
            mix(name.utf8)
            mix(a.dtype.rawValue.utf8)
            mix(a.shape.map(String.init).joined(separator: ",").utf8)
            a.bytes.withUnsafeBufferPointer { mix($0) }
        }
        mix((file.metadata["trainer_state"] ?? "").utf8)
        return String(h, radix: 16)
    }

    /// Restores parameters, buffers and optimiser from `url`; returns the trainer state saved with them.
    static func load<T: TensorScalar>(from url: URL, model: SequenceModel<T>, optimizer: any Optimizer<T>) throws -> TrainerState {
        let file = try loadWeights(from: url, model: model)
        guard let json = file.metadata["trainer_state"],
              let state = try? JSONDecoder().decode(TrainerState.self, from: Data(json.utf8)) else {
            throw SequenceLabError("\(url.path): not a seqlab checkpoint (no trainer state in its metadata)")
        }
        var first: [String: [Double]] = [:], second: [String: [Double]] = [:]
        for name in file.names {
            if name.hasPrefix("optim.m.") { first[String(name.dropFirst(8))] = try file.tensor(name, as: Double.self).data }
            if name.hasPrefix("optim.v.") { second[String(name.dropFirst(8))] = try file.tensor(name, as: Double.self).data }
        }
        optimizer.load(state: OptimizerState(kind: state.optimizerKind, step: state.optimizerStep,
                                             parameterSteps: state.parameterSteps, firstMoments: first, secondMoments: second))
        return state
    }

    /// Restores the parameters and buffers of `model` from the checkpoint `url` (no optimiser); returns the file.
    static func loadWeights<T: TensorScalar>(from url: URL, model: SequenceModel<T>) throws -> SafeTensors {
        let file = try SafeTensors.read(from: url)
        let written = file.metadata["format"] ?? "none"
        if written != format {
            let why = written == "seqlab-checkpoint-1"
                ? "its Linear weights are [in, out] (format 1); this build stores PyTorch layouts (\(format)): rerun the run from scratch in a new directory"
                : "format '\(written)' is not \(format)"
            throw SequenceLabError("\(url.path): \(why)")
        }
        guard file.metadata["trainer_state"] != nil else {
            throw SequenceLabError("\(url.path): not a seqlab checkpoint (no trainer state in its metadata)")
        }
        // Checkpoints written before 2026-12-06 carry no checksum; every later one is verified.
        if let stored = file.metadata["checksum"], stored != checksum(file) {
            throw SequenceLabError("\(url.path) is corrupt (its checksum does not match its contents): remove it to restart "
                                   + "the run from step 0, or train into a new --out")
        }
        for p in model.parameters {
            let stored = try file.tensor("param.\(p.name)", as: T.self)
            guard stored.shape == p.tensor.shape else {
                throw SequenceLabError("\(url.path): param.\(p.name) has shape \(stored.shape), the model needs \(p.tensor.shape)")
            }
            p.tensor.data = stored.data
        }
        for (name, b) in model.buffers {
            let stored = try file.tensor("buffer.\(name)", as: T.self)
            guard stored.shape == b.shape else {
                throw SequenceLabError("\(url.path): buffer.\(name) has shape \(stored.shape), the model needs \(b.shape)")
            }
            b.data = stored.data
        }
        model.stateDidLoad()
        return file
    }
}
