import Tensors

/// Causal multi-head softmax attention (Vaswani et al. 2017, "Attention Is All You Need"), the baseline of every table:
///     q, k, v = x W_q, x W_k, x W_v   (split into H heads of E = D / H),   q, k <- RoPE(q), RoPE(k)
///     o = softmax(q k^T / sqrt(E) + causal mask) v,   y = o W_o.
/// The parallel form runs the flash-attention kernel (`scaledDotProductAttention`: blocked, online softmax, O(L)
/// memory, backward recomputes the blocks). The recurrent form is a KV cache: each step appends the token's rotated
/// key and value and attends over the cache.
/// Init as the reference module built alone (transformers' LlamaAttention: nn.Linear defaults): every W and b
/// ~ U(+-1/sqrt(D)) (docs/init.md; transformers' models re-initialise weights to N(0, 0.02^2) and biases to 0).
public final class CausalSelfAttention<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel: Int
    public let heads: Int
    public let headDim: Int
    /// Whether q and k get rotary position embeddings (else attention is position-blind apart from the mask).
    public let useRotary: Bool
    public let rotaryBase: Double
    public let qProj, kProj, vProj, oProj: Linear<T>

    /// A layer of width `dModel` with `heads` heads (dModel must divide evenly).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, heads: Int, bias: Bool = false, rotary: Bool = true, rotaryBase: Double = 10_000, rng: inout RandomGenerator) {
        precondition(heads >= 1 && dModel % heads == 0, "attention: d_model \(dModel) is not divisible by \(heads) heads")
        (self.dModel, self.heads, headDim) = (dModel, heads, dModel / heads)
        (useRotary, self.rotaryBase) = (rotary, rotaryBase)
        qProj = Linear(inputSize: dModel, outputSize: dModel, bias: bias, rng: &rng)
        kProj = Linear(inputSize: dModel, outputSize: dModel, bias: bias, rng: &rng)
        vProj = Linear(inputSize: dModel, outputSize: dModel, bias: bias, rng: &rng)
        oProj = Linear(inputSize: dModel, outputSize: dModel, bias: bias, rng: &rng)
    }

    /// q, k, v [B, L, H, E] of x [B, L, D], with q and k rotated for positions offset, offset + 1, ...
    private func projections(_ x: Tensor<T>, batch: Int, length: Int, positionOffset: Int) -> (Tensor<T>, Tensor<T>, Tensor<T>) {
        let heads4 = [batch, length, heads, headDim]
        let y = linearGroup(x, [qProj, kProj, vProj])                      // one node (`linearGroup`)
        var q = y[0].reshaped(heads4), k = y[1].reshaped(heads4)            // [B, L, H, E]
        let v = y[2].reshaped(heads4)                                       // [B, L, H, E]
        if useRotary {
            let table = RotaryTable<T>(positions: positionOffset..<(positionOffset + length), headDim: headDim, base: rotaryBase)
            q = q.rotaryEmbedding(table)
            k = k.rotaryEmbedding(table)
        }
        return (q, k, v)
    }

    /// x [B, L, D] -> y [B, L, D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "attention: input \(x.shape) for d_model \(dModel)")
        let (batch, length) = (x.shape[0], x.shape[1])
        let (q, k, v) = projections(x, batch: batch, length: length, positionOffset: 0)
        let o = scaledDotProductAttention(q: q, k: k, v: v, causal: true)  // [B, L, H, E]
        return oProj(o.reshaped([batch, length, dModel]))
    }

    /// The KV cache: the rotated keys and the values of every token seen, [B, T, H, E] each (nil before the first).
    public struct KeyValueCache {
        public var keys: Tensor<T>?
        public var values: Tensor<T>?
        /// The number of cached tokens T (the position of the next token).
        public var length: Int { keys?.shape[1] ?? 0 }
    }

    /// An empty cache.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> KeyValueCache { KeyValueCache(keys: nil, values: nil) }

    /// One token x [B, D]: appends its key and value to the cache and attends over all T + 1 cached tokens.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state cache: inout KeyValueCache) -> Tensor<T> {
        precondition(x.rank == 2 && x.shape[1] == dModel, "attention step: input \(x.shape) for d_model \(dModel)")
        let batch = x.shape[0]
        let (q, k, v) = projections(x.reshaped([batch, 1, dModel]), batch: batch, length: 1, positionOffset: cache.length)
        let keys = cache.keys.map { Tensor.concatenate([$0, k], axis: 1) } ?? k        // [B, T + 1, H, E]
        let values = cache.values.map { Tensor.concatenate([$0, v], axis: 1) } ?? v    // [B, T + 1, H, E]
        cache = KeyValueCache(keys: keys, values: values)
        let o = scaledDotProductAttention(q: q, k: keys, v: values, causal: true)     // [B, 1, H, E]
        return oProj(o.reshaped([batch, dModel]))
    }

    public var parameters: [NamedParameter<T>] {
        qProj.parameters("q_proj") + kProj.parameters("k_proj") + vProj.parameters("v_proj") + oProj.parameters("o_proj")
    }

    /// Four projections (2 B L D^2 each, plus biases), RoPE on q and k (3 FLOPs per element), and per head and visible
    /// (query, key) pair: the score (2 E), its softmax (max, subtract, sum, scale: 4, and one exp) and its share of
    /// P V (2 E).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length
        let pairs = LayerWork.causalPairs(length) * Double(batch * heads)
        let attention = LayerWork(products: pairs * 4 * Double(headDim), elementwise: pairs * 4, transcendentals: pairs)
        return 4 * .linear(rows: rows, inputs: dModel, outputs: dModel, bias: qProj.bias != nil)
            + (useRotary ? .elementwise(2 * rows * dModel, flops: 3) : LayerWork()) + attention
    }

    /// 2 D T: the cached keys and values.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int { 2 * dModel * sequenceLength }
}

/// Registry entry for `attention`.
public enum CausalSelfAttentionFactory: LayerFactory {
    public static let name = "attention"
    public static let plotColor = "#0072B2"
    public static var kernels: [FunctionalKernel.Type] { [AttentionKernel.self] }
    public static var opChecks: [OpCheck] { AttentionChecks.all }
    public static let summary = "causal multi-head softmax attention with RoPE, flash-style blocked kernel, KV-cache step (Vaswani et al. 2017)"
    public static let options: [LayerOptionSpec] = [
        .int("heads", 4, "attention heads (d_model / heads per head)", min: 1, max: LayerLimits.maximumWidth),
        .bool("bias", false, "biases in the q/k/v/o projections"),
        .bool("rope", true, "rotary position embedding on q and k"),
        .number("rope_base", 10_000, "RoPE base", above: 1),
    ]
    public static var checkOptions: [LayerOptions] { [LayerOptions(["heads": "2"]), LayerOptions(["heads": "4", "bias": "true", "rope": "false"])] }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let heads = options.int("heads")
        guard dModel % heads == 0 else {
            throw SequenceLabError("layer attention: d_model \(dModel) is not divisible by heads \(heads)")
        }
        return CausalSelfAttention<T>(dModel: dModel, heads: heads, bias: options.bool("bias"), rotary: options.bool("rope"),
                                      rotaryBase: options.double("rope_base"), rng: &rng)
    }
}
