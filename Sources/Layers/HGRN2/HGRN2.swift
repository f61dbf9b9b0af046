import Tensors

/// HGRN2 with flash-linear-attention's defaults (fla `HGRN2Attention`; Qin et al. 2024, "HGRN2: Gated Linear RNNs
/// with State Expansion"): a gated linear RNN whose input gate is tied to its forget gate, expanded to a matrix state.
///     q = swish(x W_q), f = x W_f, i = x W_i        (W_q, W_f: D -> H E; W_i: D -> D; optional short convolutions,
///                                                    without activation, on the three projections)
///     g = logsigmoid(f) (log forget gate), k = 1 - exp(g) = sigmoid(-f) (the tied input gate), v = i
///     S_t = diag(exp g_t) S_{t-1} + k_t^T v_t,   o_t = E^-1/2 q_t S_t      per head: E keys, D / H values
///     y = RMSNorm_D(o) W_o      (one RMSNorm over the whole width, eps 1e-5)
/// H = D / E heads for the expand ratio E (fla's `expand_ratio`, default 128; here capped at D so that narrow models
/// have one head). The recurrence is the shared chunked GLA kernel (`gatedLinearAttention`, chunk 64, sub-chunk 16).
/// Init as the standalone fla layer: nn.Linear defaults U(+-1/sqrt(fan_in)), depthwise convolutions
/// U(+-1/sqrt(conv_size)), norm weight 1. fla's model-level lower bound on the forget gate (HGRN2Model's
/// `use_lower_bound`, a learned per-layer floor shared across layers) is not part of the layer and not built here.
public final class HGRN2<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel, heads, expandRatio: Int
    public let chunkSize, subChunkSize: Int
    /// q, f (the forget gate's logits) and i (the values), with their optional short convolutions.
    public let qProj, fProj, iProj, oProj: Linear<T>
    /// The RMSNorm weight over the whole width [D].
    public let normWeight: Tensor<T>
    /// Short causal depthwise convolutions on q, f, i ([channels, 1, conv_size] each, no activation), if enabled.
    public let convolutions: (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>)?
    public var headValueDim: Int { dModel / heads }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, expandRatio: Int, shortConvolution: Int? = nil, chunkSize: Int = 64, subChunkSize: Int = 16,
                rng: inout RandomGenerator) {
        precondition(expandRatio >= 1 && dModel % expandRatio == 0, "hgrn2: expand_ratio \(expandRatio) must divide d_model \(dModel)")
        (self.dModel, self.expandRatio, self.heads) = (dModel, expandRatio, dModel / expandRatio)
        (self.chunkSize, self.subChunkSize) = (chunkSize, subChunkSize)
        let forgetDim = heads * expandRatio
        func linear(_ n: Int, _ m: Int) -> Linear<T> { Linear(inputSize: n, outputSize: m, bias: false, rng: &rng) }
        // Drawn in the order of the fla module's __init__: q, f, i, the convolutions, o.
        qProj = linear(dModel, forgetDim); fProj = linear(dModel, forgetDim); iProj = linear(dModel, dModel)
        convolutions = shortConvolution.map { ShortConvolutionWeights.draw(forgetDim, forgetDim, dModel, width: $0, rng: &rng) }
        normWeight = Tensor.ones([dModel], requiresGrad: true)
        oProj = linear(dModel, dModel)
    }

    private var scale: T { 1 / T(expandRatio).squareRoot() }

    /// (q, k, v, g) from the (convolved) projections: q = swish(q), g = logsigmoid(f), k = sigmoid(-f), v = i.
    private func gates(q: Tensor<T>, f: Tensor<T>, i: Tensor<T>) -> (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, g: Tensor<T>) {
        (q.silu(), f.scaled(by: -1).sigmoid(), i, f.logSigmoid())
    }

    /// x [B, L, D] -> y [B, L, D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "hgrn2: input \(x.shape) for d_model \(dModel)")
        let (batch, length) = (x.shape[0], x.shape[1])
        let y = linearGroup(x, [qProj, fProj, iProj])  // one node
        var (q, f, i) = (y[0], y[1], y[2])
        if let c = convolutions {
            (q, f, i) = (q.causalDepthwiseConv1d(weight: c.q), f.causalDepthwiseConv1d(weight: c.k), i.causalDepthwiseConv1d(weight: c.v))
        }
        let u = gates(q: q, f: f, i: i)
        let keyShape = [batch, length, heads, expandRatio]
        let (o, _) = gatedLinearAttention(
            q: u.q.reshaped(keyShape), k: u.k.reshaped(keyShape), v: u.v.reshaped([batch, length, heads, headValueDim]),
            logGates: u.g.reshaped(keyShape), scale: scale, chunkSize: chunkSize, subChunkSize: subChunkSize)
        return oProj(o.reshaped([batch, length, dModel]).rmsNorm(gamma: normWeight, eps: 1e-5))
    }

    /// The memory S [B, H, E, D / H] and, with short convolutions, their windows.
    public typealias State = LinearAttentionState<T>

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State {
        State(batchSize: batchSize, heads: heads, keyDim: expandRatio, valueDim: headValueDim, convolutions: convolutions)
    }

    /// One token x [B, D] -> y [B, D], advancing the state.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout State) -> Tensor<T> {
        precondition(x.rank == 2 && x.shape[1] == dModel, "hgrn2 step: input \(x.shape) for d_model \(dModel)")
        let batch = x.shape[0]
        let y = linearGroup(x, [qProj, fProj, iProj])  // one node
        var (q, f, i) = (y[0], y[1], y[2])
        if let c = convolutions { (q, f, i) = state.convolutionStep(q: q, k: f, v: i, weights: c) }
        let u = gates(q: q, f: f, i: i)
        let keyShape = [batch, heads, expandRatio]
        let (o, memory) = gatedLinearAttentionStep(
            q: u.q.reshaped(keyShape), k: u.k.reshaped(keyShape), v: u.v.reshaped([batch, heads, headValueDim]),
            logGates: u.g.reshaped(keyShape), state: state.memory, scale: scale)
        state.memory = memory
        return oProj(o.reshaped([batch, dModel]).rmsNorm(gamma: normWeight, eps: 1e-5))
    }

    public var parameters: [NamedParameter<T>] {
        var p = qProj.parameters("q_proj") + fProj.parameters("f_proj") + iProj.parameters("i_proj")
        if let c = convolutions {
            p += [NamedParameter("q_conv1d.weight", c.q), NamedParameter("f_conv1d.weight", c.k), NamedParameter("i_conv1d.weight", c.v)]
        }
        return p + [NamedParameter("g_norm.weight", normWeight, tags: .norm)] + oProj.parameters("o_proj")
    }

    /// Projections (q, f: D -> H E; i, o: D -> D), the optional convolutions (2 FLOPs per visible tap), swish of q,
    /// the gates (logsigmoid and sigmoid of f: 2 transcendentals and ~3 FLOPs per entry), the recurrence per token
    /// and head (`LayerWork.gatedLinearAttention`, E keys, D / H values), the RMSNorm over D.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length, forgetDim = heads * expandRatio
        var w = 2 * LayerWork.linear(rows: rows, inputs: dModel, outputs: forgetDim) + 2 * LayerWork.linear(rows: rows, inputs: dModel, outputs: dModel)
            + LayerWork.elementwise(rows * forgetDim, flops: 5) + LayerWork.transcendental(3 * rows * forgetDim)
        if let c = convolutions {
            let taps = Double(batch * (2 * forgetDim + dModel)) * LayerWork.causalTaps(length: length, width: c.q.shape[2])
            w = w + LayerWork(elementwise: 2 * taps)
        }
        return w + LayerWork.gatedLinearAttention(tokens: rows * heads, keyDim: expandRatio, valueDim: headValueDim, gateExponentials: true)
            + LayerWork.norm(rows: rows, width: dModel)
    }

    /// H E (D / H) = E D, plus (conv_size - 1)(2 H E + D) with short convolutions.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int {
        expandRatio * dModel + (convolutions.map { ($0.q.shape[2] - 1) * (2 * heads * expandRatio + dModel) } ?? 0)
    }
}

/// Registry entry for `hgrn2`.
public enum HGRN2Factory: LayerFactory {
    public static let name = "hgrn2"
    public static let plotColor = "#DDCC77"
    public static let summary = "HGRN2: gated linear RNN with tied input gate 1 - f and state expansion, shared GLA chunk kernel (Qin et al. 2024)"
    public static let options: [LayerOptionSpec] = [
        .intOrAuto("expand_ratio", "state expansion E = keys per head; heads = d_model / E (auto = min(128, d_model), fla's 128)", min: 1, max: LayerLimits.maximumWidth),
        .bool("use_short_conv", false, "causal depthwise convolution (no activation) on q, f, i"),
        .int("conv_size", 4, "short convolution width", min: 2, max: LayerLimits.maximumConvolutionWidth),
    ] + LinearAttentionOptions.schedule
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["expand_ratio": "4", "chunk_size": "4", "sub_chunk_size": "2"]),
         LayerOptions(["expand_ratio": "8", "use_short_conv": "true", "chunk_size": "5", "sub_chunk_size": "2"])]
    }

    /// The expand ratio `options` ask for at width `dModel` (auto: min(128, d_model)), or a one-line error.
    static func expandRatio(_ options: OptionValues, dModel: Int) throws -> Int {
        let ratio = options.optionalInt("expand_ratio") ?? min(128, dModel)
        guard dModel % ratio == 0 else {
            throw SequenceLabError("layer \(name): expand_ratio \(ratio) must divide d_model \(dModel) (heads = d_model / expand_ratio)")
        }
        return ratio
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        HGRN2<T>(dModel: dModel, expandRatio: try expandRatio(options, dModel: dModel),
                 shortConvolution: options.bool("use_short_conv") ? options.int("conv_size") : nil,
                 chunkSize: options.int("chunk_size"), subChunkSize: options.int("sub_chunk_size"), rng: &rng)
    }
}
