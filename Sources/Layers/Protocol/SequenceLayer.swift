import Tensors

/// A token mixer: [B, L, D] -> [B, L, D], in a parallel form for training and a recurrent form for inference.
///
/// Every layer of SequenceLab (S4, S4D, Mamba, GLA, DeltaNet/DeltaProduct, RAT, GAM, attention) implements this, so
/// the trainer, the checks (`seqlab check --layer`) and the benchmarks (`seqlab bench --layer`) work with any of them.
/// Contract: running `step` over a sequence from `initialState` reproduces `callAsFunction` (within 1e-4 relative in
/// Float32, 1e-9 in Float64); bidirectional layers set `supportsStep` to false.
public protocol SequenceLayer<Scalar>: AnyObject {
    associatedtype Scalar: TensorScalar
    /// The recurrent state carried between steps (a KV cache, an SSM state, convolution buffers...).
    associatedtype State

    /// The model width D.
    var dModel: Int { get }

    /// The parallel (training) form: x [B, L, D] -> y [B, L, D].
    func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar>

    /// Whether the layer has a recurrent form (false only for bidirectional layers).
    var supportsStep: Bool { get }

    /// The state before the first token, for a batch of `batchSize` sequences.
    func initialState(batchSize: Int) -> State

    /// The recurrent form: consumes one token per sequence, x [B, D], returns y [B, D] and advances `state`.
    func step(_ x: Tensor<Scalar>, state: inout State) -> Tensor<Scalar>

    /// The trainable parameters, with names relative to the layer (e.g. "A_log", "in_proj.weight") and tags. Names and
    /// shapes are the reference module's `state_dict` keys and PyTorch layouts (docs/interop.md).
    var parameters: [NamedParameter<Scalar>] { get }

    /// The non-trainable tensors the reference module keeps in its `state_dict` (S4's kernel length): saved in
    /// checkpoints and read by `seqlab layer`, never given gradients.
    var buffers: [(name: String, tensor: Tensor<Scalar>)] { get }

    /// Whether the layer is a whole pre-norm residual block (its reference module holds the input norm and adds the
    /// residual: RAT, GAM), so that a model calls it as it is instead of wrapping it in a norm and a residual.
    var includesResidual: Bool { get }

    /// Called after new values were written into `parameters` and `buffers` (a checkpoint, `seqlab layer`, a
    /// PyTorch state dict), for layers that derive state from them.
    func stateDidLoad()

    /// The recurrent state size in scalars per sequence after `sequenceLength` tokens (attention: 2 D T; Mamba:
    /// d_inner N; GLA/DeltaNet: H K V), so that tables can report quality against state size.
    func stateSize(sequenceLength: Int) -> Int

    /// The useful arithmetic of one forward pass over `batch` sequences of `length` tokens, counted from the layer's
    /// formulas (`LayerWork`'s conventions), for `seqlab bench`'s GFLOP/s; nil for a layer that does not count it.
    func work(batch: Int, length: Int) -> LayerWork?
}

extension SequenceLayer {
    public var supportsStep: Bool { true }

    public var buffers: [(name: String, tensor: Tensor<Scalar>)] { [] }

    public func stateDidLoad() {}

    public var includesResidual: Bool { false }

    public func work(batch: Int, length: Int) -> LayerWork? { nil }

    /// Runs the recurrent form over a whole sequence x [B, L, D], one token at a time.
    public func stepThrough(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "stepThrough: input \(x.shape) for a layer of width \(dModel)")
        let (batch, length) = (x.shape[0], x.shape[1])
        var state = initialState(batchSize: batch)
        var outputs: [Tensor<Scalar>] = []
        for t in 0..<length {
            let token = x.slice(axis: 1, t..<(t + 1)).reshaped([batch, dModel])
            outputs.append(step(token, state: &state).reshaped([batch, 1, dModel]))
        }
        return Tensor.concatenate(outputs, axis: 1)
    }

    /// The number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.tensor.count } }
}
