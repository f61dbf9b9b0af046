import ComplexModule
import Tensors

// S4D (Gu, Gupta, Goel, Re, "On the Parameterization and Initialization of Diagonal State Space Models",
// NeurIPS 2022): a diagonal state matrix with N/2 complex modes per channel (conjugate symmetry), B = 1, learned C,
// ZOH or bilinear discretisation, and the Vandermonde kernel K_l = 2 Re sum_n C_n Bbar_n Abar_n^l.
// Tensors as s4d.py's `S4DKernel` holds them (state_dict keys under `kernel.`; C as view_as_real pairs):
//   log_dt [H]                    dt = exp(log_dt)
//   log_A_real, A_imag [S, N/2]   A = -exp(log_A_real) + i A_imag          (S = H in s4d.py, which has no n_ssm)
//   C [H, N/2, 2]                 ([2, H, N/2, 2] when bidirectional: a SequenceLab extension)
// With lr = 0 s4d.py registers log_dt, log_A_real and A_imag as buffers (C stays trained); so does this class.
// SequenceLab extensions without an s4d.py counterpart: n_ssm < H, bidirectional, bilinear discretisation, and the
// S4D-Inv / S4D-Real initialisations (s4d.py has S4D-Lin only; s4.py's dplr() builds the others).

/// The diagonal SSM of an S4D block.
public final class DiagonalSSM<T: TensorScalar>: SSMKernelGenerator {
    public typealias Scalar = T
    /// H and N (N/2 complex modes per channel).
    public let channels: Int
    public let stateSize: Int
    /// log dt [H].
    public let logDt: Tensor<T>
    /// A = -exp(logAReal) + i aImag, [n_ssm, N/2].
    public let logAReal: Tensor<T>
    public let aImag: Tensor<T>
    /// C: [H, N/2, 2], or [2, H, N/2, 2] when bidirectional.
    public let c: Tensor<T>
    /// ZOH or bilinear.
    public let discretization: Discretization
    private let directions: Int
    private let learningRate: Double

    /// A from `initialization` for every SSM, C ~ complex normal (variance 1/2 per part), log dt ~ U[log dt_min, log dt_max].
    /// `learningRate` 0 freezes log dt and A (buffers, no gradient).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(channels: Int, stateSize: Int, tiedSSMs: Int, initialization: S4DInitialization, discretization: Discretization,
                dtMin: Double, dtMax: Double, directions: Int, learningRate: Double, rng: inout RandomGenerator) {
        precondition(channels % tiedSSMs == 0, "DiagonalSSM: n_ssm must divide H")
        self.channels = channels
        self.stateSize = stateSize
        self.discretization = discretization
        self.directions = directions
        self.learningRate = learningRate
        let modes = stateSize / 2, trained = learningRate > 0
        let a = initialization.diagonal(stateSize: stateSize)
        logDt = Tensor(shape: [channels], data: initialLogDt(channels: channels, dtMin: dtMin, dtMax: dtMax, rng: &rng), requiresGrad: trained)
        logAReal = Tensor(shape: [tiedSSMs, modes], data: (0..<(tiedSSMs * modes)).map { T(Double.log(-a[$0 % modes].real)) }, requiresGrad: trained)
        aImag = Tensor(shape: [tiedSSMs, modes], data: (0..<(tiedSSMs * modes)).map { T(a[$0 % modes].imaginary) }, requiresGrad: trained)
        let cShape = (directions == 1 ? [] : [directions]) + [channels, modes, 2]
        c = Tensor.randn(cShape, std: T(0.5.squareRoot()), using: &rng, requiresGrad: true)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func kernel(length: Int, direction: Int) -> Tensor<T> {
        let modes = stateSize / 2
        let (cRe, cIm) = complexParts(c, shape: [channels, modes], offset: direction * channels * modes)
        return s4dKernel(logDt: logDt, aRe: expandTied(logAReal.exp() * T(-1), channels: channels),
                         aIm: expandTied(aImag, channels: channels), cRe: cRe, cIm: cIm, length: length,
                         discretization: discretization)  // [H, L]
    }

    /// Per tied mode A = -exp(log_A_real) (1 exp), per channel dt = exp(log dt) (1 exp); per (channel, mode) the
    /// discretisation (ZOH: z = exp(dt A), 3 transcendentals (exp, cos, sin) and 20 FLOPs for dt A, (z - 1) / A, C Bbar;
    /// bilinear: 30 FLOPs); then K_l = 2 Re sum_n coef_n z_n^l: 2 L N per channel (the Vandermonde product, N = d_state).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func kernelWork(length: Int) -> LayerWork? {
        let modes = stateSize / 2, pairs = channels * modes
        let discretize = discretization == .zoh
            ? LayerWork(elementwise: 20 * Double(pairs), transcendentals: 3 * Double(pairs)) : LayerWork(elementwise: 30 * Double(pairs))
        return LayerWork.transcendental(logAReal.shape[0] * modes + channels) + discretize + LayerWork.product(channels, length, stateSize)
    }

    /// s4d.py's tags: log dt, log(-Re A), Im A with the SSM learning rate and no weight decay (buffers with lr 0);
    /// C untagged.
    public var parameters: [NamedParameter<T>] {
        let ssm = ParameterTags(role: .ssm, learningRate: learningRate)
        let dynamics = learningRate > 0
            ? [NamedParameter("log_dt", logDt, tags: ssm), NamedParameter("log_A_real", logAReal, tags: ssm),
               NamedParameter("A_imag", aImag, tags: ssm)]
            : []
        return dynamics + [NamedParameter("C", c)]
    }

    /// With lr = 0: log dt and A, frozen.
    public var buffers: [(name: String, tensor: Tensor<T>)] {
        learningRate > 0 ? [] : [("log_dt", logDt), ("log_A_real", logAReal), ("A_imag", aImag)]
    }

    /// Abar, Bbar, C per (h, n) from the current parameter values.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func recurrence() -> SSMRecurrence<T> {
        let modes = stateSize / 2, tiedSSMs = logAReal.shape[0]
        var aRe = [T](repeating: 0, count: channels * modes), aIm = aRe, bRe = aRe, bIm = aRe
        for h in 0..<channels {
            let dt = Double.exp(Double(logDt.data[h]))
            for n in 0..<modes {
                let t = (h % tiedSSMs) * modes + n, j = h * modes + n
                let a = Complex64(-Double.exp(Double(logAReal.data[t])), Double(aImag.data[t]))
                let mode = DiagonalMode(dt: dt, a: a, c: .one, discretization: discretization)
                (aRe[j], aIm[j]) = (T(mode.z.real), T(mode.z.imaginary))
                (bRe[j], bIm[j]) = (T(mode.bBar.real), T(mode.bBar.imaginary))
            }
        }
        let direction0 = complexValues(c, from: 0, count: channels * modes)  // the causal C
        return .diagonal(aRe: aRe, aIm: aIm, bRe: bRe, bIm: bIm, cRe: direction0.map { T($0.real) }, cIm: direction0.map { T($0.imaginary) },
                         modes: modes)
    }
}

/// Registry entry for `s4d`.
public enum S4DFactory: LayerFactory {
    public static let name = "s4d"
    public static let plotColor = "#56B4E9"
    public static var kernels: [FunctionalKernel.Type] { [S4DKernelOp.self] }
    public static let summary = "S4D block (Gu et al. 2022): diagonal SSM, Vandermonde kernel + FFT conv, GELU, Linear, GLU"
    public static let options: [LayerOptionSpec] = SSMOptions.common + [
        .choice("init", S4DInitialization.lin.rawValue, S4DInitialization.allCases.map(\.rawValue),
                "A initialisation: lin (S4D-Lin), inv (S4D-Inv), real (S4D-Real)"),
        .choice("disc", Discretization.zoh.rawValue, Discretization.allCases.map(\.rawValue), "discretisation: zoh or bilinear"),
    ]
    /// Each initialisation and discretisation once, tying, and the bidirectional form.
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["d_state": "8"]),
         LayerOptions(["d_state": "6", "init": "inv", "disc": "bilinear", "n_ssm": "4"]),
         LayerOptions(["d_state": "4", "init": "real", "bidirectional": "true"])]
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let v = try SSMOptions.read(options, dModel: dModel)
        let initialization = S4DInitialization(rawValue: options.string("init"))!
        let discretization = Discretization(rawValue: options.string("disc"))!
        let ssm = DiagonalSSM<T>(channels: dModel, stateSize: v.stateSize, tiedSSMs: v.tiedSSMs, initialization: initialization,
                                 discretization: discretization, dtMin: v.dtMin, dtMax: v.dtMax,
                                 directions: v.bidirectional ? 2 : 1, learningRate: v.lr, rng: &rng)
        return S4Block(ssm: ssm, reference: .s4d, bidirectional: v.bidirectional, dropout: v.dropout, rng: &rng)
    }
}
