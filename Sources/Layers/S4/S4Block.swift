import ComplexModule
import Tensors

// The S4 block as in the S4 repository (state-spaces/s4): `s4` = models/s4/s4.py `S4Block(transposed=False)` (FFTConv
// + SSMKernelDPLR), `s4d` = models/s4/s4d.py `S4D(transposed=False)`:
//   s4:  y = GLU(Linear_{H -> 2H}(Dropout(GELU(Dropout(K * u + D u)))))      (nn.Dropout, elementwise, twice)
//   s4d: y = GLU(Conv1d_{H -> 2H, k=1}(DropoutNd(GELU(K * u + D u))))        (one mask per (b, h), tied over L)
// with K the SSM convolution kernel (S4: DPLR + Cauchy; S4D: diagonal + Vandermonde), causal, or two-sided when
// bidirectional (K = pad(K0, right L) + pad(flip(K1), left L)). Residual and normalisation belong to the model.
// Recurrent form (inference): x_t = Abar x_{t-1} + Bbar u_t, y_t = C x_t + D u_t, then the same GELU, Linear, GLU.
// Parameter names and shapes are the reference modules' state_dict keys and layouts (`S4Reference`).

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
    /// The trainable tensors, named as in the reference kernel module's state_dict (relative to it), with their
    /// optimiser tags.
    var parameters: [NamedParameter<Scalar>] { get }
    /// The reference kernel module's buffers (s4.py's l_kernel; the SSM tensors when lr = 0), named likewise.
    var buffers: [(name: String, tensor: Tensor<Scalar>)] { get }
    /// Called after new values were loaded into `parameters` and `buffers`.
    func stateDidLoad()
    /// The discretised system of direction 0 for stepping (from the current parameter values).
    func recurrence() -> SSMRecurrence<Scalar>
    /// The arithmetic of one `kernel(length:direction:)` call (`LayerWork`'s conventions), nil when not counted.
    func kernelWork(length: Int) -> LayerWork?
}

extension SSMKernelGenerator {
    public var buffers: [(name: String, tensor: Tensor<Scalar>)] { [] }
    public func stateDidLoad() {}
    public func kernelWork(length: Int) -> LayerWork? { nil }
}

/// The PyTorch module an S4-family block reproduces: where its tensors sit in that module's state_dict and their
/// layouts.
public enum S4Reference: Sendable {
    /// s4.py `S4Block`: `layer.kernel.*`, `layer.D` [1, H], `output_linear.0` = nn.Linear [2H, H].
    case s4
    /// s4d.py `S4D`: `kernel.*`, `D` [H], `output_linear.0` = nn.Conv1d(H, 2H, 1) [2H, H, 1].
    case s4d

    /// The prefix of the kernel module's keys.
    var kernelPrefix: String { self == .s4 ? "layer.kernel" : "kernel" }
    /// The key of the skip D.
    var skipName: String { self == .s4 ? "layer.D" : "D" }
    /// The shape of D for H channels.
    func skipShape(_ channels: Int) -> [Int] { self == .s4 ? [1, channels] : [channels] }
    /// The shape of the output projection's weight for H channels.
    func outputWeightShape(_ channels: Int) -> [Int] { self == .s4 ? [2 * channels, channels] : [2 * channels, channels, 1] }
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

/// The S4 / S4D block: SSM convolution + D skip -> GELU -> Linear (or 1x1 Conv1d) to 2H -> GLU, with the
/// reference's dropouts.
public final class S4Block<T: TensorScalar>: SequenceLayer {
    public typealias Scalar = T
    public let dModel: Int
    /// The SSM: kernel, parameters, recurrence.
    public let ssm: any SSMKernelGenerator<T>
    /// The module whose state_dict keys, layouts and dropouts the block follows.
    public let reference: S4Reference
    /// The skip D: [1, H] (s4) or [H] (s4d).
    public let d: Tensor<T>
    /// The output projection H -> 2H (followed by GLU): weight [2H, H] (s4) or [2H, H, 1] (s4d), bias [2H].
    public let outputWeight: Tensor<T>, outputBias: Tensor<T>
    /// Two-sided convolution (no recurrent form).
    public let bidirectional: Bool
    /// Dropout probability (applied only while `isTraining`).
    public let dropout: Double
    /// Whether dropout is active.
    public var isTraining = true
    private var dropoutGenerator: RandomGenerator

    /// A block around `ssm`: D ~ randn, the output projection H -> 2H with PyTorch's init (nn.Linear and nn.Conv1d
    /// with kernel size 1 draw the same U(+-1/sqrt(H))).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(ssm: any SSMKernelGenerator<T>, reference: S4Reference, bidirectional: Bool, dropout: Double, rng: inout RandomGenerator) {
        let h = ssm.channels
        self.ssm = ssm
        self.reference = reference
        dModel = h
        self.bidirectional = bidirectional
        self.dropout = dropout
        d = Tensor.randn(reference.skipShape(h), using: &rng, requiresGrad: true)
        let output = Linear<T>(inputSize: h, outputSize: 2 * h, bias: true, rng: &rng)
        outputWeight = Tensor(shape: reference.outputWeightShape(h), data: output.weight.data, requiresGrad: true)
        outputBias = output.bias!
        dropoutGenerator = RandomGenerator(seed: rng.next())
    }

    /// D as [H] and the output weight as [2H, H] (reshapes share the scalars).
    private var skip: Tensor<T> { d.rank == 1 ? d : d.reshaped([dModel]) }
    private var weight: Tensor<T> { outputWeight.rank == 2 ? outputWeight : outputWeight.reshaped([2 * dModel, dModel]) }

    public var supportsStep: Bool { !bidirectional }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.rank == 3 && x.shape[2] == dModel, "S4 block: input \(x.shape) for a layer of width \(dModel)")
        let length = x.shape[1]
        let k = ssm.kernel(length: length, direction: 0)  // [H, L]
        let k1 = bidirectional ? ssm.kernel(length: length, direction: 1) : nil
        let training = isTraining && dropout > 0
        if training && reference == .s4 {  // s4.py: nn.Dropout before GELU (FFTConv) and after it (S4Block)
            let v = fftConvolution(x, kernel: k, anticausalKernel: k1, skip: skip)  // [B, L, H]
            let y = v.dropout(dropout, training: true, using: &dropoutGenerator).fastGELU()
            return gluLinear(y.dropout(dropout, training: true, using: &dropoutGenerator), weight: weight, bias: outputBias)
        }
        var y = fftConvolutionGELU(x, kernel: k, anticausalKernel: k1, skip: skip)  // GELU(K * u + D u), channel-major [B, H, L]
        if training { y = y * tiedDropoutMask(batch: x.shape[0]) }  // s4d.py: DropoutNd, one draw per (b, h)
        return gluLinearChannelMajor(y, weight: weight, bias: outputBias)  // [B, L, H]
    }

    /// Inverted-dropout mask [B, H, 1] (m / (1 - p), m ~ Bernoulli(1 - p)), broadcast over L.
    private func tiedDropoutMask(batch: Int) -> Tensor<T> {
        let scale = T(1 / (1 - dropout))
        return Tensor(shape: [batch, dModel, 1], data: (0..<(batch * dModel)).map { _ in dropoutGenerator.uniform() >= dropout ? scale : 0 })
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
        let y = Tensor(shape: x.shape, data: ssmOutput) + x * skip
        return gluLinear(y.fastGELU(), weight: weight, bias: outputBias)
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

    /// The reference module's state_dict keys: the kernel's tensors, D, `output_linear.0.{weight, bias}`.
    public var parameters: [NamedParameter<T>] {
        ssm.parameters.prefixed(reference.kernelPrefix) + [NamedParameter(reference.skipName, d)]
            + [NamedParameter("output_linear.0.weight", outputWeight), NamedParameter("output_linear.0.bias", outputBias)]
    }

    public var buffers: [(name: String, tensor: Tensor<T>)] {
        ssm.buffers.map { (name: reference.kernelPrefix + "." + $0.name, tensor: $0.tensor) }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateDidLoad() { ssm.stateDidLoad() }

    /// The kernel generation (`kernelWork`, per direction; independent of the batch), rfft(K', 2L) per channel, and per
    /// (sequence, channel) rfft(u, 2L), the pointwise complex product (6 per bin, L + 1 bins) and irfft(2L); per element
    /// D u (2) and GELU (4 + 1 erf); the output linear H -> 2H (+ bias) and GLU (1 + 1 sigmoid per output). No dropout.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func work(batch: Int, length: Int) -> LayerWork? {
        guard let kernel = ssm.kernelWork(length: length) else { return nil }
        let rows = batch * length, elements = rows * dModel, sequences = batch * dModel
        let convolution = Double(dModel) * LayerWork.fft(2 * length)
            + Double(sequences) * (2 * LayerWork.fft(2 * length) + LayerWork.elementwise(length + 1, flops: 6))
        let activation = LayerWork.elementwise(elements, flops: 2 + 4) + LayerWork.transcendental(elements)
        let output = LayerWork.linear(rows: rows, inputs: dModel, outputs: 2 * dModel, bias: true)
            + LayerWork.elementwise(elements, flops: 1) + LayerWork.transcendental(elements)
        return Double(bidirectional ? 2 : 1) * kernel + convolution + activation + output
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateSize(sequenceLength: Int) -> Int { dModel * ssm.stateSize }
}

/// The options every S4-family layer takes.
enum SSMOptions {
    static let common: [LayerOptionSpec] = [
        .int("d_state", 64, "state size N per channel (N/2 complex modes; even)", min: 2, max: LayerLimits.maximumStateSize),
        .number("dt_min", 0.001, "smallest initial step size dt", above: 0),
        .number("dt_max", 0.1, "largest initial step size dt (log dt ~ U[log dt_min, log dt_max])", above: 0),
        .int("n_ssm", 0, "independent (A, B) SSMs shared over the channels; 0 = one per channel (untied); must divide d_model", min: 0, max: LayerLimits.maximumWidth),
        .bool("bidirectional", false, "two-sided convolution (no recurrent form)"),
        .dropout("dropout", "dropout probability (s4: before and after GELU, elementwise; s4d: after GELU, tied over L)"),
        .number("lr", 0.001, "learning rate of the SSM parameters (no weight decay; s4's C keeps it); 0 freezes them "
                + "(buffers, as the references); the references default to None, example.py passes min(0.001, lr)", min: 0),
    ]

    struct Values {
        let stateSize: Int, dtMin: Double, dtMax: Double, tiedSSMs: Int, bidirectional: Bool, dropout: Double, lr: Double
    }

    static func read(_ options: OptionValues, dModel: Int) throws -> Values {
        let n = options.int("d_state")
        guard n % 2 == 0 else { throw SequenceLabError("\(options.owner): d_state must be even, got \(n)") }
        let (dtMin, dtMax) = (options.double("dt_min"), options.double("dt_max"))
        guard dtMax >= dtMin else { throw SequenceLabError("\(options.owner): needs dt_min <= dt_max, got \(dtMin), \(dtMax)") }
        var tied = options.int("n_ssm")
        if tied == 0 { tied = dModel }
        guard dModel % tied == 0 else { throw SequenceLabError("\(options.owner): n_ssm \(tied) must divide d_model \(dModel)") }
        return Values(stateSize: n, dtMin: dtMin, dtMax: dtMax, tiedSSMs: tied, bidirectional: options.bool("bidirectional"),
                      dropout: options.double("dropout"), lr: options.double("lr"))
    }
}

/// Parameters [n_ssm, N/2] shared over H channels: channel h uses SSM h mod n_ssm (S4's `repeat(A, 't n -> (v t) n')`).
func expandTied<T: TensorScalar>(_ p: Tensor<T>, channels: Int) -> Tensor<T> {
    let (tied, modes) = (p.shape[0], p.shape[1])
    if tied == channels { return p }
    return p.reshaped([1, tied, modes]).broadcast(to: [channels / tied, tied, modes]).reshaped([channels, modes])
}

/// log dt ~ U[log dt_min, log dt_max] per channel.
func initialLogDt<T: TensorScalar>(channels: Int, dtMin: Double, dtMax: Double, rng: inout RandomGenerator) -> [T] {
    let (lo, hi) = (Double.log(dtMin), Double.log(dtMax))
    return (0..<channels).map { _ in T(lo + (hi - lo) * rng.uniform()) }
}

// Complex tensors in PyTorch's view_as_real layout [..., 2] (Re, Im interleaved), as the references store them.

/// A view_as_real tensor of shape `shape + [2]` from complex values.
func complexTensor<T: TensorScalar>(_ shape: [Int], _ values: [Complex64], requiresGrad: Bool) -> Tensor<T> {
    Tensor(shape: shape + [2], data: values.flatMap { [T($0.real), T($0.imaginary)] }, requiresGrad: requiresGrad)
}

/// `count` complex entries of the view_as_real tensor `t`, from complex entry `offset` (Float64, no gradient).
func complexValues<T: TensorScalar>(_ t: Tensor<T>, from offset: Int, count: Int) -> [Complex64] {
    (offset..<(offset + count)).map { Complex64(Double(t.data[2 * $0]), Double(t.data[2 * $0 + 1])) }
}

/// Re z and Im z of the complex entries offset..<offset + prod(shape) of the view_as_real tensor `t`, each shaped
/// `shape`: one tape node whose backward scatters (dRe, dIm) back into the interleaved layout.
func complexParts<T: TensorScalar>(_ t: Tensor<T>, shape: [Int], offset: Int = 0) -> (re: Tensor<T>, im: Tensor<T>) {
    let count = shape.reduce(1, *), total = t.count
    precondition(t.shape.last == 2 && 2 * (offset + count) <= total, "complexParts: \(count) entries from \(offset) of \(t.shape)")
    var re = [T](repeating: 0, count: count), im = re
    t.data.withUnsafeBufferPointer { z in
        for i in 0..<count {
            re[i] = z[2 * (offset + i)]
            im[i] = z[2 * (offset + i) + 1]
        }
    }
    let (reTensor, imTensor) = (Tensor(shape: shape, data: re), Tensor(shape: shape, data: im))
    Tape.record("complex_parts", inputs: [t], outputs: [reTensor, imTensor]) { grads in
        var dz = [T](repeating: 0, count: total)
        for (part, g) in grads.enumerated() {
            guard let g else { continue }
            for i in 0..<count { dz[2 * (offset + i) + part] = g[i] }
        }
        return [dz]
    }
    return (reTensor, imTensor)
}
