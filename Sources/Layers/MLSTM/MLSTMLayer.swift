import Foundation
import Tensors

/// The mLSTM layer of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory"; the authors' `xlstm`
/// package, `xlstm/blocks/mlstm/layer.py` `mLSTMLayer`), pre-up-projection block without its residual:
///     [x_m, z] = x W_up                                (D -> 2 I; I = proj_factor D rounded up to a multiple of 64)
///     c = silu(conv(x_m))                              (causal depthwise, kernel 4, with bias)
///     q = c W_q, k = c W_k, v = x_m W_v                (block-diagonal, blocks of qkv_proj_blocksize = 4 channels)
///     i~ = [q, k, v] W_i + b_i,  f~ = [q, k, v] W_f + b_f     (one pre-activation per head; 4 heads of E = I / 4)
///     h = mLSTM(q, k, v, i~, f~)                       (`matrixLSTM`: exponential input gate, sigmoid forget gate,
///                                                       normaliser state, max stabiliser; on the scalar-gate
///                                                       chunk kernel)
///     y = ((GroupNorm_heads(h) (1 + w_norm) + s * c) * silu(z)) W_down
/// Init as the standalone xlstm layer (`reset_parameters`, one block): W_up, W_q, W_k, W_v ~ N(0, 2 / (5 D)) ("small
/// init"), W_down ~ N(0, (2 / sqrt D)^2) (Wang init with one block), conv as PyTorch's Conv1d (U(+-1/sqrt 4) weight and
/// bias), W_i = W_f = 0, b_i ~ N(0, 0.1^2), b_f = linspace(3, 6, heads), w_norm = 0 (the norm's weight is 1 + w),
/// s = 1, optional projection biases 0.
public final class MLSTMLayer<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel, innerDim, heads: Int
    public let chunkSize: Int
    public let upProjection, downProjection: Linear<T>
    /// The block-diagonal q, k (from the convolved branch) and v (from the unconvolved one) projections.
    public let qProj, kProj, vProj: HeadwiseLinear<T>
    /// The causal depthwise convolution: weight [I, 1, kernel], bias [I].
    public let convWeight, convBias: Tensor<T>
    /// The gates' pre-activations from [q, k, v] (3 I -> heads each).
    public let inputGate, forgetGate: Linear<T>
    /// The output norm's residual weight [I] (the norm multiplies by 1 + w) and the learnable skip s [I].
    public let normWeight, skip: Tensor<T>
    public var headDim: Int { innerDim / heads }
    public var convolutionWidth: Int { convWeight.shape[2] }
    /// xlstm's normaliser eps (`matrixLSTMEpsilon`).
    public static var eps: T { T(matrixLSTMEpsilon) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, innerDim: Int, heads: Int, blockSize: Int, convolutionWidth: Int, bias: Bool,
                chunkSize: Int = 64, rng: inout RandomGenerator) {
        precondition(innerDim % heads == 0 && innerDim % blockSize == 0,
                     "mlstm: inner width \(innerDim) must be a multiple of heads \(heads) and qkv_proj_blocksize \(blockSize)")
        (self.dModel, self.innerDim, self.heads) = (dModel, innerDim, heads)
        self.chunkSize = chunkSize
        let smallInit = (2 / (5 * Double(dModel))).squareRoot()
        // Drawn in the order of the module's __init__ and reset_parameters.
        upProjection = Linear(inputSize: dModel, outputSize: 2 * innerDim, bias: bias, normalStd: smallInit, rng: &rng)
        func headwise() -> HeadwiseLinear<T> {
            HeadwiseLinear(blocks: innerDim / blockSize, blockInputs: blockSize, blockOutputs: blockSize, bias: bias, normalStd: smallInit, rng: &rng)
        }
        (qProj, kProj, vProj) = (headwise(), headwise(), headwise())
        let bound = T(1 / Double(convolutionWidth).squareRoot())
        convWeight = Tensor.uniform([innerDim, 1, convolutionWidth], low: -bound, high: bound, using: &rng, requiresGrad: true)
        convBias = Tensor.uniform([innerDim], low: -bound, high: bound, using: &rng, requiresGrad: true)
        inputGate = Linear(inputSize: 3 * innerDim, outputSize: heads, bias: true, normalStd: 0, rng: &rng)
        inputGate.bias!.data = Tensor<T>.randn([heads], std: 0.1, using: &rng).data
        forgetGate = Linear(inputSize: 3 * innerDim, outputSize: heads, bias: true, normalStd: 0, rng: &rng)
        forgetGate.bias!.data = (0..<heads).map { T(heads == 1 ? 3 : 3 + 3 * Double($0) / Double(heads - 1)) }
        normWeight = Tensor.zeros([innerDim], requiresGrad: true)
        skip = Tensor.ones([innerDim], requiresGrad: true)
        downProjection = Linear(inputSize: innerDim, outputSize: dModel, bias: bias, normalStd: 2 / Double(dModel).squareRoot(), rng: &rng)
    }

    /// The branch after the convolution: (q, k, v [rows..., I], the gates' pre-activations [rows..., H]).
    private func projections(convolved c: Tensor<T>, unconvolved xm: Tensor<T>) -> (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, i: Tensor<T>, f: Tensor<T>) {
        let (q, k, v) = (qProj(c), kProj(c), vProj(xm))
        let gateInput = Tensor.concatenate([q, k, v], axis: q.rank - 1)
        return (q, k, v, inputGate(gateInput), forgetGate(gateInput))
    }

    /// The output: per-head LayerNorm (eps 1e-5, weight 1 + w), the skip, the z gate, the down projection.
    private func output(_ h: Tensor<T>, convolved c: Tensor<T>, z: Tensor<T>) -> Tensor<T> {
        let rows = Array(c.shape.dropLast())
        let normed = h.layerNorm(eps: 1e-5).reshaped(rows + [innerDim]) * normWeight.adding(1)
        return downProjection((normed + skip * c) * z.silu())
    }

    /// x [B, L, D] -> y [B, L, D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "mlstm: input \(x.shape) for d_model \(dModel)")
        let (batch, length) = (x.shape[0], x.shape[1])
        let parts = upProjection(x).split(axis: 2, sizes: [innerDim, innerDim])
        let c = shortConvolutionSiLU(parts[0], weight: convWeight, bias: convBias)
        let u = projections(convolved: c, unconvolved: parts[0])
        let headShape = [batch, length, heads, headDim]
        let (h, _) = matrixLSTM(q: u.q.reshaped(headShape), k: u.k.reshaped(headShape), v: u.v.reshaped(headShape),
                                inputGates: u.i, forgetGates: u.f, eps: Self.eps, chunkSize: chunkSize)
        return output(h, convolved: c, z: parts[1])
    }

    /// The mLSTM memory and stabiliser, and the convolution's last kernel - 1 inputs [B, kernel - 1, I].
    public struct State {
        public var cell: MatrixLSTMState<T>
        public var convolutionWindow: Tensor<T>
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State {
        State(cell: MatrixLSTMState(batchSize: batchSize, heads: heads, headDim: headDim),
              convolutionWindow: Tensor.zeros([batchSize, convolutionWidth - 1, innerDim]))
    }

    /// One token x [B, D] -> y [B, D], advancing the state.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout State) -> Tensor<T> {
        precondition(x.rank == 2 && x.shape[1] == dModel, "mlstm step: input \(x.shape) for d_model \(dModel)")
        let batch = x.shape[0]
        let parts = upProjection(x).split(axis: 1, sizes: [innerDim, innerDim])
        let c = (parts[0].causalConvolutionStep(weight: convWeight, window: &state.convolutionWindow) + convBias).silu()
        let u = projections(convolved: c, unconvolved: parts[0])
        let headShape = [batch, heads, headDim]
        let (h, cell) = matrixLSTMStep(q: u.q.reshaped(headShape), k: u.k.reshaped(headShape), v: u.v.reshaped(headShape),
                                       inputGate: u.i, forgetGate: u.f, state: state.cell, eps: Self.eps)
        state.cell = cell
        return output(h, convolved: c, z: parts[1])
    }

    public var parameters: [NamedParameter<T>] {
        upProjection.parameters("proj_up") + qProj.parameters("q_proj") + kProj.parameters("k_proj") + vProj.parameters("v_proj")
            + [NamedParameter("conv1d.conv.weight", convWeight), NamedParameter("conv1d.conv.bias", convBias)]
            + inputGate.parameters("mlstm_cell.igate") + forgetGate.parameters("mlstm_cell.fgate")
            + [NamedParameter("mlstm_cell.outnorm.weight", normWeight, tags: .norm), NamedParameter("learnable_skip", skip, tags: .norm)]
            + downProjection.parameters("proj_down")
    }

    /// The projections (up D -> 2 I, down I -> D, three block-diagonal, two gates 3 I -> H), the convolution, the
    /// mLSTM on the GLA kernel (E keys, E + 1 values per head, plus its gates, stabiliser and normaliser), the
    /// per-head norm, the skip and the SiLU gate.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length, blockSize = qProj.blockInputs
        return LayerWork.linear(rows: rows, inputs: dModel, outputs: 2 * innerDim) + LayerWork.linear(rows: rows, inputs: innerDim, outputs: dModel)
            + 3 * HeadwiseLinear<T>.work(rows: rows, blocks: innerDim / blockSize, inputs: blockSize, outputs: blockSize)
            + 2 * LayerWork.linear(rows: rows, inputs: 3 * innerDim, outputs: heads)
            + LayerWork.shortConvolution(batch: batch, length: length, channels: innerDim, width: convolutionWidth)
            + LayerWork.gatedLinearAttention(tokens: rows * heads, keyDim: headDim, valueDim: headDim + 1, gateExponentials: true)
            + LayerWork.elementwise(rows * innerDim, flops: 8) + LayerWork.transcendental(rows * (innerDim + 3 * heads))
            + LayerWork.norm(rows: rows * heads, width: headDim)
    }

    /// H E (E + 1) (memory and normaliser) + H (stabiliser) + (kernel - 1) I (the convolution window).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int {
        heads * headDim * (headDim + 1) + heads + (convolutionWidth - 1) * innerDim
    }
}

/// Registry entry for `mlstm`.
public enum MLSTMFactory: LayerFactory {
    public static let name = "mlstm"
    public static let plotColor = "#AA4466"
    public static let summary = "mLSTM (xLSTM): matrix memory, exponential input gate, normaliser and max stabiliser, on the scalar-gate chunk kernel (Beck et al. 2024)"
    public static let options: [LayerOptionSpec] = [
        .int("heads", 4, "mLSTM heads (each E = I / heads channels)", min: 1, max: LayerLimits.maximumWidth),
        .number("proj_factor", 2, "inner width I = proj_factor d_model, rounded up to a multiple of proj_multiple_of", above: 0, max: Double(LayerLimits.maximumExpansion)),
        .int("proj_multiple_of", 64, "round the inner width up to a multiple of this", min: 1, max: 1024),
        .int("qkv_proj_blocksize", 4, "channels per block of the block-diagonal q, k, v projections", min: 1, max: LayerLimits.maximumWidth),
        .int("conv_size", 4, "causal depthwise convolution width", min: 2, max: LayerLimits.maximumConvolutionWidth),
        .bool("bias", false, "biases on the up, q/k/v and down projections"),
        LinearAttentionOptions.chunkSize,
    ]
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["heads": "2", "proj_multiple_of": "4", "qkv_proj_blocksize": "2", "chunk_size": "4"]),
         LayerOptions(["heads": "1", "proj_factor": "1.5", "proj_multiple_of": "6", "qkv_proj_blocksize": "3", "conv_size": "3",
                       "bias": "true", "chunk_size": "5"])]
    }
    public static var kernels: [FunctionalKernel.Type] { [MatrixLSTMKernel.self] }
    public static var opChecks: [OpCheck] { MatrixLSTMChecks.all }

    /// xlstm's inner width: ceil(proj_factor d_model / multiple) multiple.
    static func innerDim(_ options: OptionValues, dModel: Int) -> Int {
        let multiple = options.int("proj_multiple_of")
        return Int((options.double("proj_factor") * Double(dModel) / Double(multiple)).rounded(.up)) * multiple
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let inner = innerDim(options, dModel: dModel)
        let (heads, blockSize) = (options.int("heads"), options.int("qkv_proj_blocksize"))
        guard inner % heads == 0 else {
            throw SequenceLabError("layer \(name): heads \(heads) must divide the inner width \(inner) (proj_factor d_model rounded up to proj_multiple_of)")
        }
        guard inner % blockSize == 0 else {
            throw SequenceLabError("layer \(name): qkv_proj_blocksize \(blockSize) must divide the inner width \(inner)")
        }
        return MLSTMLayer<T>(dModel: dModel, innerDim: inner, heads: heads, blockSize: blockSize, convolutionWidth: options.int("conv_size"),
                             bias: options.bool("bias"), chunkSize: options.int("chunk_size"), rng: &rng)
    }
}
