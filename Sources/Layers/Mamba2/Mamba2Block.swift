import Foundation
import Tensors

/// The Mamba-2 block (Dao & Gu 2024, "Transformers are SSMs: Generalized Models and Efficient Algorithms Through
/// Structured State Space Duality"; mamba_ssm `Mamba2`, fla `Mamba2`), its SSD layer as gated linear attention:
///     [z, xBC, dt] = x W_in          (z, x: E = expand D; B, C: G groups of N; dt: H = E / P heads)
///     xBC = SiLU(causal depthwise conv(xBC) + b)
///     dt = softplus(dt + dt_bias),  A = -exp(A_log)                                      per head
///     S_t = exp(dt_t A) S_{t-1} + B_t (dt_t x_t)^T,   y_t = C_t^T S_t + D x_t             per head: N x P state
///     out = (RMSNorm_groups(y * SiLU(z)) w) W_out                                         (norm after the gate)
/// Head h reads group h / (H / G) of B and C (mamba_ssm's convention). The SSD recurrence is the shared scalar-gate
/// chunk kernel (`scalarGatedLinearAttention`) with q = C, k = B, v = dt x, the log-gate dt A per head and scale 1:
/// its chunked form is the SSD block decomposition (the diagonal blocks as masked products, the off-diagonal ones
/// through the chunk states).
/// Init as the standalone module (fla `Mamba2.__init__`, = mamba_ssm's): projections and the depthwise convolution
/// at PyTorch's defaults (weight and bias U(+-1/sqrt(d_conv))), dt_bias = softplus^-1(dt) with dt log-uniform in
/// [1e-3, 0.1] floored at 1e-4, A_log = log A with A ~ U(1, 16), D = 1, norm weight 1. Step mode carries the
/// convolution window and the SSM state [B, H, N, P].
public final class Mamba2Block<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel, innerDim, heads, headDim, stateDim, groups: Int
    public let chunkSize: Int
    public let inProj, outProj: Linear<T>
    /// The depthwise convolution over x, B, C: weight [E + 2 G N, 1, d_conv], bias [E + 2 G N].
    public let convWeight, convBias: Tensor<T>
    /// Per head: dt_bias, A_log, D [H].
    public let dtBias, aLog, skip: Tensor<T>
    /// The gated RMSNorm weight [E].
    public let normWeight: Tensor<T>
    public var convolutionChannels: Int { innerDim + 2 * groups * stateDim }
    public var convolutionWidth: Int { convWeight.shape[2] }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, expand: Int = 2, headDim: Int = 64, stateDim: Int = 128, groups: Int = 1, convolutionWidth: Int = 4,
                chunkSize: Int = 64, rng: inout RandomGenerator) {
        let inner = expand * dModel
        precondition(inner % headDim == 0 && (inner / headDim) % groups == 0,
                     "mamba2: expand d_model \(inner) must be a multiple of head_dim \(headDim), and the heads of groups \(groups)")
        (self.dModel, self.innerDim, self.headDim, self.heads) = (dModel, inner, headDim, inner / headDim)
        (self.stateDim, self.groups, self.chunkSize) = (stateDim, groups, chunkSize)
        let channels = inner + 2 * groups * stateDim, heads = inner / headDim
        // Drawn in the order of the module's __init__: conv1d, in_proj, dt_bias, A_log, (norm, D: constants), out_proj.
        let bound = T(1 / Double(convolutionWidth).squareRoot())
        convWeight = Tensor.uniform([channels, 1, convolutionWidth], low: -bound, high: bound, using: &rng, requiresGrad: true)
        convBias = Tensor.uniform([channels], low: -bound, high: bound, using: &rng, requiresGrad: true)
        inProj = Linear(inputSize: dModel, outputSize: 2 * inner + 2 * groups * stateDim + heads, bias: false, rng: &rng)
        dtBias = Tensor(shape: [heads], data: TimeStepInit.biases(heads, rng: &rng), requiresGrad: true)
        aLog = Tensor(shape: [heads], data: (0..<heads).map { _ in T(Foundation.log(1 + 15 * rng.uniform())) }, requiresGrad: true)
        normWeight = Tensor.ones([inner], requiresGrad: true)
        skip = Tensor.ones([heads], requiresGrad: true)
        outProj = Linear(inputSize: inner, outputSize: dModel, bias: false, rng: &rng)
    }

    /// The SSD inputs from the convolved x, B, C ([..., E + 2 G N]) and the raw dt ([..., H]) of `rows` = the leading
    /// shape (B, L or B): q = C and k = B per head [..., H, N], v = dt x [..., H, P], the log-gates dt A [..., H]
    /// and x [..., H, P] for the skip.
    private func ssdInputs(_ xBC: Tensor<T>, _ dtRaw: Tensor<T>, rows: [Int])
        -> (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, g: Tensor<T>, x: Tensor<T>) {
        let parts = splitLastAxis(xBC, sizes: [innerDim, groups * stateDim, groups * stateDim])
        let perGroup = heads / groups
        func toHeads(_ t: Tensor<T>) -> Tensor<T> {  // [..., G N] -> [..., H, N], head h reading group h / (H / G)
            t.reshaped(rows + [groups, 1, stateDim]).broadcast(to: rows + [groups, perGroup, stateDim]).reshaped(rows + [heads, stateDim])
        }
        let dt = (dtRaw + dtBias).softplus()                                       // [..., H]
        let x = parts[0].reshaped(rows + [heads, headDim])
        let logGate = dt * aLog.exp().scaled(by: -1)
        return (toHeads(parts[2]), toHeads(parts[1]), x * dt.reshaped(rows + [heads, 1]), logGate, x)
    }

    /// y [..., H, P] + D x, gated by SiLU(z) and group-RMS-normalised, then W_out.
    private func output(_ y: Tensor<T>, skipInput x: Tensor<T>, gate z: Tensor<T>, rows: [Int]) -> Tensor<T> {
        let u = (y + x * skip.reshaped([heads, 1])).reshaped(rows + [innerDim]) * z.silu()
        let normed = groups == 1
            ? u.rmsNorm(gamma: normWeight, eps: 1e-5)
            : u.reshaped(rows + [groups, innerDim / groups]).rmsNorm(gamma: nil, eps: 1e-5).reshaped(rows + [innerDim]) * normWeight
        return outProj(normed)
    }

    /// x [B, L, D] -> y [B, L, D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "mamba2: input \(x.shape) for d_model \(dModel)")
        let rows = [x.shape[0], x.shape[1]]
        let parts = splitLastAxis(inProj(x), sizes: [innerDim, convolutionChannels, heads])  // z, xBC, dt
        let u = ssdInputs(shortConvolutionSiLU(parts[1], weight: convWeight, bias: convBias), parts[2], rows: rows)
        let (y, _) = scalarGatedLinearAttention(q: u.q, k: u.k, v: u.v, logGates: u.g, scale: 1, chunkSize: chunkSize)
        return output(y, skipInput: u.x, gate: parts[0], rows: rows)
    }

    /// The convolution window [B, d_conv - 1, E + 2 G N] and the SSM state [B, H, N, P].
    public struct State {
        public var window: Tensor<T>
        public var memory: Tensor<T>
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State {
        State(window: Tensor.zeros([batchSize, convolutionWidth - 1, convolutionChannels]),
              memory: Tensor.zeros([batchSize, heads, stateDim, headDim]))
    }

    /// One token x [B, D] -> y [B, D], advancing the state.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout State) -> Tensor<T> {
        precondition(x.rank == 2 && x.shape[1] == dModel, "mamba2 step: input \(x.shape) for d_model \(dModel)")
        let rows = [x.shape[0]]
        let parts = splitLastAxis(inProj(x), sizes: [innerDim, convolutionChannels, heads])
        let convolved = (parts[1].causalConvolutionStep(weight: convWeight, window: &state.window) + convBias).silu()
        let u = ssdInputs(convolved, parts[2], rows: rows)
        let (y, memory) = gatedLinearAttentionStep(q: u.q, k: u.k, v: u.v, logGates: u.g.reshaped(rows + [heads, 1]).broadcast(to: u.q.shape),
                                                   state: state.memory, scale: 1)
        state.memory = memory
        return output(y, skipInput: u.x, gate: parts[0], rows: rows)
    }

    public var parameters: [NamedParameter<T>] {
        inProj.parameters("in_proj") + [NamedParameter("conv1d.weight", convWeight), NamedParameter("conv1d.bias", convBias),
                                         NamedParameter("dt_bias", dtBias, tags: .ssm), NamedParameter("A_log", aLog, tags: .ssm),
                                         NamedParameter("D", skip, tags: .ssm), NamedParameter("norm.weight", normWeight, tags: .norm)]
            + outProj.parameters("out_proj")
    }

    /// in_proj and out_proj, the convolution + SiLU over E + 2 G N channels, softplus of dt and the gate (exp of A_log
    /// per head, ~4 FLOPs per head entry), v = dt x, the SSD recurrence per token and head (N keys, P values), the skip (2 FLOPs per entry), SiLU(z) and the gate
    /// product, the RMSNorm over E.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length
        return LayerWork.linear(rows: rows, inputs: dModel, outputs: inProj.outputSize)
            + LayerWork.shortConvolution(batch: batch, length: length, channels: convolutionChannels, width: convolutionWidth)
            + LayerWork.transcendental(rows * heads) + LayerWork.elementwise(rows * heads, flops: 4)
            + LayerWork.elementwise(rows * innerDim, flops: 1)
            + LayerWork.gatedLinearAttention(tokens: rows * heads, keyDim: stateDim, valueDim: headDim, gateExponentials: false)
            + LayerWork.elementwise(rows * innerDim, flops: 4) + LayerWork.transcendental(rows * innerDim)
            + LayerWork.norm(rows: rows, width: innerDim) + LayerWork.linear(rows: rows, inputs: innerDim, outputs: dModel)
    }

    /// H N P (the SSM state) + (d_conv - 1)(E + 2 G N) (the convolution window).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int {
        heads * stateDim * headDim + (convolutionWidth - 1) * convolutionChannels
    }
}

/// Registry entry for `mamba2`.
public enum Mamba2Factory: LayerFactory {
    public static let name = "mamba2"
    public static let plotColor = "#661100"
    public static let summary = "Mamba-2 block: SSD (scalar decay per head) on the shared scalar-gate chunk kernel, gated RMSNorm (Dao & Gu 2024)"
    public static let options: [LayerOptionSpec] = [
        .int("d_state", 128, "SSM state size N per head", min: 1, max: LayerLimits.maximumStateSize),
        .intOrAuto("head_dim", "P: channels per head, heads = expand d_model / P (auto = min(64, expand d_model), mamba_ssm's 64)", min: 1, max: LayerLimits.maximumWidth),
        .int("expand", 2, "E = expand d_model", min: 1, max: LayerLimits.maximumExpansion),
        .int("n_groups", 1, "groups of B and C shared by the heads", min: 1, max: LayerLimits.maximumWidth),
        .int("d_conv", 4, "depthwise convolution width", min: 2, max: LayerLimits.maximumConvolutionWidth),
        LinearAttentionOptions.chunkSize,
    ]
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["d_state": "4", "head_dim": "8", "chunk_size": "4"]),
         LayerOptions(["d_state": "3", "head_dim": "4", "n_groups": "2", "d_conv": "3", "chunk_size": "5"])]
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let (expand, groups) = (options.int("expand"), options.int("n_groups"))
        let inner = expand * dModel
        let headDim = options.optionalInt("head_dim") ?? min(64, inner)
        guard inner % headDim == 0 else {
            throw SequenceLabError("layer \(name): expand d_model = \(inner) must be a multiple of head_dim \(headDim)")
        }
        guard (inner / headDim) % groups == 0 else {
            throw SequenceLabError("layer \(name): n_groups \(groups) must divide the \(inner / headDim) heads")
        }
        return Mamba2Block<T>(dModel: dModel, expand: expand, headDim: headDim, stateDim: options.int("d_state"), groups: groups,
                              convolutionWidth: options.int("d_conv"), chunkSize: options.int("chunk_size"), rng: &rng)
    }
}
