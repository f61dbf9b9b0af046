import Tensors

/// The gated linear attention layer with flash-linear-attention's defaults (fla `GatedLinearAttention`;
/// Yang et al. 2024, "Gated Linear Attention Transformers with Hardware-Efficient Training"):
///     q = x W_q, k = x W_k (key_dim = expand_k D), v = x W_v (value_dim = expand_v D)   [optional short conv + SiLU]
///     g = logsigmoid(x W_down W_up + b) / 16        (low-rank gate projection, rank 16: log-gates <= 0)
///     o = GLA(q, k, v, g) per head (`gatedLinearAttention`, chunk 64, sub-chunk 16, scale K^-1/2)
///     y = (RMSNorm_per_head(o) * swish(x W_g)) W_o
/// Init as the standalone fla layer, which leaves every module at PyTorch's default: every projection W and the gate
/// bias b ~ U(+-1/sqrt(fan_in)) (nn.Linear), the convolutions U(+-1/sqrt(conv_size)) (depthwise nn.Conv1d), the norm
/// weight 1 (docs/init.md; fla's models re-initialise Linear and Conv1d weights to N(0, 0.02^2) and biases to 0).
/// Step mode runs the recurrence (`gatedLinearAttentionStep`) with the state S [B, H, K, V] (and the short
/// convolutions' last inputs) carried.
public final class GatedLinearAttentionLayer<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel, heads, keyDim, valueDim: Int
    public let chunkSize, subChunkSize: Int
    public let gateNormalizer: T
    public let qProj, kProj, vProj, gProj, gateDown, gateUp, oProj: Linear<T>
    /// RMSNorm weight over one head's values [V].
    public let normWeight: Tensor<T>
    /// Short causal depthwise convolutions on q, k, v ([channels, conv_size] each), if enabled.
    public let convolutions: (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>)?
    public var headKeyDim: Int { keyDim / heads }
    public var headValueDim: Int { valueDim / heads }

    /// A layer of width `dModel`: key_dim = expandK dModel and value_dim = expandV dModel split over `heads`;
    /// `shortConvolution` is the width of the optional convolutions on q, k, v (nil: none).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, heads: Int = 4, expandK: Double = 0.5, expandV: Double = 1, shortConvolution: Int? = nil,
                gateLowRank: Int = 16, gateNormalizer: Double = 16, chunkSize: Int = 64, subChunkSize: Int = 16,
                rng: inout RandomGenerator) {
        (self.dModel, self.heads, self.chunkSize, self.subChunkSize) = (dModel, heads, chunkSize, subChunkSize)
        let keyDim = Int(Double(dModel) * expandK), valueDim = Int(Double(dModel) * expandV)
        (self.keyDim, self.valueDim) = (keyDim, valueDim)
        precondition(keyDim % heads == 0 && valueDim % heads == 0 && keyDim > 0 && valueDim > 0,
                     "gla: key_dim \(keyDim) and value_dim \(valueDim) must be positive multiples of \(heads) heads")
        self.gateNormalizer = T(gateNormalizer)
        func linear(_ n: Int, _ m: Int, bias: Bool = false) -> Linear<T> {
            Linear(inputSize: n, outputSize: m, bias: bias, rng: &rng)
        }
        qProj = linear(dModel, keyDim); kProj = linear(dModel, keyDim)
        vProj = linear(dModel, valueDim); gProj = linear(dModel, valueDim)
        gateDown = linear(dModel, gateLowRank); gateUp = linear(gateLowRank, keyDim, bias: true)
        oProj = linear(valueDim, dModel)
        normWeight = Tensor.ones([valueDim / heads], requiresGrad: true)
        if let width = shortConvolution {
            let bound = T(1 / Double(width).squareRoot())  // PyTorch Conv1d default for groups = channels
            convolutions = (Tensor.uniform([keyDim, 1, width], low: -bound, high: bound, using: &rng, requiresGrad: true),
                            Tensor.uniform([keyDim, 1, width], low: -bound, high: bound, using: &rng, requiresGrad: true),
                            Tensor.uniform([valueDim, 1, width], low: -bound, high: bound, using: &rng, requiresGrad: true))
        } else {
            convolutions = nil
        }
    }

    private var scale: T { 1 / T(headKeyDim).squareRoot() }

    /// Log-gates logsigmoid(x W_down W_up + b) / normaliser, [..., key_dim].
    private func logGates(_ x: Tensor<T>) -> Tensor<T> { gateUp(gateDown(x)).logSigmoid() / gateNormalizer }

    /// (RMSNorm_per_head(o) * swish(x W_g)) W_o for o [..., H, V] and x [..., D].
    private func output(_ o: Tensor<T>, _ x: Tensor<T>) -> Tensor<T> {
        let gate = gProj(x).reshaped(o.shape).silu()
        let normed = o.rmsNorm(gamma: normWeight, eps: 1e-5) * gate  // [..., H, V]
        return oProj(normed.reshaped(Array(x.shape.dropLast()) + [valueDim]))
    }

    /// x [B, L, D] -> y [B, L, D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "gla: input \(x.shape) for d_model \(dModel)")
        let (batch, length) = (x.shape[0], x.shape[1])
        var q = qProj(x), k = kProj(x), v = vProj(x)  // [B, L, key_dim], [B, L, key_dim], [B, L, value_dim]
        if let c = convolutions {
            q = q.causalDepthwiseConv1d(weight: c.q).silu()
            k = k.causalDepthwiseConv1d(weight: c.k).silu()
            v = v.causalDepthwiseConv1d(weight: c.v).silu()
        }
        let keyShape = [batch, length, heads, headKeyDim]
        let (o, _) = gatedLinearAttention(
            q: q.reshaped(keyShape), k: k.reshaped(keyShape), v: v.reshaped([batch, length, heads, headValueDim]),
            logGates: logGates(x).reshaped(keyShape), scale: scale, chunkSize: chunkSize, subChunkSize: subChunkSize)  // [B, L, H, V]
        return output(o, x)
    }

    /// The recurrent state: S [B, H, K, V] and, with short convolutions, the last conv_size - 1 inputs of q, k, v.
    public typealias State = LinearAttentionState<T>

    /// Zero memory and zero convolution windows.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State {
        State(batchSize: batchSize, heads: heads, keyDim: headKeyDim, valueDim: headValueDim, convolutions: convolutions)
    }

    /// One token x [B, D] -> y [B, D], advancing the state.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout State) -> Tensor<T> {
        precondition(x.rank == 2 && x.shape[1] == dModel, "gla step: input \(x.shape) for d_model \(dModel)")
        let batch = x.shape[0]
        var q = qProj(x), k = kProj(x), v = vProj(x)  // [B, key_dim], [B, key_dim], [B, value_dim]
        if let c = convolutions {
            (q, k, v) = state.convolutionStep(q: q, k: k, v: v, weights: c)
            (q, k, v) = (q.silu(), k.silu(), v.silu())
        }
        let keyShape = [batch, heads, headKeyDim]
        let (o, memory) = gatedLinearAttentionStep(
            q: q.reshaped(keyShape), k: k.reshaped(keyShape), v: v.reshaped([batch, heads, headValueDim]),
            logGates: logGates(x).reshaped(keyShape), state: state.memory, scale: scale)  // [B, H, V]
        state.memory = memory
        return output(o, x)
    }

    public var parameters: [NamedParameter<T>] {
        var p = qProj.parameters("q_proj") + kProj.parameters("k_proj") + vProj.parameters("v_proj") + gProj.parameters("g_proj")
        p += gateDown.parameters("gk_proj.0") + gateUp.parameters("gk_proj.1")
        p.append(NamedParameter("g_norm_swish_gate.weight", normWeight, tags: .norm))
        if let c = convolutions {
            p += [NamedParameter("q_conv1d.weight", c.q), NamedParameter("k_conv1d.weight", c.k), NamedParameter("v_conv1d.weight", c.v)]
        }
        return p + oProj.parameters("o_proj")
    }

    /// Projections (q, k, v, g, the low-rank gate + bias, o), the optional short convs + SiLU, the log-gates
    /// (logsigmoid / normaliser), RMSNorm * swish gate; per token and head the recurrent formula
    /// S_t = diag(exp g_t) S_{t-1} + k_t v_t^T, o_t = s q_t S_t: 2 K V update + 2 K V readout, K V decay, K exps, K scale.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length, tokens = rows * heads, (kd, vd) = (headKeyDim, headValueDim)
        let queryKey = LayerWork.linear(rows: rows, inputs: dModel, outputs: keyDim)
        let valueGate = LayerWork.linear(rows: rows, inputs: dModel, outputs: valueDim)
        let lowRank = LayerWork.linear(rows: rows, inputs: dModel, outputs: gateDown.outputSize, bias: gateDown.bias != nil)
            + LayerWork.linear(rows: rows, inputs: gateUp.inputSize, outputs: keyDim, bias: gateUp.bias != nil)
        let logGates = LayerWork.elementwise(rows * keyDim, flops: 1) + LayerWork.transcendental(rows * keyDim)
        var w = 2 * queryKey + 2 * valueGate + lowRank + logGates
        if let c = convolutions {  // 2 per visible tap, then SiLU (a product and a sigmoid)
            let channels = 2 * keyDim + valueDim
            let taps = Double(batch * channels) * LayerWork.causalTaps(length: length, width: c.q.shape[2])
            w = w + LayerWork(elementwise: 2 * taps + Double(rows * channels), transcendentals: Double(rows * channels))
        }
        // The recurrence per token and head: 4 K V in the update and readout, K V decay, K for q's scale, K exps.
        let stateEntries = Double(tokens) * Double(kd * vd)
        w = w + LayerWork(products: 4 * stateEntries, elementwise: stateEntries + Double(tokens * kd), transcendentals: Double(tokens * kd))
        // RMSNorm per head, then * swish(x W_g): a product and a sigmoid for the swish, one product for the gate.
        let output = LayerWork.norm(rows: tokens, width: vd) + LayerWork.elementwise(rows * valueDim, flops: 2)
            + LayerWork.transcendental(rows * valueDim) + LayerWork.linear(rows: rows, inputs: valueDim, outputs: dModel)
        return w + output
    }

    /// H K V (the matrix memory), plus (conv_size - 1)(2 key_dim + value_dim) with short convolutions.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int {
        heads * headKeyDim * headValueDim + (convolutions.map { ($0.q.shape[2] - 1) * (2 * keyDim + valueDim) } ?? 0)
    }
}

/// Registry entry for `gla`.
public enum GatedLinearAttentionFactory: LayerFactory {
    public static let name = "gla"
    public static let plotColor = "#009E73"
    public static var kernels: [FunctionalKernel.Type] { [GLAKernel.self] }
    public static var opChecks: [OpCheck] { LinearAttentionChecks.all }
    public static let summary = "gated linear attention, chunkwise parallel form with secondary chunking, fla defaults (Yang et al. 2024)"
    public static let options: [LayerOptionSpec] = [
        .int("heads", 4, "heads", min: 1),
        .number("expand_k", 0.5, "key_dim = expand_k d_model", above: 0),
        .number("expand_v", 1, "value_dim = expand_v d_model", above: 0),
        .bool("use_short_conv", false, "causal depthwise convolution + SiLU on q, k, v"),
        .int("conv_size", 4, "short convolution width", min: 2),
        .int("gate_low_rank_dim", 16, "rank of the gate projection", min: 1),
        .number("gate_logit_normalizer", 16, "log-gates = logsigmoid(.) / normalizer", above: 0),
        .int("chunk_size", 64, "tokens per chunk", min: 1),
        .int("sub_chunk_size", 16, "tokens per sub-chunk (secondary chunking)", min: 1),
    ]
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["heads": "2", "chunk_size": "4", "sub_chunk_size": "2"]),
         LayerOptions(["heads": "2", "use_short_conv": "true", "chunk_size": "3", "sub_chunk_size": "2", "gate_logit_normalizer": "1"])]
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let heads = options.int("heads")
        let (expandK, expandV) = (options.double("expand_k"), options.double("expand_v"))
        let (keyWidth, valueWidth) = (Double(dModel) * expandK, Double(dModel) * expandV)
        guard keyWidth == keyWidth.rounded(), valueWidth == valueWidth.rounded() else {
            throw SequenceLabError("layer gla: expand_k d_model = \(keyWidth) and expand_v d_model = \(valueWidth) must be integers (as fla requires)")
        }
        let keyDim = Int(keyWidth), valueDim = Int(valueWidth)
        guard keyDim > 0, valueDim > 0, keyDim % heads == 0, valueDim % heads == 0 else {
            throw SequenceLabError("layer gla: key_dim \(keyDim) and value_dim \(valueDim) must be positive multiples of heads \(heads)")
        }
        return GatedLinearAttentionLayer<T>(
            dModel: dModel, heads: heads, expandK: expandK, expandV: expandV,
            shortConvolution: options.bool("use_short_conv") ? options.int("conv_size") : nil,
            gateLowRank: options.int("gate_low_rank_dim"), gateNormalizer: options.double("gate_logit_normalizer"),
            chunkSize: options.int("chunk_size"), subChunkSize: options.int("sub_chunk_size"), rng: &rng)
    }
}
