import Tensors

/// The input side of the fla linear-attention layers (GLA, RetNet): q = x W_q, k = x W_k, v = x W_v, each through
/// fla's ShortConvolution (causal depthwise convolution + SiLU, one fused node) when the layer has one.
public struct QKVProjections<T: TensorScalar> {
    public let q, k, v: Linear<T>
    /// The convolutions' weights [channels, 1, conv_size] for q, k, v (nil without short convolutions).
    public let convolutions: (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>)?

    /// The layer's projections and convolutions, drawn by the layer in its reference's order.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(q: Linear<T>, k: Linear<T>, v: Linear<T>, convolutions: (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>)?) {
        (self.q, self.k, self.v, self.convolutions) = (q, k, v, convolutions)
    }

    /// x [B, L, D] -> q, k [B, L, key_dim], v [B, L, value_dim] and x through each of the layer's `other` maps of x
    /// (its gates' projections), all projections as one node (`linearGroup`).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>, other: [Linear<T>] = []) -> (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, other: [Tensor<T>]) {
        let y = linearGroup(x, [q, k, v] + other)
        let (q, k, v, rest) = (y[0], y[1], y[2], Array(y.dropFirst(3)))
        guard let c = convolutions else { return (q, k, v, rest) }
        return (shortConvolutionSiLU(q, weight: c.q), shortConvolutionSiLU(k, weight: c.k), shortConvolutionSiLU(v, weight: c.v), rest)
    }

    /// One token x [B, D] -> q, k [B, key_dim], v [B, value_dim], advancing the convolution windows of `state`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout LinearAttentionState<T>) -> (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>) {
        let (q, k, v) = (self.q(x), self.k(x), self.v(x))
        guard let c = convolutions else { return (q, k, v) }
        let (cq, ck, cv) = state.convolutionStep(q: q, k: k, v: v, weights: c)
        return (cq.silu(), ck.silu(), cv.silu())
    }

    /// `q_proj`, `k_proj`, `v_proj` and, with convolutions, `{q,k,v}_conv1d.weight` (fla's keys).
    public var parameters: [NamedParameter<T>] {
        var p = q.parameters("q_proj") + k.parameters("k_proj") + v.parameters("v_proj")
        if let c = convolutions {
            p += [NamedParameter("q_conv1d.weight", c.q), NamedParameter("k_conv1d.weight", c.k), NamedParameter("v_conv1d.weight", c.v)]
        }
        return p
    }

    /// The convolutions' carried inputs per sequence: (conv_size - 1)(key + key + value channels), 0 without them.
    public var convolutionStateSize: Int {
        convolutions.map { ($0.q.shape[2] - 1) * ($0.q.shape[0] + $0.k.shape[0] + $0.v.shape[0]) } ?? 0
    }

    /// The projections' work and the convolutions' (2 FLOPs per visible tap, SiLU) for `batch` sequences of `length`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork {
        let rows = batch * length
        var w = LayerWork.linear(rows: rows, inputs: q.inputSize, outputs: q.outputSize)
            + LayerWork.linear(rows: rows, inputs: k.inputSize, outputs: k.outputSize)
            + LayerWork.linear(rows: rows, inputs: v.inputSize, outputs: v.outputSize)
        if let c = convolutions {
            w = w + LayerWork.shortConvolution(batch: batch, length: length, channels: c.q.shape[0] + c.k.shape[0] + c.v.shape[0],
                                               width: c.q.shape[2])
        }
        return w
    }
}

/// The output side of the fla linear-attention layers (GLA, RetNet): y = (RMSNorm_per_head(o) w * swish(x W_g)) W_o,
/// fla's FusedRMSNormGated (eps 1e-5, one fused node `gatedRMSNorm`) and the output projection.
public struct GatedNormOutput<T: TensorScalar> {
    public let gate, output: Linear<T>
    /// The norm weight over one head's values [V].
    public let normWeight: Tensor<T>

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(gate: Linear<T>, output: Linear<T>, headValueDim: Int) {
        (self.gate, self.output) = (gate, output)
        normWeight = Tensor.ones([headValueDim], requiresGrad: true)
    }

    /// o [..., H, V] and x [..., D] -> y [..., D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ o: Tensor<T>, _ x: Tensor<T>) -> Tensor<T> { callAsFunction(o, gate: gate(x)) }

    /// o [..., H, V] and the gate's projection x W_g [..., H V] (made by the caller, e.g. in its input `linearGroup`)
    /// -> y [..., D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ o: Tensor<T>, gate projected: Tensor<T>) -> Tensor<T> {
        let normed = gatedRMSNorm(o, gate: projected, weight: normWeight, eps: 1e-5)
        return output(normed.reshaped(Array(o.shape.dropLast(2)) + [output.inputSize]))
    }

    /// The work for `rows` tokens of `heads` heads of `headValueDim` values (the gate projection included).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(rows: Int, heads: Int) -> LayerWork {
        LayerWork.linear(rows: rows, inputs: gate.inputSize, outputs: gate.outputSize)
            + LayerWork.gatedRMSNormOutput(rows: rows, heads: heads, valueDim: normWeight.count, dModel: output.outputSize)
    }
}

extension LayerWork {
    /// The recurrence S_t = diag(exp g_t) S_{t-1} + k_t v_t^T, o_t = s q_t S_t over `tokens` (token, head) pairs with
    /// K keys and V values: 2 K V in the update and 2 K V in the readout, K V for the decay, K for q's scale, and K
    /// exponentials when the gates vary per token (`gateExponentials`; fixed decays are exponentiated once).
    public static func gatedLinearAttention(tokens: Int, keyDim: Int, valueDim: Int, gateExponentials: Bool) -> LayerWork {
        let stateEntries = Double(tokens) * Double(keyDim * valueDim)
        return LayerWork(products: 4 * stateEntries, elementwise: stateEntries + Double(tokens * keyDim),
                         transcendentals: gateExponentials ? Double(tokens * keyDim) : 0)
    }
}
