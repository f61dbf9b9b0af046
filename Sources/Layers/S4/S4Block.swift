import Tensors

// The S4 block as in the S4 repository's LRA models (state-spaces/s4, `S4Block` with `FFTConv`):
//   y = GLU(Linear_{H -> 2H}(Dropout(GELU(K * u + D u))))
// with K the SSM convolution kernel (S4: DPLR + Cauchy; S4D: diagonal + Vandermonde), causal, or two-sided when
// bidirectional (K = pad(K0, right L) + pad(flip(K1), left L)). Residual and normalisation belong to the model.
// Recurrent form (inference): x_t = Abar x_{t-1} + Bbar u_t, y_t = C x_t + D u_t, then the same GELU, Linear, GLU.

/// The discretised SSM of every channel, for the recurrent step.
public enum SSMRecurrence<T: TensorScalar> {
    /// Diagonal (S4D): per channel h and mode n, x <- Abar x + Bbar u, y = 2 Re sum_n C_n x_n. Arrays [H, N/2].
    case diagonal(aRe: [T], aIm: [T], bRe: [T], bIm: [T], cRe: [T], cIm: [T], modes: Int)
    /// Dense real (S4 in real coordinates of its conjugate-symmetric state): x <- Abar x + Bbar u, y = C x.
    /// Abar stored transposed, [H, N, N] with aTransposed[h, j, i] = Abar_h[i, j]; Bbar and C [H, N].
    case dense(aTransposed: [T], b: [T], c: [T], size: Int)

    /// Real scalars of state per channel.
    var stateWidth: Int {
        switch self {
        case .diagonal(_, _, _, _, _, _, let modes): return 2 * modes
        case .dense(_, _, _, let size): return size
        }
    }
}

/// The SSM half of an S4-family block: its parameters, its convolution kernel and its recurrent form.
public protocol SSMKernelGenerator<Scalar>: AnyObject {
    associatedtype Scalar: TensorScalar
    /// The channels H.
    var channels: Int { get }
    /// The state size N (real scalars per channel).
    var stateSize: Int { get }
    /// The kernel K [H, L] of `direction` (0: causal; 1: the anticausal kernel of a bidirectional block).
    func kernel(length: Int, direction: Int) -> Tensor<Scalar>
    /// The parameters, named, with their optimiser tags.
    var parameters: [NamedParameter<Scalar>] { get }
    /// The discretised system of direction 0 for stepping (from the current parameter values).
    func recurrence() -> SSMRecurrence<Scalar>
}

/// The recurrent state of an S4-family block: the SSM state [B, H, N] and the discretised system it steps with.
public struct SSMState<T: TensorScalar> {
    /// The state [B, H, N] (real scalars).
    public var x: [T]
    /// The discretised system, fixed when the state was created.
    public let recurrence: SSMRecurrence<T>
    /// B.
    public let batch: Int
}

/// The S4 / S4D block: SSM convolution + D skip -> GELU -> dropout -> Linear to 2H -> GLU.
public final class S4Block<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel: Int
    /// The SSM: kernel, parameters, recurrence.
    public let ssm: any SSMKernelGenerator<T>
    /// The skip D [H].
    public let d: Tensor<T>
    /// The output projection H -> 2H (followed by GLU).
    public let output: Linear<T>
    /// Two-sided convolution (no recurrent form).
    public let bidirectional: Bool
    /// Dropout probability after GELU (applied only while `isTraining`).
    public let dropout: Double
    /// Whether dropout is active.
    public var isTraining = true
    private var dropoutGenerator: RandomGenerator

    /// A block around `ssm`: D ~ randn, the output Linear H -> 2H with PyTorch's init.
    public init(ssm: any SSMKernelGenerator<T>, bidirectional: Bool, dropout: Double, rng: inout RandomGenerator) {
        self.ssm = ssm
        dModel = ssm.channels
        self.bidirectional = bidirectional
        self.dropout = dropout
        d = Tensor.randn([ssm.channels], using: &rng, requiresGrad: true)
        output = Linear(inputSize: ssm.channels, outputSize: 2 * ssm.channels, bias: true, rng: &rng)
        dropoutGenerator = RandomGenerator(seed: rng.next())
    }

    public var supportsStep: Bool { !bidirectional }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "S4 block: input \(x.shape) for a layer of width \(dModel)")
        let length = x.shape[1]
        let k = ssm.kernel(length: length, direction: 0)  // [H, L]
        let k1 = bidirectional ? ssm.kernel(length: length, direction: 1) : nil
        var y = fftConvolutionGELU(x, kernel: k, anticausalKernel: k1, skip: d)  // GELU(K * u + D u), channel-major [B, H, L]
        if isTraining && dropout > 0 { y = y.dropout(dropout, training: true, using: &dropoutGenerator) }
        return gluLinearChannelMajor(y, weight: output.weight, bias: output.bias)  // [B, L, H]
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func initialState(batchSize: Int) -> SSMState<T> {
        precondition(!bidirectional, "S4 block: a bidirectional block has no recurrent form")
        let recurrence = ssm.recurrence()
        return SSMState(x: [T](repeating: 0, count: batchSize * dModel * recurrence.stateWidth), recurrence: recurrence, batch: batchSize)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func step(_ x: Tensor<T>, state: inout SSMState<T>) -> Tensor<T> {
        precondition(x.shape == [state.batch, dModel], "S4 block step: input \(x.shape), expected [\(state.batch), \(dModel)]")
        let ssmOutput = advance(&state, input: x.data)  // [B, H]
        let y = Tensor(shape: x.shape, data: ssmOutput) + x * d
        return gluLinear(y.fastGELU(), weight: output.weight, bias: output.bias)
    }

    /// x <- Abar x + Bbar u; returns C x per (b, h).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func advance(_ state: inout SSMState<T>, input u: [T]) -> [T] {
        let (channels, batch) = (dModel, state.batch)
        var y = [T](repeating: 0, count: batch * channels)
        let recurrence = state.recurrence
        state.x.withUnsafeMutableBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in
        u.withUnsafeBufferPointer { up in
            let (x, out, input) = (xp.baseAddress!, yp.baseAddress!, up.baseAddress!)
            switch recurrence {
            case let .diagonal(aRe, aIm, bRe, bIm, cRe, cIm, modes):
                withPointers([aRe, aIm, bRe, bIm, cRe, cIm]) { p in
                    for b in 0..<batch {
                        for h in 0..<channels {
                            let (xr, xi) = (x + (b * channels + h) * 2 * modes, x + (b * channels + h) * 2 * modes + modes)
                            let (ar, ai, br, bi, cr, ci) = (p[0] + h * modes, p[1] + h * modes, p[2] + h * modes,
                                                            p[3] + h * modes, p[4] + h * modes, p[5] + h * modes)
                            let uh = input[b * channels + h]
                            var acc: T = 0
                            for n in 0..<modes {  // x <- Abar x + Bbar u, y = 2 Re(C x)
                                let nr = ar[n] * xr[n] - ai[n] * xi[n] + br[n] * uh
                                let ni = ar[n] * xi[n] + ai[n] * xr[n] + bi[n] * uh
                                xr[n] = nr
                                xi[n] = ni
                                acc += cr[n] * nr - ci[n] * ni
                            }
                            out[b * channels + h] = 2 * acc
                        }
                    }
                }
            case let .dense(aT, bBar, c, size):
                withPointers([aT, bBar, c]) { p in
                    withUnsafeTemporaryAllocation(of: T.self, capacity: size) { buffer in
                        let next = buffer.baseAddress!
                        for b in 0..<batch {
                            for h in 0..<channels {
                                let state = x + (b * channels + h) * size, uh = input[b * channels + h]
                                let (bh, ch) = (p[1] + h * size, p[2] + h * size)
                                for i in 0..<size { next[i] = bh[i] * uh }
                                for j in 0..<size {  // next += Abar[:, j] x_j (Abar stored transposed: contiguous columns)
                                    let (column, xj) = (p[0] + (h * size + j) * size, state[j])
                                    for i in 0..<size { next[i] += column[i] * xj }
                                }
                                var acc: T = 0
                                for i in 0..<size {
                                    state[i] = next[i]
                                    acc += ch[i] * next[i]
                                }
                                out[b * channels + h] = acc
                            }
                        }
                    }
                }
            }
        }}}
        return y
    }

    public var parameters: [NamedParameter<T>] {
        ssm.parameters + [NamedParameter("D", d)] + output.parameters("output_linear")
    }

    public func stateSize(sequenceLength: Int) -> Int { dModel * ssm.stateSize }
}

/// The options every S4-family layer takes.
enum SSMOptions {
    static let common: [LayerOptionSpec] = [
        LayerOptionSpec("d_state", "64", "state size N per channel (N/2 complex modes)"),
        LayerOptionSpec("dt_min", "0.001", "smallest initial step size dt"),
        LayerOptionSpec("dt_max", "0.1", "largest initial step size dt (log dt ~ U[log dt_min, log dt_max])"),
        LayerOptionSpec("n_ssm", "0", "independent (A, B) SSMs shared over the channels; 0 = one per channel (untied); must divide d_model"),
        LayerOptionSpec("bidirectional", "false", "two-sided convolution (no recurrent form)"),
        LayerOptionSpec("dropout", "0", "dropout after GELU"),
        LayerOptionSpec("lr", "0.001", "learning rate of the SSM parameters (they also get no weight decay)"),
    ]

    struct Values {
        let stateSize: Int, dtMin: Double, dtMax: Double, tiedSSMs: Int, bidirectional: Bool, dropout: Double, lr: Double
    }

    static func read(_ options: LayerOptions, dModel: Int, layer: String) throws -> Values {
        let n = try options.int("d_state", 64)
        guard n >= 2 && n % 2 == 0 else { throw SequenceLabError("layer \(layer): d_state must be even and >= 2, got \(n)") }
        let (dtMin, dtMax) = (try options.double("dt_min", 0.001), try options.double("dt_max", 0.1))
        guard dtMin > 0 && dtMax >= dtMin else { throw SequenceLabError("layer \(layer): needs 0 < dt_min <= dt_max, got \(dtMin), \(dtMax)") }
        var tied = try options.int("n_ssm", 0)
        if tied == 0 { tied = dModel }
        guard tied > 0 && dModel % tied == 0 else { throw SequenceLabError("layer \(layer): n_ssm \(tied) must divide d_model \(dModel)") }
        let dropout = try options.double("dropout", 0)
        guard dropout >= 0 && dropout < 1 else { throw SequenceLabError("layer \(layer): dropout must be in [0, 1), got \(dropout)") }
        let lr = try options.double("lr", 0.001)
        guard lr >= 0 else { throw SequenceLabError("layer \(layer): lr must be >= 0, got \(lr)") }
        return Values(stateSize: n, dtMin: dtMin, dtMax: dtMax, tiedSSMs: tied, bidirectional: try options.bool("bidirectional", false),
                      dropout: dropout, lr: lr)
    }
}

/// Parameters [n_ssm, N/2] shared over H channels: channel h uses SSM h mod n_ssm (S4's `repeat(A, 't n -> (v t) n')`).
func expandTied<T: TensorScalar>(_ p: Tensor<T>, channels: Int) -> Tensor<T> {
    let (tied, modes) = (p.shape[0], p.shape[1])
    if tied == channels { return p }
    return p.reshaped([1, tied, modes]).broadcast(to: [channels / tied, tied, modes]).reshaped([channels, modes])
}

/// log dt ~ U[log dt_min, log dt_max] per channel.
func initialLogDt<T: TensorScalar>(channels: Int, dtMin: Double, dtMax: Double, rng: inout RandomGenerator) -> Tensor<T> {
    let (lo, hi) = (Double.log(dtMin), Double.log(dtMax))
    return Tensor(shape: [channels], data: (0..<channels).map { _ in T(lo + (hi - lo) * rng.uniform()) }, requiresGrad: true)
}
