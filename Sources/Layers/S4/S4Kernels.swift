import Foundation
import Tensors

// `seqlab op s4d_kernel` and `seqlab op s4_dplr_kernel` (the KERNELS.md contract), and the op-level checks of the
// S4 family: Float64 finite-difference checks of both kernels, GLU and the bidirectional convolution, and
// fast == reference comparisons (outputs and every input gradient).

/// Checks log_dt [H] and that every other named input is [H, N/2] like the first.
private func requireModeShapes<T>(_ x: [String: Tensor<T>], _ names: [String], op: String) throws {
    let logDt = x["log_dt"]!
    try requireRank(logDt, 1, "log_dt", layout: "[H]", op: op)
    let first = x[names[0]]!
    try requireRank(first, 2, names[0], layout: "[H, N/2]", op: op)
    try requireShape(first, [logDt.shape[0], first.shape[1]], names[0], op: op)
    for name in names.dropFirst() { try requireShape(x[name]!, first.shape, name, op: op) }
}

/// `s4d_kernel`: log_dt [H], A_re, A_im, C_re, C_im [H, N/2] -> K [H, L] (ZOH, B = 1); option L.
public enum S4DKernelOp: FunctionalKernel {
    public static let name = "s4d_kernel"
    public static let inputs = ["log_dt", "A_re", "A_im", "C_re", "C_im"].map { KernelInput($0) }
    public static let outputs = ["K"]
    public static let options: [LayerOptionSpec] = [.requiredInt("L", "kernel length", min: 1, max: 1 << 24)]
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func evaluate<T: TensorScalar>(_ x: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>] {
        try requireModeShapes(x, ["A_re", "A_im", "C_re", "C_im"], op: name)
        let l = options.int("L")
        return ["K": s4dKernel(logDt: x["log_dt"]!, aRe: x["A_re"]!, aIm: x["A_im"]!, cRe: x["C_re"]!, cIm: x["C_im"]!, length: l)]
    }
}

/// `s4_dplr_kernel`: log_dt [H], Lambda, P, B, C (C-tilde) as re/im [H, N/2] -> K [H, L]; option L.
public enum S4DPLRKernelOp: FunctionalKernel {
    public static let name = "s4_dplr_kernel"
    static let complexInputs = ["Lambda_re", "Lambda_im", "P_re", "P_im", "B_re", "B_im", "C_re", "C_im"]
    public static let inputs = (["log_dt"] + complexInputs).map { KernelInput($0) }
    public static let outputs = ["K"]
    public static let options: [LayerOptionSpec] = [.requiredInt("L", "kernel length", min: 1, max: 1 << 24)]
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func evaluate<T: TensorScalar>(_ x: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>] {
        try requireModeShapes(x, complexInputs, op: name)
        let l = options.int("L")
        return ["K": s4DPLRKernel(logDt: x["log_dt"]!, lambdaRe: x["Lambda_re"]!, lambdaIm: x["Lambda_im"]!, pRe: x["P_re"]!,
                                  pIm: x["P_im"]!, bRe: x["B_re"]!, bIm: x["B_im"]!, cRe: x["C_re"]!, cIm: x["C_im"]!, length: l)]
    }
}

/// Random inputs in the S4 kernels' valid domain (Float64): log dt in [log 0.01, log 0.5], Re Lambda <= -0.1.
public enum S4KernelInputs {
    /// log_dt [H], Lambda re/im, P re/im, B re/im, C re/im [H, N/2] (S4: HiPPO-like spectrum plus noise).
    public static func dplr(channels h: Int, modes: Int, seed: UInt64) -> [Tensor<Double>] {
        var rng = RandomGenerator(seed: seed)
        let nplr = NPLRDecomposition.legS(stateSize: 2 * modes)
        let logDt = Tensor<Double>(shape: [h], data: (0..<h).map { _ in Double.log(0.01) + (Double.log(0.5) - Double.log(0.01)) * rng.uniform() })
        let lambdaRe = Tensor<Double>(shape: [h, modes], data: (0..<(h * modes)).map { _ in -0.5 - 0.3 * rng.uniform() })
        let lambdaIm = Tensor<Double>(shape: [h, modes], data: (0..<(h * modes)).map { nplr.lambda[$0 % modes].imaginary + 0.2 * rng.normal() })
        let rest = (0..<6).map { _ in Tensor<Double>.randn([h, modes], using: &rng) }
        return [logDt, lambdaRe, lambdaIm] + rest
    }

    /// log_dt [H], A re/im, C re/im [H, N/2] (S4D-Lin-like spectrum plus noise).
    public static func diagonal(channels h: Int, modes: Int, seed: UInt64) -> [Tensor<Double>] {
        var rng = RandomGenerator(seed: seed)
        let logDt = Tensor<Double>(shape: [h], data: (0..<h).map { _ in Double.log(0.01) + (Double.log(0.5) - Double.log(0.01)) * rng.uniform() })
        let aRe = Tensor<Double>(shape: [h, modes], data: (0..<(h * modes)).map { _ in -0.2 - rng.uniform() })
        let aIm = Tensor<Double>(shape: [h, modes], data: (0..<(h * modes)).map { -Double.pi * Double($0 % modes) + 0.3 * rng.normal() })
        return [logDt, aRe, aIm, Tensor.randn([h, modes], using: &rng), Tensor.randn([h, modes], using: &rng)]
    }
}

/// The S4 family's op checks, appended to `CheckCatalog.opChecks`.
public enum S4Checks {
    static func dplrKernel(_ x: [Tensor<Double>], length: Int, fast: Bool) -> Tensor<Double> {
        fast
            ? s4DPLRKernel(logDt: x[0], lambdaRe: x[1], lambdaIm: x[2], pRe: x[3], pIm: x[4], bRe: x[5], bIm: x[6], cRe: x[7], cIm: x[8], length: length)
            : referenceS4DPLRKernel(logDt: x[0], lambdaRe: x[1], lambdaIm: x[2], pRe: x[3], pIm: x[4], bRe: x[5], bIm: x[6], cRe: x[7], cIm: x[8], length: length)
    }

    static func diagonalKernel(_ x: [Tensor<Double>], length: Int, discretization: Discretization, fast: Bool) -> Tensor<Double> {
        fast
            ? s4dKernel(logDt: x[0], aRe: x[1], aIm: x[2], cRe: x[3], cIm: x[4], length: length, discretization: discretization)
            : referenceS4DKernel(logDt: x[0], aRe: x[1], aIm: x[2], cRe: x[3], cIm: x[4], length: length, discretization: discretization)
    }

    /// Finite-difference checks and fast == reference comparisons of the family's kernels and fused nodes.
    public static let opChecks: [OpCheck] = [
        gradientCheck("s4_dplr_kernel", S4KernelInputs.dplr(channels: 2, modes: 3, seed: 1)) { dplrKernel($0, length: 10, fast: true) },
        gradientCheck("s4_dplr_kernel_odd_length", S4KernelInputs.dplr(channels: 2, modes: 2, seed: 2)) { dplrKernel($0, length: 7, fast: true) },
        gradientCheck("s4d_kernel", S4KernelInputs.diagonal(channels: 2, modes: 3, seed: 3)) {
            diagonalKernel($0, length: 37, discretization: .zoh, fast: true)
        },
        gradientCheck("s4d_kernel_bilinear", S4KernelInputs.diagonal(channels: 2, modes: 3, seed: 4)) {
            diagonalKernel($0, length: 37, discretization: .bilinear, fast: true)
        },
        gradientCheck("glu", [Tensor<Double>.randn([2, 3, 8], using: &sharedGenerator)]) { $0[0].glu() },
        gradientCheck("fft_conv_bidirectional", (0..<4).map { Tensor<Double>.randn([[2, 9, 3], [3, 9], [3, 9], [3]][$0], using: &sharedGenerator) }) {
            fftConvolution($0[0], kernel: $0[1], anticausalKernel: $0[2], skip: $0[3])
        },
        formCheck("s4_dplr_kernel==cauchy_reference", S4KernelInputs.dplr(channels: 3, modes: 4, seed: 5)) { dplrKernel($0, length: 16, fast: $1) },
        formCheck("s4_dplr_kernel==cauchy_reference_odd", S4KernelInputs.dplr(channels: 2, modes: 3, seed: 6)) { dplrKernel($0, length: 9, fast: $1) },
        formCheck("s4d_kernel==explicit_sum", S4KernelInputs.diagonal(channels: 3, modes: 4, seed: 7)) {
            diagonalKernel($0, length: 40, discretization: .zoh, fast: $1)
        },
        formCheck("s4d_kernel==explicit_sum_bilinear", S4KernelInputs.diagonal(channels: 2, modes: 3, seed: 8)) {
            diagonalKernel($0, length: 23, discretization: .bilinear, fast: $1)
        },
        gradientCheck("gelu_fast", [Tensor<Double>.randn([4, 7], std: 2, using: &sharedGenerator)]) { $0[0].fastGELU() },
        gradientCheck("complex_parts", [Tensor<Double>.randn([2, 3, 5, 2], using: &sharedGenerator)]) {
            let (re, im) = complexParts($0[0], shape: [2, 5], offset: 4)  // the second direction of a [2, ...] tensor
            return Tensor.concatenate([re.square(), im], axis: 1)
        },
        gradientCheck("glu_linear", [[2, 3, 4], [6, 4], [6]].map { Tensor<Double>.randn($0, using: &sharedGenerator) }) {
            gluLinear($0[0], weight: $0[1], bias: $0[2])
        },
        formCheck("gelu_fast==gelu", [Tensor<Double>.randn([3, 11], std: 2, using: &sharedGenerator)]) { $1 ? $0[0].fastGELU() : $0[0].gelu() },
        formCheck("glu_linear==reference", [[2, 5, 4], [6, 4], [6]].map { Tensor<Double>.randn($0, using: &sharedGenerator) }) {
            $1 ? gluLinear($0[0], weight: $0[1], bias: $0[2]) : referenceGLU($0[0].matmul($0[1], transposeOther: true) + $0[2])
        },
        gradientCheck("fft_conv_gelu", [[2, 7, 3], [3, 7], [3]].map { Tensor<Double>.randn($0, using: &sharedGenerator) }) {
            fftConvolutionGELU($0[0], kernel: $0[1], skip: $0[2])
        },
        gradientCheck("glu_linear_channel_major", [[2, 4, 5], [6, 4], [6]].map { Tensor<Double>.randn($0, using: &sharedGenerator) }) {
            gluLinearChannelMajor($0[0], weight: $0[1], bias: $0[2])
        },
        formCheck("fft_conv_gelu==reference", [[2, 9, 19], [19, 9], [19, 9], [19]].map { Tensor<Double>.randn($0, using: &sharedGenerator) }) {
            $1 ? fftConvolutionGELU($0[0], kernel: $0[1], anticausalKernel: $0[2], skip: $0[3])
                : fftConvolution($0[0], kernel: $0[1], anticausalKernel: $0[2], skip: $0[3]).gelu().permuted([0, 2, 1])
        },
        formCheck("glu_linear_channel_major==reference", [[3, 4, 7], [6, 4], [6]].map { Tensor<Double>.randn($0, using: &sharedGenerator) }) {
            $1 ? gluLinearChannelMajor($0[0], weight: $0[1], bias: $0[2]) : referenceGLU($0[0].permuted([0, 2, 1]).matmul($0[1], transposeOther: true) + $0[2])
        },
        formCheck("glu==reference", [Tensor<Double>.randn([3, 5, 6], using: &sharedGenerator)]) { $1 ? $0[0].glu() : referenceGLU($0[0]) },
        formCheck("fft_conv==direct_across_channel_blocks", [[2, 11, 19], [19, 11], [19]].map { Tensor<Double>.randn($0, using: &sharedGenerator) }) {
            $1 ? fftConvolution($0[0], kernel: $0[1], skip: $0[2]) : referenceCausalConvolution($0[0], kernel: $0[1], skip: $0[2])
        },
        formCheck("fft_conv==direct_bidirectional_across_blocks", [[1, 6, 17], [17, 6], [17, 6]].map { Tensor<Double>.randn($0, using: &sharedGenerator) }) {
            $1 ? fftConvolution($0[0], kernel: $0[1], anticausalKernel: $0[2])
                : referenceBidirectionalConvolution($0[0], kernel: $0[1], anticausalKernel: $0[2], skip: nil)
        },
        formCheck("fft_conv==direct_bidirectional", (0..<4).map { Tensor<Double>.randn([[2, 13, 3], [3, 13], [3, 13], [3]][$0], using: &sharedGenerator) }) {
            $1 ? fftConvolution($0[0], kernel: $0[1], anticausalKernel: $0[2], skip: $0[3])
                : referenceBidirectionalConvolution($0[0], kernel: $0[1], anticausalKernel: $0[2], skip: $0[3])
        },
    ]

    /// A Float64 finite-difference check of `f` over fixed inputs (every input is a leaf).
    static func gradientCheck(_ name: String, _ inputs: [Tensor<Double>], _ f: @escaping @Sendable ([Tensor<Double>]) -> Tensor<Double>) -> OpCheck {
        let values = inputs.map { ($0.shape, $0.data) }
        return OpCheck(name) { quick in
            let x = values.map { Tensor<Double>(shape: $0.0, data: $0.1) }
            return GradientCheck.check(name, leaves: x.enumerated().map { ("x\($0.offset)", $0.element) },
                                       maxProbes: quick ? 12 : 64) { [f(x)] }
        }
    }

    /// Fast form == reference form: outputs and every input gradient under a random cotangent (Float64).
    static func formCheck(
        _ name: String, _ inputs: [Tensor<Double>], tolerance: Double = 1e-10,
        _ f: @escaping @Sendable ([Tensor<Double>], _ fast: Bool) -> Tensor<Double>
    ) -> OpCheck {
        let values = inputs.map { ($0.shape, $0.data) }
        return OpCheck(name) { _ in
            var outputs: [[Double]] = [], grads: [[[Double]]] = []
            var cotangent: [Double]? = nil
            for fast in [true, false] {
                let x = values.map { Tensor<Double>(shape: $0.0, data: $0.1, requiresGrad: true) }
                let y = f(x, fast)
                if cotangent == nil {
                    var rng = RandomGenerator(seed: 77)
                    cotangent = Tensor<Double>.randn(y.shape, using: &rng).data
                }
                y.backward(seed: cotangent)
                outputs.append(y.data)
                grads.append(x.map { $0.grad ?? [] })
            }
            var worst = GradientCheck.relativeError(outputs[0], outputs[1]), at = "output"
            for i in 0..<values.count {
                let e = GradientCheck.relativeError(grads[0][i], grads[1][i])
                if e > worst { worst = e; at = "gradient of input \(i)" }
            }
            return CheckResult(name: name, passed: worst <= tolerance, error: worst, tolerance: tolerance,
                               detail: "fast vs reference; worst: \(at)")
        }
    }
}

/// Seeded inputs for the checks above (evaluated once, when the catalogue is built).
nonisolated(unsafe) private var sharedGenerator = RandomGenerator(seed: 2024)
