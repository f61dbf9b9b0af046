import Foundation
import Tensors

/// Multi-scale retention with flash-linear-attention's defaults (fla `MultiScaleRetention`; Sun et al. 2023,
/// "Retentive Network: A Successor to Transformer for Large Language Models"):
///     q = RoPE(x W_q), k = RoPE(x W_k) (key_dim = expand_k D), v = x W_v (value_dim = expand_v D)   [optional short conv + SiLU]
///     S_t = gamma_h S_{t-1} + k_t^T v_t,   o_t = K^-1/2 q_t S_t      per head h, gamma_h = 1 - 2^(-5 - h) (fixed)
///     y = (RMSNorm_per_head(o) * swish(x W_g)) W_o
/// i.e. linear attention with a constant log-gate log gamma_h per head, evaluated by the shared scalar-gate chunk
/// kernel (`scalarGatedLinearAttention`, chunk 64). RoPE rotates halves (GPT-NeoX, base
/// 10000) at positions 0, 1, ... of the sequence. Init as the standalone fla layer: PyTorch's defaults (nn.Linear
/// U(+-1/sqrt(fan_in)), depthwise convolutions U(+-1/sqrt(conv_size))), norm weight 1. Step mode runs the recurrence
/// with the memory, the convolution windows and the position carried.
public final class MultiScaleRetention<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel, heads, keyDim, valueDim: Int
    public let chunkSize: Int
    public let ropeBase: Double
    /// q, k, v and their optional short convolutions + SiLU.
    public let inputs: QKVProjections<T>
    /// RMSNorm per head * swish(x W_g), then W_o.
    public let outputs: GatedNormOutput<T>
    public var headKeyDim: Int { keyDim / heads }
    public var headValueDim: Int { valueDim / heads }

    /// log gamma_h = log(1 - 2^(-5 - h)) for head h: fla's `chunk_retention` decays (the same for every layer width).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func logDecay(head h: Int) -> Double { Foundation.log(1 - Foundation.pow(2, -5 - Double(h))) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, heads: Int = 8, expandK: Double = 1, expandV: Double = 2, shortConvolution: Int? = nil,
                ropeBase: Double = 10_000, chunkSize: Int = 64, rng: inout RandomGenerator) {
        (self.dModel, self.heads, self.chunkSize, self.ropeBase) = (dModel, heads, chunkSize, ropeBase)
        let keyDim = Int(Double(dModel) * expandK), valueDim = Int(Double(dModel) * expandV)
        (self.keyDim, self.valueDim) = (keyDim, valueDim)
        precondition(keyDim % heads == 0 && valueDim % heads == 0 && keyDim > 0 && valueDim > 0 && (keyDim / heads) % 2 == 0,
                     "retnet: key_dim \(keyDim) and value_dim \(valueDim) must be positive multiples of \(heads) heads, with an even key size per head")
        func linear(_ n: Int, _ m: Int) -> Linear<T> { Linear(inputSize: n, outputSize: m, bias: false, rng: &rng) }
        // Drawn in the order of the fla module's __init__: q, k, v, g, the convolutions, o.
        let (q, k, v, g) = (linear(dModel, keyDim), linear(dModel, keyDim), linear(dModel, valueDim), linear(dModel, valueDim))
        inputs = QKVProjections(q: q, k: k, v: v, convolutions: shortConvolution.map {
            ShortConvolutionWeights.draw(keyDim, keyDim, valueDim, width: $0, rng: &rng)
        })
        outputs = GatedNormOutput(gate: g, output: linear(valueDim, dModel), headValueDim: valueDim / heads)
    }

    private var scale: T { 1 / T(headKeyDim).squareRoot() }

    /// The fixed log-gates broadcast to [batch, length, H].
    private func logGates(batch: Int, length: Int) -> Tensor<T> {
        Tensor(shape: [1, 1, heads], data: (0..<heads).map { T(Self.logDecay(head: $0)) }).broadcast(to: [batch, length, heads])
    }

    /// x [B, L, D] -> y [B, L, D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "retnet: input \(x.shape) for d_model \(dModel)")
        let (batch, length) = (x.shape[0], x.shape[1])
        let (q, k, v, other) = inputs(x, other: [outputs.gate])  // and x W_g
        let keyShape = [batch, length, heads, headKeyDim]
        let (o, _) = scalarGatedLinearAttention(
            q: q.reshaped(keyShape).rotaryEmbedding(base: ropeBase), k: k.reshaped(keyShape).rotaryEmbedding(base: ropeBase),
            v: v.reshaped([batch, length, heads, headValueDim]), logGates: logGates(batch: batch, length: length),
            scale: scale, chunkSize: chunkSize)
        return outputs(o, gate: other[0])
    }

    /// The memory S [B, H, K, V], the convolution windows and the next token's position.
    public struct State {
        public var attention: LinearAttentionState<T>
        public var position: Int
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State {
        State(attention: LinearAttentionState(batchSize: batchSize, heads: heads, keyDim: headKeyDim, valueDim: headValueDim,
                                              convolutions: inputs.convolutions), position: 0)
    }

    /// One token x [B, D] -> y [B, D], advancing the state.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout State) -> Tensor<T> {
        precondition(x.rank == 2 && x.shape[1] == dModel, "retnet step: input \(x.shape) for d_model \(dModel)")
        let batch = x.shape[0]
        let (q0, k0, v) = inputs.step(x, state: &state.attention)
        let rotated = [batch, 1, heads, headKeyDim], keyShape = [batch, heads, headKeyDim]
        let q = q0.reshaped(rotated).rotaryEmbedding(positionOffset: state.position, base: ropeBase).reshaped(keyShape)
        let k = k0.reshaped(rotated).rotaryEmbedding(positionOffset: state.position, base: ropeBase).reshaped(keyShape)
        let (o, memory) = gatedLinearAttentionStep(
            q: q, k: k, v: v.reshaped([batch, heads, headValueDim]),
            logGates: logGates(batch: batch, length: 1).reshaped([batch, heads, 1]).broadcast(to: keyShape), state: state.attention.memory, scale: scale)
        state.attention.memory = memory
        state.position += 1
        return outputs(o, x)
    }

    public var parameters: [NamedParameter<T>] {
        inputs.parameters + outputs.gate.parameters("g_proj")
            + [NamedParameter("g_norm_swish_gate.weight", outputs.normWeight, tags: .norm)] + outputs.output.parameters("o_proj")
    }

    /// Projections (q, k, v, g, o), the optional short convs + SiLU, RoPE on q and k (3 FLOPs per entry), the
    /// recurrence per token and head with fixed decays (`LayerWork.gatedLinearAttention`), the gated RMSNorm.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length
        return inputs.work(batch: batch, length: length) + LayerWork.elementwise(2 * rows * keyDim, flops: 3)
            + LayerWork.gatedLinearAttention(tokens: rows * heads, keyDim: headKeyDim, valueDim: headValueDim, gateExponentials: false)
            + outputs.work(rows: rows, heads: heads)
    }

    /// H K V, plus (conv_size - 1)(2 key_dim + value_dim) with short convolutions.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int {
        heads * headKeyDim * headValueDim + inputs.convolutionStateSize
    }
}

/// Registry entry for `retnet`.
public enum MultiScaleRetentionFactory: LayerFactory {
    public static let name = "retnet"
    public static let plotColor = "#44AA99"
    public static let summary = "multi-scale retention: fixed per-head decays 1 - 2^(-5-h), RoPE, shared scalar-gate chunk kernel (Sun et al. 2023)"
    public static let options: [LayerOptionSpec] =
        LinearAttentionOptions.shape(heads: 8, expandK: 1, expandV: 2, headsHelp: "heads (head h decays by 1 - 2^(-5-h))")
        + [LinearAttentionOptions.chunkSize]
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["heads": "2", "chunk_size": "4"]),
         LayerOptions(["heads": "4", "expand_k": "1", "expand_v": "1", "use_short_conv": "true", "chunk_size": "5"])]
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let heads = options.int("heads")
        let (expandK, expandV) = (options.double("expand_k"), options.double("expand_v"))
        let (keyDim, _) = try LinearAttentionSizes.dimensions(dModel: dModel, expandK: expandK, expandV: expandV, heads: heads,
                                                                     owner: "layer \(name)")
        guard (keyDim / heads) % 2 == 0 else {
            throw SequenceLabError("layer \(name): the key size per head (\(keyDim / heads)) must be even for RoPE")
        }
        return MultiScaleRetention<T>(
            dModel: dModel, heads: heads, expandK: expandK, expandV: expandV,
            shortConvolution: options.bool("use_short_conv") ? options.int("conv_size") : nil,
            chunkSize: options.int("chunk_size"), rng: &rng)
    }
}
