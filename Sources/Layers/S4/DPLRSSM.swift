import ComplexModule
import Tensors

// S4 (Gu, Goel, Re, "Efficiently Modeling Long Sequences with Structured State Spaces", ICLR 2022): the SSM with a
// diagonal-plus-low-rank state matrix A = Lambda - P P^* (HiPPO-LegS in its NPLR basis), bilinear discretisation,
// and the kernel from the truncated generating function with C-tilde = C (I - Abar^L) (the Cauchy kernel).
//
// C-tilde belongs to a kernel length (`kernelLength`, S4's l_kernel): inputs of length L <= kernelLength use the
// first L taps of the kernel at kernelLength; a longer input first doubles kernelLength, correcting C-tilde in place
// by C-tilde <- C-tilde (I + Abar^kernelLength) (the same C, so the same SSM; S4 section 3.3 / `_setup_C`).
// The length is kept in a one-scalar tensor listed with the parameters as `kernel_length` (learning rate 0, never
// given a gradient), so that checkpoints carry it with C-tilde, as S4 keeps l_kernel in its state dict.

/// The DPLR SSM of an S4 block: parameters, Cauchy kernel, C-tilde bookkeeping and the dense recurrent step.
public final class DPLRSSM<T: TensorScalar>: SSMKernelGenerator {
    public typealias Scalar = T
    /// H and N (N/2 complex modes per channel).
    public let channels: Int
    public let stateSize: Int
    /// log dt [H].
    public let logDt: Tensor<T>
    /// Lambda = -exp(logLambdaReal) + i lambdaImag, [n_ssm, N/2].
    public let logLambdaReal: Tensor<T>
    public let lambdaImag: Tensor<T>
    /// The low-rank term P and the input vector B, [n_ssm, N/2] each (re, im).
    public let pRe: Tensor<T>, pIm: Tensor<T>, bRe: Tensor<T>, bIm: Tensor<T>
    /// C-tilde: [H, N/2], or [2, H, N/2] when bidirectional (one per direction).
    public let cRe: Tensor<T>, cIm: Tensor<T>
    /// The length C-tilde is defined for (doubles when a longer input arrives).
    public var kernelLength: Int { Int(kernelLengthStorage.data[0].rounded()) }
    /// `kernelLength` as a checkpointed scalar (exact in Float32 up to 2^24).
    public let kernelLengthStorage: Tensor<T>
    private let directions: Int
    private let learningRate: Double

    /// HiPPO-LegS in NPLR form for every SSM, C ~ complex normal, C-tilde set up for `kernelLength`.
    public init(channels: Int, stateSize: Int, tiedSSMs: Int, dtMin: Double, dtMax: Double, directions: Int,
                kernelLength: Int, learningRate: Double, rng: inout RandomGenerator) {
        precondition(channels % tiedSSMs == 0 && kernelLength >= 1, "DPLRSSM: n_ssm must divide H and the kernel length be >= 1")
        self.channels = channels
        self.stateSize = stateSize
        self.directions = directions
        kernelLengthStorage = Tensor(shape: [1], data: [T(kernelLength)])
        self.learningRate = learningRate
        let modes = stateSize / 2
        let nplr = NPLRDecomposition.legS(stateSize: stateSize)
        func tied(_ f: (Int) -> Double) -> Tensor<T> {
            Tensor(shape: [tiedSSMs, modes], data: (0..<(tiedSSMs * modes)).map { T(f($0 % modes)) }, requiresGrad: true)
        }
        logDt = initialLogDt(channels: channels, dtMin: dtMin, dtMax: dtMax, rng: &rng)
        logLambdaReal = tied { Double.log(-nplr.lambda[$0].real) }
        lambdaImag = tied { nplr.lambda[$0].imaginary }
        (pRe, pIm) = (tied { nplr.p[$0].real }, tied { nplr.p[$0].imaginary })
        (bRe, bIm) = (tied { nplr.b[$0].real }, tied { nplr.b[$0].imaginary })
        let cShape = directions == 1 ? [channels, modes] : [directions, channels, modes]
        let count = directions * channels * modes
        let std = 0.5.squareRoot()
        var re = [T](repeating: 0, count: count), im = re
        for i in 0..<count {
            re[i] = T(std * rng.normal())
            im[i] = T(std * rng.normal())
        }
        cRe = Tensor(shape: cShape, data: re, requiresGrad: true)
        cIm = Tensor(shape: cShape, data: im, requiresGrad: true)
        // C-tilde = C (I - Abar^L) for every channel and direction.
        transformC { system, c in system.cTilde(fromC: c, length: kernelLength) }
    }

    /// The bilinear system of channel h from the current parameter values (Float64).
    public func discreteSystem(channel h: Int) -> DiscreteSSM {
        let (modes, tiedSSMs) = (stateSize / 2, logLambdaReal.shape[0])
        let row = (h % tiedSSMs) * modes
        func complex(_ re: Tensor<T>, _ im: Tensor<T>) -> [Complex64] {
            (0..<modes).map { Complex64(Double(re.data[row + $0]), Double(im.data[row + $0])) }
        }
        let lambda = (0..<modes).map { Complex64(-Double.exp(Double(logLambdaReal.data[row + $0])), Double(lambdaImag.data[row + $0])) }
        return DenseDPLRSystem(lambda: lambda, p: complex(pRe, pIm), b: complex(bRe, bIm), dt: Double.exp(Double(logDt.data[h]))).bilinear()
    }

    /// C-tilde of channel h, direction `direction` (Float64).
    public func cTilde(channel h: Int, direction: Int) -> [Complex64] {
        let modes = stateSize / 2, base = (direction * channels + h) * modes
        return (0..<modes).map { Complex64(Double(cRe.data[base + $0]), Double(cIm.data[base + $0])) }
    }

    /// Replaces C-tilde of every channel and direction by `f(system, C-tilde)` (no gradient).
    private func transformC(_ f: @escaping (DiscreteSSM, [Complex64]) -> [Complex64]) {
        let modes = stateSize / 2
        var re = cRe.data, im = cIm.data
        re.withUnsafeMutableBufferPointer { rp in
            im.withUnsafeMutableBufferPointer { ip in
                let (rBase, iBase) = (rp.baseAddress!, ip.baseAddress!)
                Parallel.forEach(channels) { h in
                    let system = discreteSystem(channel: h)
                    for direction in 0..<directions {
                        let updated = f(system, cTilde(channel: h, direction: direction))
                        let base = (direction * channels + h) * modes
                        for n in 0..<modes {
                            rBase[base + n] = T(updated[n].real)
                            iBase[base + n] = T(updated[n].imaginary)
                        }
                    }
                }
            }
        }
        cRe.data = re
        cIm.data = im
    }

    /// Doubles the kernel length: C-tilde <- C-tilde (I + Abar^L), L <- 2L.
    public func doubleKernelLength() {
        let length = kernelLength
        transformC { system, c in system.doubledCTilde(c, length: length) }
        kernelLengthStorage.data[0] = T(2 * length)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func kernel(length: Int, direction: Int) -> Tensor<T> {
        while kernelLength < length { doubleKernelLength() }
        let modes = stateSize / 2
        func direct(_ c: Tensor<T>) -> Tensor<T> {
            directions == 1 ? c : c.slice(axis: 0, direction..<(direction + 1)).reshaped([channels, modes])
        }
        let lambdaRe = expandTied(logLambdaReal.exp() * T(-1), channels: channels)
        let k = s4DPLRKernel(
            logDt: logDt, lambdaRe: lambdaRe, lambdaIm: expandTied(lambdaImag, channels: channels),
            pRe: expandTied(pRe, channels: channels), pIm: expandTied(pIm, channels: channels),
            bRe: expandTied(bRe, channels: channels), bIm: expandTied(bIm, channels: channels),
            cRe: direct(cRe), cIm: direct(cIm), length: kernelLength)  // [H, kernelLength]
        return length == kernelLength ? k : k.slice(axis: 1, 0..<length)
    }

    /// log dt, Lambda, P, B with the SSM tags (own learning rate, no weight decay); C-tilde untagged; the kernel
    /// length C-tilde belongs to (frozen: learning rate 0, no gradient).
    public var parameters: [NamedParameter<T>] {
        let ssm = ParameterTags(weightDecay: false, learningRate: learningRate)
        return [NamedParameter("log_dt", logDt, tags: ssm), NamedParameter("log_Lambda_real", logLambdaReal, tags: ssm),
                NamedParameter("Lambda_imag", lambdaImag, tags: ssm), NamedParameter("P_re", pRe, tags: ssm),
                NamedParameter("P_im", pIm, tags: ssm), NamedParameter("B_re", bRe, tags: ssm), NamedParameter("B_im", bIm, tags: ssm),
                NamedParameter("C_re", cRe), NamedParameter("C_im", cIm),
                NamedParameter("kernel_length", kernelLengthStorage, tags: ParameterTags(weightDecay: false, learningRate: 0))]
    }

    /// The dense real recurrence: C = C-tilde (I - Abar^L)^-1, then real coordinates of the conjugate-symmetric state.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func recurrence() -> SSMRecurrence<T> {
        let n = stateSize
        var a = [T](repeating: 0, count: channels * n * n), b = [T](repeating: 0, count: channels * n), c = b
        a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    let (aBase, bBase, cBase) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
                    Parallel.forEach(channels) { h in
                        let system = discreteSystem(channel: h)
                        let full = system.c(fromCTilde: cTilde(channel: h, direction: 0), length: kernelLength)
                        let real = system.realForm(c: full)
                        for i in 0..<n { for j in 0..<n { aBase[(h * n + j) * n + i] = T(real.a[i * n + j]) } }  // transposed
                        for i in 0..<n {
                            bBase[h * n + i] = T(real.b[i])
                            cBase[h * n + i] = T(real.c[i])
                        }
                    }
                }
            }
        }
        return .dense(aTransposed: a, b: b, c: c, size: n)
    }
}

/// Registry entry for `s4`.
public enum S4Factory: LayerFactory {
    public static let name = "s4"
    public static let summary = "S4 block (Gu et al. 2022): HiPPO-LegS DPLR SSM, Cauchy kernel + FFT conv, GELU, Linear, GLU"
    public static let options: [LayerOptionSpec] = SSMOptions.common + [
        LayerOptionSpec("l_max", "1024", "kernel length C-tilde is set up for (doubled when longer inputs arrive)"),
    ]
    /// Small state; a short l_max so that the L = 33 step check doubles the kernel length; bidirectional with tying.
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["d_state": "8", "l_max": "16"]),
         LayerOptions(["d_state": "4", "l_max": "12", "bidirectional": "true", "n_ssm": "4"])]
    }

    public static func make<T: TensorScalar>(dModel: Int, options: LayerOptions, rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let v = try SSMOptions.read(options, dModel: dModel, layer: name)
        let lMax = try options.int("l_max", 1024)
        guard lMax >= 1 else { throw SequenceLabError("layer s4: l_max must be >= 1, got \(lMax)") }
        let ssm = DPLRSSM<T>(channels: dModel, stateSize: v.stateSize, tiedSSMs: v.tiedSSMs, dtMin: v.dtMin, dtMax: v.dtMax,
                             directions: v.bidirectional ? 2 : 1, kernelLength: lMax, learningRate: v.lr, rng: &rng)
        return S4Block(ssm: ssm, bidirectional: v.bidirectional, dropout: v.dropout, rng: &rng)
    }
}
