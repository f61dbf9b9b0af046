import Foundation
import Tensors

/// The sizes and init ranges of one block, read from the `mamba` options (`MambaFactory.options` holds the
/// defaults: REFERENCE.md section 2).
public struct MambaConfiguration: Sendable, Equatable {
    public var dState, expand, dConv: Int
    /// nil: ceil(d_model / 16).
    public var dtRank: Int?
    public var dtMin, dtMax, dtInitFloor: Double
    public var negativeEigenvalues: Bool
    /// out_proj's init is divided by sqrt(layers): the model's depth with `rescale_prenorm_residual`, else 1.
    public var layers: Int
    public var tiling: SelectiveScanTiling

    /// The configuration of `options` (checked against `MambaFactory.options`) in a model of `context.depth` blocks.
    public init(_ o: OptionValues, context: LayerContext = LayerContext()) throws {
        dState = o.int("d_state")
        expand = o.int("expand")
        dConv = o.int("d_conv")
        dtRank = o.optionalInt("dt_rank")
        dtMin = o.double("dt_min")
        dtMax = o.double("dt_max")
        dtInitFloor = o.double("dt_init_floor")
        negativeEigenvalues = o.bool("negative_eigenvalues")
        layers = o.bool("rescale_prenorm_residual") ? context.depth : 1
        tiling = SelectiveScanTiling(checkpointInterval: o.int("checkpoint_interval"))
        guard dtMax >= dtMin else { throw SequenceLabError("\(o.owner): needs dt_min <= dt_max, got \(dtMin), \(dtMax)") }
    }

    /// The defaults (every option at its declared default, a model of depth 1).
    public static var defaults: MambaConfiguration {
        try! MambaConfiguration(Options().resolved(against: MambaFactory.options, owner: "layer mamba"))
    }
}

/// The Mamba block (Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023, Figure 3;
/// the mixer of `mamba_simple.py`), with E = expand d_model channels inside and N = d_state:
///
///     [x, z] = in_proj(input)                              [B, L, 2E]
///     u      = silu(causal depthwise conv_k(x))            [B, L, E]
///     [dt, Bs, Cs] = x_proj(u)                             [B, L, R], [B, L, N], [B, L, N]
///     y      = selective_scan(u, dt W_dt, A = -exp(A_log), Bs, Cs, D, z, delta_bias = b_dt)   (softplus on dt)
///     output = out_proj(y)                                 [B, L, d_model]
///
/// Initialisation as mamba: dt = exp(U(log dt_min, log dt_max)) clamped at dt_init_floor, b_dt = softplus^-1(dt);
/// W_dt ~ U(+-R^-1/2); A_log = log(1..N) per channel (S4D-Real); D = 1; with `rescale_prenorm_residual`, out_proj
/// divided by sqrt(model depth) (mamba_ssm MixerModel's init).
/// With `negativeEigenvalues` the transition is 2 exp(dt A) - 1 (eigenvalues in (-1, 1], for state tracking).
public final class MambaBlock<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel, dInner, dState, dConv, dtRank: Int
    public let negativeEigenvalues: Bool
    public let tiling: SelectiveScanTiling
    public let inProj, xProj, dtProj, outProj: Linear<T>
    /// Depthwise convolution weight [E, 1, d_conv] (nn.Conv1d's layout) and bias [E].
    public let convWeight, convBias: Tensor<T>
    /// log(-A) [E, N] and the skip D [E]; neither takes weight decay.
    public let aLog, skip: Tensor<T>

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(dModel: Int, configuration c: MambaConfiguration = .defaults, rng: inout RandomGenerator) {
        precondition(dModel > 0 && c.dState > 0 && c.expand > 0 && c.dConv > 0, "MambaBlock: sizes must be positive")
        self.dModel = dModel
        dInner = c.expand * dModel
        dState = c.dState
        dConv = c.dConv
        dtRank = c.dtRank ?? (dModel + 15) / 16
        negativeEigenvalues = c.negativeEigenvalues
        tiling = c.tiling
        inProj = Linear(inputSize: dModel, outputSize: 2 * dInner, bias: false, rng: &rng)
        let convBound = T(1 / Double(dConv).squareRoot())  // PyTorch Conv1d(groups = E): fan_in = d_conv
        convWeight = Tensor.uniform([dInner, 1, dConv], low: -convBound, high: convBound, using: &rng, requiresGrad: true)
        convBias = Tensor.uniform([dInner], low: -convBound, high: convBound, using: &rng, requiresGrad: true)
        xProj = Linear(inputSize: dInner, outputSize: dtRank + 2 * dState, bias: false, rng: &rng)
        dtProj = Linear(inputSize: dtRank, outputSize: dInner, bias: true, rng: &rng)  // W ~ U(+-R^-1/2) as mamba
        dtProj.bias!.data = TimeStepInit.biases(dInner, min: c.dtMin, max: c.dtMax, floor: c.dtInitFloor, rng: &rng)
        outProj = Linear(inputSize: dInner, outputSize: dModel, bias: false, rng: &rng)
        if c.layers > 1 {
            let s = T(1 / Double(c.layers).squareRoot())
            outProj.weight.data = outProj.weight.data.map { $0 * s }
        }
        let n = c.dState
        aLog = Tensor(shape: [dInner, n], data: (0..<(dInner * n)).map { T(Foundation.log(Double($0 % n + 1))) }, requiresGrad: true)
        skip = Tensor.ones([dInner], requiresGrad: true)
    }

    /// A = -exp(A_log) [E, N].
    public var stateMatrix: Tensor<T> { -aLog.exp() }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ input: Tensor<T>) -> Tensor<T> {
        precondition(input.rank == 3 && input.shape[2] == dModel, "mamba: input \(input.shape), needs [B, L, \(dModel)]")
        // in_proj as two products with the halves of its weight: x and z come out contiguous, no split copy.
        let x = input.matmul(inProj.weight.slice(axis: 0, 0..<dInner), transposeOther: true)             // [B, L, E]
        let z = input.matmul(inProj.weight.slice(axis: 0, dInner..<(2 * dInner)), transposeOther: true)  // [B, L, E]
        let u = shortConvolutionSiLU(x, weight: convWeight, bias: convBias)            // [B, L, E]
        let dbc = splitLastAxis(xProj(u), sizes: [dtRank, dState, dState])               // [B, L, R], [B, L, N] x 2
        let delta = dbc[0].matmul(dtProj.weight, transposeOther: true)                   // [B, L, E]
        let (y, _) = selectiveScan(
            u: u, delta: delta, A: stateMatrix, B: dbc[1], C: dbc[2], D: skip, z: z, deltaBias: dtProj.bias,
            deltaSoftplus: true, negativeEigenvalues: negativeEigenvalues, tiling: tiling)  // [B, L, E]
        return outProj(y)                                                                // [B, L, d_model]
    }

    /// The recurrent state: the last d_conv - 1 convolution inputs and the SSM state.
    public struct State {
        /// [B, d_conv - 1, E], oldest first.
        public var convolution: Tensor<T>
        /// x [B, E, N].
        public var ssm: Tensor<T>
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> State {
        State(convolution: Tensor.zeros([batchSize, dConv - 1, dInner]), ssm: Tensor.zeros([batchSize, dInner, dState]))
    }

    /// One token: roll the convolution window, then x = dA x + dt u Bs, y = (x Cs + D u) silu(z).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ input: Tensor<T>, state: inout State) -> Tensor<T> {
        let batch = input.shape[0]
        let xz = inProj(input).split(axis: 1, sizes: [dInner, dInner])                              // [B, E] x 2
        let window = Tensor.concatenate([state.convolution, xz[0].reshaped([batch, 1, dInner])], axis: 1)  // [B, k, E]
        state.convolution = window.slice(axis: 1, 1..<dConv)                                         // [B, k-1, E]
        let u = ((window * convWeight.reshaped([dInner, dConv]).transposed()).sum(axis: 1) + convBias).silu()  // [B, E]
        let dbc = xProj(u).split(axis: 1, sizes: [dtRank, dState, dState])                           // [B, R], [B, N] x 2
        let dt = dtProj(dbc[0]).softplus()                                                           // [B, E]
        var dA = (dt.reshaped([batch, dInner, 1]) * stateMatrix).exp()                               // [B, E, N]
        if negativeEigenvalues { dA = dA * 2 - 1 }
        let dBu = (dt * u).reshaped([batch, dInner, 1]) * dbc[1].reshaped([batch, 1, dState])       // [B, E, N]
        state.ssm = dA * state.ssm + dBu
        let y = (state.ssm * dbc[2].reshaped([batch, 1, dState])).sum(axis: 2) + u * skip           // [B, E]
        return outProj(y * xz[1].silu())                                                             // [B, d_model]
    }

    public var parameters: [NamedParameter<T>] {
        inProj.parameters("in_proj")
            + [NamedParameter("conv1d.weight", convWeight), NamedParameter("conv1d.bias", convBias)]
            + xProj.parameters("x_proj") + dtProj.parameters("dt_proj")
            + [NamedParameter("A_log", aLog, tags: .ssm), NamedParameter("D", skip, tags: .ssm)]
            + outProj.parameters("out_proj")
    }

    /// in_proj, x_proj, dt_proj (+ bias), out_proj; per (token, channel) the causal conv (2 per visible tap, + bias),
    /// its SiLU, softplus(dt), dt u, D u + y, y silu(z) (7 + 3 transcendentals); per (token, channel, state) the scan
    /// dA = exp(dt A), h = dA h + (dt u) B, y += C h (6 + 1 exp; 2 more for 2 dA - 1 with negative eigenvalues).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        let rows = batch * length, channels = rows * dInner, states = Double(channels) * Double(dState)
        let taps = Double(batch) * LayerWork.causalTaps(length: length, width: dConv) * Double(dInner)
        let projections = LayerWork.linear(rows: rows, inputs: dModel, outputs: 2 * dInner)
            + LayerWork.linear(rows: rows, inputs: dInner, outputs: dtRank + 2 * dState)
            + LayerWork.linear(rows: rows, inputs: dtRank, outputs: dInner, bias: dtProj.bias != nil)
            + LayerWork.linear(rows: rows, inputs: dInner, outputs: dModel)
        let perChannel = LayerWork(elementwise: 2 * taps + 7 * Double(channels), transcendentals: 3 * Double(channels))
        let perState = LayerWork(elementwise: (negativeEigenvalues ? 8 : 6) * states, transcendentals: states)
        return projections + perChannel + perState
    }

    /// E N scalars (the SSM state; the convolution window adds (d_conv - 1) E more).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int { dInner * dState }
}

/// Registry entry for `mamba`.
public enum MambaFactory: LayerFactory {
    public static let name = "mamba"
    public static let plotColor = "#D55E00"
    public static var kernels: [FunctionalKernel.Type] { [SelectiveScanKernel.self] }
    public static var opChecks: [OpCheck] { MambaChecks.opChecks }
    public static let summary = "Mamba block: selective SSM (S6) with input-dependent dt, B, C (Gu & Dao 2023)"
    public static let options: [LayerOptionSpec] = [
        .int("d_state", 16, "N, state entries per channel", min: 1, max: LayerLimits.maximumStateSize),
        .int("expand", 2, "E = expand d_model inner channels", min: 1, max: LayerLimits.maximumExpansion),
        .int("d_conv", 4, "causal depthwise convolution width", min: 1, max: LayerLimits.maximumConvolutionWidth),
        .intOrAuto("dt_rank", "rank of the dt projection (auto = ceil(d_model / 16))", min: 1, max: LayerLimits.maximumWidth),
        .number("dt_min", 0.001, "smallest initial dt", above: 0),
        .number("dt_max", 0.1, "largest initial dt", above: 0),
        .number("dt_init_floor", 0.0001, "lower clamp of the initial dt", min: 0),
        .bool("negative_eigenvalues", false, "transition 2 exp(dt A) - 1 (eigenvalues in (-1, 1])"),
        .bool("rescale_prenorm_residual", false,
              "out_proj init / sqrt(model depth), as mamba_ssm's MixerModel (and Zoology) do; mambapy's MambaBlock does not"),
        .int("checkpoint_interval", 32, "scan steps between stored states (backward recomputes them)", min: 1, max: LayerLimits.maximumChunk),
    ]

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        MambaBlock<T>(dModel: dModel, configuration: try MambaConfiguration(options, context: context), rng: &rng)
    }

    /// Default sizes, then negative eigenvalues with a small odd state, a short checkpoint interval (the backward
    /// recomputes across chunk boundaries) and an explicit dt rank.
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(),
         LayerOptions(["negative_eigenvalues": "true", "d_state": "5", "expand": "1", "dt_rank": "3", "d_conv": "3",
                       "checkpoint_interval": "3"])]
    }
}
