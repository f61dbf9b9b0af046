import Tensors

/// Forgetting attention with flash-linear-attention's defaults (fla `ForgettingAttention`; Lin, Nikishin, He,
/// Courville 2025, "Forgetting Transformer: Softmax Attention with a Forget Gate"):
///     q, k, v = x W_q, x W_k, x W_v    (H heads of E = D / H; no positional embedding)
///     f_t = logsigmoid(x_t W_f + b_f)  per head (log forget gate <= 0),  F_i = f_1 + ... + f_i
///     o_i = sum_{j <= i} softmax_j(E^-1/2 q_i k_j + F_i - F_j) v_j      [* sigmoid(x W_g) with the output gate]
///     y = o W_o
/// The flash-style kernel (`scaledDotProductAttention(logForgetGates:)`) adds F_i - F_j to each score block; a
/// forget gate of 1 (f = 0) is plain causal attention. Init as the standalone fla layer: nn.Linear defaults
/// U(+-1/sqrt(fan_in)) for every weight and bias. Step mode keeps a KV cache with each token's log forget gate.
public final class ForgettingAttention<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel, heads: Int
    public let qProj, kProj, vProj, fProj, oProj: Linear<T>
    /// The optional output gate sigmoid(x W_g).
    public let gProj: Linear<T>?
    public var headDim: Int { dModel / heads }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, heads: Int = 4, qkvBias: Bool = false, outputGate: Bool = false, rng: inout RandomGenerator) {
        precondition(heads >= 1 && dModel % heads == 0, "fox: heads \(heads) must divide d_model \(dModel)")
        (self.dModel, self.heads) = (dModel, heads)
        // Drawn in the order of the fla module's __init__: q, k, v, f, g, o.
        qProj = Linear(inputSize: dModel, outputSize: dModel, bias: qkvBias, rng: &rng)
        kProj = Linear(inputSize: dModel, outputSize: dModel, bias: qkvBias, rng: &rng)
        vProj = Linear(inputSize: dModel, outputSize: dModel, bias: qkvBias, rng: &rng)
        fProj = Linear(inputSize: dModel, outputSize: heads, bias: true, rng: &rng)
        gProj = outputGate ? Linear(inputSize: dModel, outputSize: dModel, bias: false, rng: &rng) : nil
        oProj = Linear(inputSize: dModel, outputSize: dModel, bias: false, rng: &rng)
    }

    /// q, k, v [..., H, E], the log forget gates [..., H] and the output gate's x W_g [..., D] (nil without it) of
    /// x [..., D] (`rows` = x's leading shape), the projections as one node (`linearGroup`).
    private func inputs(_ x: Tensor<T>, rows: [Int]) -> (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, g: Tensor<T>, gate: Tensor<T>?) {
        let shape = rows + [heads, headDim]
        let y = linearGroup(x, [qProj, kProj, vProj, fProj] + (gProj.map { [$0] } ?? []))
        return (y[0].reshaped(shape), y[1].reshaped(shape), y[2].reshaped(shape), y[3].logSigmoid().reshaped(rows + [heads]),
                gProj == nil ? nil : y[4])
    }

    /// o [..., D] -> y [..., D]: the optional output gate sigmoid(x W_g), then W_o.
    private func output(_ o: Tensor<T>, gate: Tensor<T>?) -> Tensor<T> {
        oProj(gate.map { $0.sigmoid() * o } ?? o)
    }

    /// x [B, L, D] -> y [B, L, D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "fox: input \(x.shape) for d_model \(dModel)")
        let rows = [x.shape[0], x.shape[1]]
        let u = inputs(x, rows: rows)
        let o = scaledDotProductAttention(q: u.q, k: u.k, v: u.v, causal: true, logForgetGates: u.g)
        return output(o.reshaped(rows + [dModel]), gate: u.gate)
    }

    /// The KV cache with every cached token's log forget gate: keys, values [B, T, H, E], gates [B, T, H].
    public struct State {
        public var keys, values, gates: Tensor<T>?
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State { State(keys: nil, values: nil, gates: nil) }

    /// One token x [B, D]: appends its key, value and gate to the cache and attends over all cached tokens.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout State) -> Tensor<T> {
        precondition(x.rank == 2 && x.shape[1] == dModel, "fox step: input \(x.shape) for d_model \(dModel)")
        let batch = x.shape[0]
        let u = inputs(x, rows: [batch, 1])
        func appended(_ cache: Tensor<T>?, _ new: Tensor<T>) -> Tensor<T> { cache.map { Tensor.concatenate([$0, new], axis: 1) } ?? new }
        state.keys = appended(state.keys, u.k)
        state.values = appended(state.values, u.v)
        state.gates = appended(state.gates, u.g)
        let o = scaledDotProductAttention(q: u.q, k: state.keys!, v: state.values!, causal: true, logForgetGates: state.gates!)
        return output(o.reshaped([batch, dModel]), gate: u.gate)
    }

    public var parameters: [NamedParameter<T>] {
        qProj.parameters("q_proj") + kProj.parameters("k_proj") + vProj.parameters("v_proj") + fProj.parameters("f_proj")
            + (gProj?.parameters("g_proj") ?? []) + oProj.parameters("o_proj")
    }

    /// As attention's count (`CausalSelfAttention.work`: 4 E products, 4 elementwise and one exp per visible pair)
    /// plus the bias F_i - F_j (2 FLOPs per visible pair), the forget-gate projection and its logsigmoid, and the
    /// optional output gate.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length
        let pairs = LayerWork.causalPairs(length) * Double(batch * heads)
        let attention = LayerWork(products: pairs * 4 * Double(headDim), elementwise: pairs * 6, transcendentals: pairs)
        let gate = gProj.map { _ in LayerWork.linear(rows: rows, inputs: dModel, outputs: dModel) + .elementwise(rows * dModel, flops: 1)
            + .transcendental(rows * dModel) } ?? LayerWork()
        return 3 * .linear(rows: rows, inputs: dModel, outputs: dModel, bias: qProj.bias != nil) + .linear(rows: rows, inputs: dModel, outputs: dModel)
            + .linear(rows: rows, inputs: dModel, outputs: heads, bias: true) + .transcendental(rows * heads) + gate + attention
    }

    /// The KV cache: 2 D scalars per token plus one gate per head and token.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int { sequenceLength * (2 * dModel + heads) }
}

/// Registry entry for `fox`.
public enum ForgettingAttentionFactory: LayerFactory {
    public static let name = "fox"
    public static let plotColor = "#6699CC"
    public static let summary = "Forgetting Transformer attention: softmax attention + cumulative log forget gate bias, flash-style kernel (Lin et al. 2025)"
    public static let options: [LayerOptionSpec] = [
        .int("heads", 4, "attention heads (head size d_model / heads)", min: 1, max: LayerLimits.maximumWidth),
        .bool("qkv_bias", false, "biases on the q, k, v projections"),
        .bool("use_output_gate", false, "output gate sigmoid(x W_g) before W_o"),
    ]
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["heads": "2"]), LayerOptions(["heads": "4", "qkv_bias": "true", "use_output_gate": "true"])]
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let heads = options.int("heads")
        guard dModel % heads == 0 else { throw SequenceLabError("layer \(name): heads \(heads) must divide d_model \(dModel)") }
        return ForgettingAttention<T>(dModel: dModel, heads: heads, qkvBias: options.bool("qkv_bias"),
                                      outputGate: options.bool("use_output_gate"), rng: &rng)
    }
}
