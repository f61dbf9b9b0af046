import ComplexModule
import Tensors

// S4 (Gu, Goel, Re, "Efficiently Modeling Long Sequences with Structured State Spaces", ICLR 2022): the SSM with a
// diagonal-plus-low-rank state matrix A = Lambda - P P^* (HiPPO-LegS in its NPLR basis), bilinear discretisation,
// and the kernel from the truncated generating function with C-tilde = C (I - Abar^L) (the Cauchy kernel).
//
// C-tilde belongs to a kernel length (s4.py's buffer `l_kernel`): inputs of length L <= l_kernel use the first L
// taps of the kernel at l_kernel; a longer input first doubles l_kernel, correcting C-tilde in place by
// C-tilde <- C-tilde (I + Abar^l_kernel) (the same C, so the same SSM; S4 section 3.3 / s4.py `_setup_C`).
//
// Tensors as s4.py's `SSMKernelDPLR` holds them (state_dict keys under `layer.kernel.`, complex tensors as
// torch.view_as_real pairs [..., 2]):
//   inv_dt [H, 1]                 dt = exp(inv_dt)                         (dt_transform 'exp')
//   A_real, A_imag [S, N/2]       Lambda = -exp(A_real) - i A_imag         (real_transform 'exp', imag 'none')
//   P, B [1, S, N/2, 2]           rank-1 term and input vector, S = n_ssm SSMs (channel h uses h mod S)
//   C [c, H, N/2, 2]              C-tilde per direction (c = 2 when bidirectional)
//   l_kernel []                   buffer: the length C-tilde is set up for (int64 in the reference)
// With lr = 0 the reference registers inv_dt, A_real, A_imag, P, B and C as buffers (frozen); so does this class.

/// The DPLR SSM of an S4 block: parameters, Cauchy kernel, C-tilde bookkeeping and the dense recurrent step.
public final class DPLRSSM<T: TensorScalar>: SSMKernelGenerator {
    public typealias Scalar = T
    /// H and N (N/2 complex modes per channel).
    public let channels: Int
    public let stateSize: Int
    /// log dt [H, 1] (s4.py's `inv_dt`).
    public let invDt: Tensor<T>
    /// Lambda = -exp(aReal) - i aImag, [n_ssm, N/2] (aImag = -Im Lambda > 0 at init).
    public let aReal: Tensor<T>, aImag: Tensor<T>
    /// The low-rank term P and the input vector B, [1, n_ssm, N/2, 2].
    public let p: Tensor<T>, b: Tensor<T>
    /// C-tilde, [c, H, N/2, 2] (c = 2 when bidirectional: one per direction).
    public let c: Tensor<T>
    /// The length C-tilde is set up for, as a [] tensor (s4.py's `l_kernel`; exact in Float32 up to 2^24).
    public let lKernel: Tensor<T>
    /// The length C-tilde is set up for (doubles when a longer input arrives; 0 = raw C, see `stateDidLoad`).
    public var kernelLength: Int { Int(lKernel.data[0].rounded()) }
    private let directions: Int
    private let learningRate: Double
    /// The length a raw C (loaded with l_kernel = 0) is set up for: the block's `l_max`.
    private let initialLength: Int

    /// HiPPO-LegS in NPLR form for every SSM (Im B clipped to [-2, 2] as s4.py's `B_clip`), C ~ complex normal,
    /// C-tilde set up for `kernelLength`. `learningRate` 0 freezes the SSM tensors (buffers, no gradient).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(channels: Int, stateSize: Int, tiedSSMs: Int, dtMin: Double, dtMax: Double, directions: Int,
                kernelLength: Int, learningRate: Double, rng: inout RandomGenerator) {
        precondition(channels % tiedSSMs == 0 && kernelLength >= 1, "DPLRSSM: n_ssm must divide H and the kernel length be >= 1")
        self.channels = channels
        self.stateSize = stateSize
        self.directions = directions
        self.learningRate = learningRate
        initialLength = kernelLength
        lKernel = Tensor(scalar: T(kernelLength))
        let modes = stateSize / 2, trained = learningRate > 0
        let nplr = NPLRDecomposition.legS(stateSize: stateSize)
        func tied(_ f: (Int) -> Double) -> Tensor<T> {
            Tensor(shape: [tiedSSMs, modes], data: (0..<(tiedSSMs * modes)).map { T(f($0 % modes)) }, requiresGrad: trained)
        }
        func tiedComplex(_ f: (Int) -> Complex64) -> Tensor<T> {
            complexTensor([1, tiedSSMs, modes], (0..<(tiedSSMs * modes)).map { f($0 % modes) }, requiresGrad: trained)
        }
        invDt = Tensor(shape: [channels, 1], data: initialLogDt(channels: channels, dtMin: dtMin, dtMax: dtMax, rng: &rng),
                       requiresGrad: trained)
        aReal = tied { Double.log(-nplr.lambda[$0].real) }
        aImag = tied { -nplr.lambda[$0].imaginary }
        p = tiedComplex { nplr.p[$0] }
        b = tiedComplex { Complex64(nplr.b[$0].real, min(2, max(-2, nplr.b[$0].imaginary))) }
        let count = directions * channels * modes, std = 0.5.squareRoot()
        c = Tensor(shape: [directions, channels, modes, 2], data: (0..<(2 * count)).map { _ in T(std * rng.normal()) },
                   requiresGrad: trained)
        // C-tilde = C (I - Abar^L) for every channel and direction.
        transformC { system, c in system.cTilde(fromC: c, length: kernelLength) }
    }

    /// The bilinear system of channel h from the current parameter values (Float64).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func discreteSystem(channel h: Int) -> DiscreteSSM {
        let (modes, tiedSSMs) = (stateSize / 2, aReal.shape[0])
        let row = (h % tiedSSMs) * modes
        let lambda = (0..<modes).map { Complex64(-Double.exp(Double(aReal.data[row + $0])), -Double(aImag.data[row + $0])) }
        return DenseDPLRSystem(lambda: lambda, p: complexValues(p, from: row, count: modes),
                               b: complexValues(b, from: row, count: modes), dt: Double.exp(Double(invDt.data[h]))).bilinear()
    }

    /// C-tilde of channel h, direction `direction` (Float64).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func cTilde(channel h: Int, direction: Int) -> [Complex64] {
        let modes = stateSize / 2
        return complexValues(c, from: (direction * channels + h) * modes, count: modes)
    }

    /// Replaces C-tilde of every channel and direction by `f(system, C-tilde)` (no gradient).
    private func transformC(_ f: @escaping (DiscreteSSM, [Complex64]) -> [Complex64]) {
        let modes = stateSize / 2
        var values = c.data
        values.withUnsafeMutableBufferPointer { vp in
            let base = vp.baseAddress!
            Parallel.forEach(channels) { h in
                let system = discreteSystem(channel: h)
                for direction in 0..<directions {
                    let updated = f(system, cTilde(channel: h, direction: direction))
                    let offset = 2 * (direction * channels + h) * modes
                    for n in 0..<modes {
                        base[offset + 2 * n] = T(updated[n].real)
                        base[offset + 2 * n + 1] = T(updated[n].imaginary)
                    }
                }
            }
        }
        c.data = values
    }

    /// Doubles the kernel length: C-tilde <- C-tilde (I + Abar^L), L <- 2L.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func doubleKernelLength() {
        let length = kernelLength
        transformC { system, c in system.doubledCTilde(c, length: length) }
        lKernel.data[0] = T(2 * length)
    }

    /// A state dict saved before the reference's first forward holds the raw C and l_kernel = 0: set C-tilde up for
    /// `l_max` (s4.py's first-forward `_setup_C(l_max)`: C-tilde = C (I - Abar^l_max)).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func stateDidLoad() {
        guard kernelLength == 0 else { return }
        let length = initialLength
        transformC { system, c in system.cTilde(fromC: c, length: length) }
        lKernel.data[0] = T(length)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func kernel(length: Int, direction: Int) -> Tensor<T> {
        precondition(kernelLength >= 1, "DPLRSSM: l_kernel is \(kernelLength); call stateDidLoad() after loading a raw C")
        while kernelLength < length { doubleKernelLength() }
        let (modes, tiedSSMs) = (stateSize / 2, aReal.shape[0])
        let (pRe, pIm) = complexParts(p, shape: [tiedSSMs, modes])
        let (bRe, bIm) = complexParts(b, shape: [tiedSSMs, modes])
        let (cRe, cIm) = complexParts(c, shape: [channels, modes], offset: direction * channels * modes)
        func expand(_ t: Tensor<T>) -> Tensor<T> { expandTied(t, channels: channels) }
        let k = s4DPLRKernel(
            logDt: invDt.reshaped([channels]), lambdaRe: expand(aReal.exp() * T(-1)), lambdaIm: expand(aImag * T(-1)),
            pRe: expand(pRe), pIm: expand(pIm), bRe: expand(bRe), bIm: expand(bIm), cRe: cRe, cIm: cIm,
            length: kernelLength)  // [H, kernelLength]
        return length == kernelLength ? k : k.slice(axis: 1, 0..<length)
    }

    /// At the length the kernel is generated at (l_kernel, doubled until it covers `length`), with M = l_kernel / 2 + 1
    /// roots of unity: per tied mode Lambda = -exp(A_real) (1 exp); per channel dt = exp(inv_dt) (1 exp), the per-mode
    /// coefficients dt Lambda, dt C~ B, dt C~ P, dt P* B, dt |P|^2 (30 per mode), the four Cauchy sums (62 per (root, mode):
    /// two complex reciprocals of alpha - beta mu and four c g + conj(c) g' terms), the Woodbury correction (32 per root),
    /// irfft(l_kernel) and its 1 / l_kernel scale.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func kernelWork(length: Int) -> LayerWork? {
        var generated = max(kernelLength, 1)
        while generated < length { generated *= 2 }
        let (modes, roots) = (stateSize / 2, generated / 2 + 1)
        let perChannel = LayerWork.elementwise(modes, flops: 30) + LayerWork.elementwise(roots * modes, flops: 62)
            + LayerWork.elementwise(roots, flops: 32) + LayerWork.fft(generated) + LayerWork.elementwise(generated, flops: 1)
        return LayerWork.transcendental(aReal.shape[0] * modes + channels) + Double(channels) * perChannel
    }

    /// s4.py's tags: inv_dt, A_real, A_imag, P, B with the SSM learning rate and no weight decay; C with the SSM
    /// learning rate and weight decay. None with lr = 0 (then they are buffers, as in s4.py).
    public var parameters: [NamedParameter<T>] {
        guard learningRate > 0 else { return [] }
        let ssm = ParameterTags(role: .ssm, learningRate: learningRate)
        return [NamedParameter("inv_dt", invDt, tags: ssm), NamedParameter("A_real", aReal, tags: ssm),
                NamedParameter("A_imag", aImag, tags: ssm), NamedParameter("P", p, tags: ssm), NamedParameter("B", b, tags: ssm),
                NamedParameter("C", c, tags: ParameterTags(role: .weight, learningRate: learningRate))]
    }

    /// l_kernel; with lr = 0 also the frozen SSM tensors.
    public var buffers: [(name: String, tensor: Tensor<T>)] {
        let frozen: [(name: String, tensor: Tensor<T>)] = learningRate > 0 ? [] : [("inv_dt", invDt), ("A_real", aReal), ("A_imag", aImag), ("P", p), ("B", b), ("C", c)]
        return frozen + [("l_kernel", lKernel)]
    }

    /// The dense real recurrence: C = C-tilde (I - Abar^L)^-1, then real coordinates of the conjugate-symmetric state.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func recurrence() -> SSMRecurrence<T> {
        let n = stateSize
        var aT = [T](repeating: 0, count: channels * n * n), bBar = [T](repeating: 0, count: channels * n), cFull = bBar
        aT.withUnsafeMutableBufferPointer { ap in
            bBar.withUnsafeMutableBufferPointer { bp in
                cFull.withUnsafeMutableBufferPointer { cp in
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
        return .dense(aTransposed: aT, b: bBar, c: cFull, size: n)
    }
}

/// Registry entry for `s4`.
public enum S4Factory: LayerFactory {
    public static let name = "s4"
    public static let plotColor = "#E69F00"
    public static var kernels: [FunctionalKernel.Type] { [S4DPLRKernelOp.self] }
    public static var opChecks: [OpCheck] { S4Checks.opChecks }  // both S4 kernels (s4 and s4d)
    public static let summary = "S4 block (Gu et al. 2022): HiPPO-LegS DPLR SSM, Cauchy kernel + FFT conv, GELU, Linear, GLU"
    public static let options: [LayerOptionSpec] = SSMOptions.common + [
        .int("l_max", 1024, "kernel length C-tilde is set up for (s4.py's l_kernel; doubled when longer inputs arrive): "
             + "= S4Block(l_max=None) with l_kernel preset; S4Block(l_max=M) instead truncates the kernel beyond M", min: 1, max: 1 << 24),
    ]
    /// Small state; a short l_max so that the L = 33 step check doubles the kernel length; bidirectional with tying.
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["d_state": "8", "l_max": "16"]),
         LayerOptions(["d_state": "4", "l_max": "12", "bidirectional": "true", "n_ssm": "4"])]
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let v = try SSMOptions.read(options, dModel: dModel)
        let lMax = options.int("l_max")
        let ssm = DPLRSSM<T>(channels: dModel, stateSize: v.stateSize, tiedSSMs: v.tiedSSMs, dtMin: v.dtMin, dtMax: v.dtMax,
                             directions: v.bidirectional ? 2 : 1, kernelLength: lMax, learningRate: v.lr, rng: &rng)
        return S4Block(ssm: ssm, reference: .s4, bidirectional: v.bidirectional, dropout: v.dropout, rng: &rng)
    }
}
