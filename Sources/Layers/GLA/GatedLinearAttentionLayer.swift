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
    /// q, k, v and their optional short convolutions + SiLU.
    public let inputs: QKVProjections<T>
    /// The low-rank gate projection (x W_down W_up + b).
    public let gateDown, gateUp: Linear<T>
    /// RMSNorm per head * swish(x W_g), then W_o.
    public let outputs: GatedNormOutput<T>
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
        // Drawn in the order of the fla module's __init__: q, k, v, g, the gate's two layers, o, the convolutions.
        let (q, k, v, g) = (linear(dModel, keyDim), linear(dModel, keyDim), linear(dModel, valueDim), linear(dModel, valueDim))
        gateDown = linear(dModel, gateLowRank); gateUp = linear(gateLowRank, keyDim, bias: true)
        let o = linear(valueDim, dModel)
        inputs = QKVProjections(q: q, k: k, v: v, convolutions: shortConvolution.map {
            ShortConvolutionWeights.draw(keyDim, keyDim, valueDim, width: $0, rng: &rng)
        })
        outputs = GatedNormOutput(gate: g, output: o, headValueDim: valueDim / heads)
    }

    private var scale: T { 1 / T(headKeyDim).squareRoot() }

    /// Log-gates logsigmoid(x W_down W_up + b) / normaliser, [..., key_dim].
    private func logGates(_ x: Tensor<T>) -> Tensor<T> { logGates(down: gateDown(x)) }

    /// The same from the low-rank projection x W_down.
    private func logGates(down: Tensor<T>) -> Tensor<T> { gateUp(down).logSigmoid() / gateNormalizer }


    /// x [B, L, D] -> y [B, L, D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "gla: input \(x.shape) for d_model \(dModel)")
        let (batch, length) = (x.shape[0], x.shape[1])
        // [B, L, key_dim], [B, L, key_dim], [B, L, value_dim]; x W_g [B, L, value_dim], x W_down [B, L, rank]
        let (q, k, v, other) = inputs(x, other: [outputs.gate, gateDown])
        let keyShape = [batch, length, heads, headKeyDim]
        let (o, _) = gatedLinearAttention(
            q: q.reshaped(keyShape), k: k.reshaped(keyShape), v: v.reshaped([batch, length, heads, headValueDim]),
            logGates: logGates(down: other[1]).reshaped(keyShape), scale: scale, chunkSize: chunkSize, subChunkSize: subChunkSize)  // [B, L, H, V]
        return outputs(o, gate: other[0])
    }

    /// The recurrent state: S [B, H, K, V] and, with short convolutions, the last conv_size - 1 inputs of q, k, v.
    public typealias State = LinearAttentionState<T>

    /// Zero memory and zero convolution windows.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State {
        State(batchSize: batchSize, heads: heads, keyDim: headKeyDim, valueDim: headValueDim, convolutions: inputs.convolutions)
    }

    /// One token x [B, D] -> y [B, D], advancing the state.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout State) -> Tensor<T> {
        precondition(x.rank == 2 && x.shape[1] == dModel, "gla step: input \(x.shape) for d_model \(dModel)")
        let batch = x.shape[0]
        let (q, k, v) = inputs.step(x, state: &state)  // [B, key_dim], [B, key_dim], [B, value_dim]
        let keyShape = [batch, heads, headKeyDim]
        let (o, memory) = gatedLinearAttentionStep(
            q: q.reshaped(keyShape), k: k.reshaped(keyShape), v: v.reshaped([batch, heads, headValueDim]),
            logGates: logGates(x).reshaped(keyShape), state: state.memory, scale: scale)  // [B, H, V]
        state.memory = memory
        return outputs(o, x)
    }

    public var parameters: [NamedParameter<T>] {
        inputs.parameters + outputs.gate.parameters("g_proj") + gateDown.parameters("gk_proj.0") + gateUp.parameters("gk_proj.1")
            + [NamedParameter("g_norm_swish_gate.weight", outputs.normWeight, tags: .norm)] + outputs.output.parameters("o_proj")
    }

    /// Projections (q, k, v, g, the low-rank gate + bias, o), the optional short convs + SiLU, the log-gates
    /// (logsigmoid / normaliser), the recurrence per token and head (`LayerWork.gatedLinearAttention`), RMSNorm *
    /// swish gate.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length
        let lowRank = LayerWork.linear(rows: rows, inputs: dModel, outputs: gateDown.outputSize, bias: gateDown.bias != nil)
            + LayerWork.linear(rows: rows, inputs: gateUp.inputSize, outputs: keyDim, bias: gateUp.bias != nil)
        let logGates = LayerWork.elementwise(rows * keyDim, flops: 1) + LayerWork.transcendental(rows * keyDim)
        return inputs.work(batch: batch, length: length) + lowRank + logGates
            + LayerWork.gatedLinearAttention(tokens: rows * heads, keyDim: headKeyDim, valueDim: headValueDim, gateExponentials: true)
            + outputs.work(rows: rows, heads: heads)
    }

    /// H K V (the matrix memory), plus (conv_size - 1)(2 key_dim + value_dim) with short convolutions.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int {
        heads * headKeyDim * headValueDim + inputs.convolutionStateSize
    }
}

/// Registry entry for `gla`.
public enum GatedLinearAttentionFactory: LayerFactory {
    public static let name = "gla"
    public static let plotColor = "#009E73"
    public static var kernels: [FunctionalKernel.Type] { [GLAKernel.self] }
    public static var opChecks: [OpCheck] { LinearAttentionChecks.all }
    public static let summary = "gated linear attention, chunkwise parallel form with secondary chunking, fla defaults (Yang et al. 2024)"
    public static let options: [LayerOptionSpec] = LinearAttentionOptions.shape(heads: 4, expandK: 0.5, expandV: 1) + [
        .int("gate_low_rank_dim", 16, "rank of the gate projection", min: 1, max: LayerLimits.maximumWidth),
        .number("gate_logit_normalizer", 16, "log-gates = logsigmoid(.) / normalizer", above: 0),
    ] + LinearAttentionOptions.schedule
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
        _ = try LinearAttentionSizes.dimensions(dModel: dModel, expandK: expandK, expandV: expandV, heads: heads, owner: "layer \(name)")
        return GatedLinearAttentionLayer<T>(
            dModel: dModel, heads: heads, expandK: expandK, expandV: expandV,
            shortConvolution: options.bool("use_short_conv") ? options.int("conv_size") : nil,
            gateLowRank: options.int("gate_low_rank_dim"), gateNormalizer: options.double("gate_logit_normalizer"),
            chunkSize: options.int("chunk_size"), subChunkSize: options.int("sub_chunk_size"), rng: &rng)
    }
}
