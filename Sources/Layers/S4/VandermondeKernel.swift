import ComplexModule
import Foundation
import Tensors

// The `s4d_kernel` (KERNELS.md): S4D's convolution kernel, a Vandermonde product (Gu et al., "On the
// Parameterization and Initialization of Diagonal State Space Models", NeurIPS 2022, section 3; REFERENCE.md
// section 1):
//   K_l = 2 Re sum_n coef_n z_n^l,  l < L,
//   ZOH:       z = exp(dt A),                    coef = C (exp(dt A) - 1) / A        (B = 1)
//   bilinear:  z = (1 + dt A/2) / (1 - dt A/2),  coef = C dt / (1 - dt A/2).
// Fast form: write l = R j + r (R about sqrt L). Then z^l = z^(R j) z^r and, per channel,
//   K[j, r] = sum_n 2 Re(coef_n z_n^(R j)) Re(z_n^r) - 2 Im(coef_n z_n^(R j)) Im(z_n^r)
// is one GEMM [J x N] x [N x R]; the power tables are built by repeated multiplication in Float64 (error ~ (R + J)
// ulps of Float64), so no transcendental function is evaluated per (l, n).
// Backward: with S0_n = sum_l dK_l z_n^l and S1_n = sum_l l dK_l z_n^l (the same split: one GEMM for
// [dK; r dK] x [Re z^r, Im z^r]^T, then a sum over j with z^(R j)),
//   gcoef = 2 conj(S0),  g(log z) = 2 conj(coef S1),
// then through the discretisation to dt (hence log dt), A and C.

/// The block length R of the split l = R j + r: the power of two nearest above sqrt(L).
private func vandermondeBlock(_ length: Int) -> Int {
    var r = 1
    while r * r < length { r *= 2 }
    return r
}

/// Per-mode discretisation of one diagonal SSM mode in Float64: Abar = z, Bbar, and coef = C Bbar.
struct DiagonalMode {
    var z: Complex64
    var bBar: Complex64
    var coef: Complex64

    init(dt: Double, a: Complex64, c: Complex64, discretization: Discretization) {
        let w = Complex64(dt) * a
        switch discretization {
        case .zoh:
            z = Complex64.exp(w)
            bBar = Complex64.expMinusOne(w) / a
        case .bilinear:
            let q = Complex64.one - w * Complex64(0.5)
            z = (Complex64.one + w * Complex64(0.5)) / q
            bBar = Complex64(dt) / q
        }
        coef = c * bBar
    }
}

/// S4D's kernel K [H, L] = 2 Re sum_n coef_n z_n^l from log dt [H], A = A_re + i A_im and C [H, N/2], with ZOH
/// (the KERNELS.md contract, B = 1) or bilinear discretisation. One fused tape node with a hand-written backward.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func s4dKernel<T: TensorScalar>(
    logDt: Tensor<T>, aRe: Tensor<T>, aIm: Tensor<T>, cRe: Tensor<T>, cIm: Tensor<T>, length: Int,
    discretization: Discretization = .zoh
) -> Tensor<T> {
    let channels = logDt.count
    precondition(logDt.shape == [channels] && aRe.rank == 2 && aRe.shape[0] == channels,
                 "s4d_kernel: log_dt [H] and A [H, N/2], got \(logDt.shape) and \(aRe.shape)")
    for t in [aIm, cRe, cIm] {
        precondition(t.shape == aRe.shape, "s4d_kernel: A_im, C_re, C_im must be [H, N/2] = \(aRe.shape), got \(t.shape)")
    }
    precondition(length >= 1, "s4d_kernel: L must be >= 1, got \(length)")
    let modes = aRe.shape[1]
    let block = vandermondeBlock(length), rows = (length + block - 1) / block
    let (ld, ar, ai, cr, ci) = (logDt.data, aRe.data, aIm.data, cRe.data, cIm.data)
    // Discretised modes [H, N/2] (Float64), kept for the backward pass.
    var discrete = [DiagonalMode](repeating: DiagonalMode(dt: 1, a: .one, c: .zero, discretization: .zoh), count: channels * modes)
    var out = uninitializedArray(T.self, count: channels * length)
    out.withUnsafeMutableBufferPointer { op in
        let outBase = op.baseAddress!
        discrete.withUnsafeMutableBufferPointer { dp in
            Parallel.forEachRange(channels) { range in
                for h in range {  // discretise this channel's modes (Float64)
                    let dt = Double.exp(Double(ld[h]))
                    for n in 0..<modes {
                        let j = h * modes + n
                        dp[j] = DiagonalMode(dt: dt, a: Complex64(Double(ar[j]), Double(ai[j])),
                                             c: Complex64(Double(cr[j]), Double(ci[j])), discretization: discretization)
                    }
                }
                let powers = UnsafeMutablePointer<T>.allocate(capacity: 2 * modes * block)    // [Re z^r; Im z^r]  [N, R]
                let weights = UnsafeMutablePointer<T>.allocate(capacity: rows * 2 * modes)    // [2 coef z^(Rj)]   [J, N]
                let product = UnsafeMutablePointer<T>.allocate(capacity: rows * block)        // K[j, r]           [J, R]
                defer { powers.deallocate(); weights.deallocate(); product.deallocate() }
                for h in range {
                    let m = dp.baseAddress! + h * modes
                    fillPowerTable(m, modes: modes, block: block, into: powers)
                    for n in 0..<modes {
                        let stepR = power(m[n].z, block)
                        var x = m[n].coef * Complex64(2)
                        for j in 0..<rows {
                            weights[j * 2 * modes + n] = T(x.real)
                            weights[j * 2 * modes + modes + n] = T(-x.imaginary)
                            x = x * stepR
                        }
                    }
                    T.gemm(transA: false, transB: false, m: rows, n: block, k: 2 * modes, alpha: 1, a: weights, lda: 2 * modes,
                           b: powers, ldb: block, beta: 0, c: product, ldc: block)
                    (outBase + h * length).update(from: product, count: length)
                }
            }
        }
    }
    let result = Tensor(shape: [channels, length], data: out)
    let inputs = [logDt, aRe, aIm, cRe, cIm]
    Tape.record("s4d_kernel", inputs: inputs, output: result) { dK in
        vandermondeBackward(dK, discrete: discrete, logDt: ld, aRe: ar, aIm: ai, cRe: cr, cIm: ci, modes: modes,
                            length: length, discretization: discretization)
    }
    return result
}

/// z^p by repeated squaring (Float64).
private func power(_ z: Complex64, _ p: Int) -> Complex64 {
    var result = Complex64.one, base = z, e = p
    while e > 0 {
        if e & 1 == 1 { result = result * base }
        base = base * base
        e >>= 1
    }
    return result
}

/// Rows n and N/2 + n of `table` [N, R]: Re z_n^r and Im z_n^r for r < R (repeated multiplication in Float64).
@inline(__always)
private func fillPowerTable<T: TensorScalar>(_ m: UnsafePointer<DiagonalMode>, modes: Int, block: Int, into table: UnsafeMutablePointer<T>) {
    for n in 0..<modes {
        var x = Complex64.one
        let z = m[n].z
        for r in 0..<block {
            table[n * block + r] = T(x.real)
            table[(modes + n) * block + r] = T(x.imaginary)
            x = x * z
        }
    }
}

/// The backward pass of `s4dKernel`: gradients to log dt, A_re, A_im, C_re, C_im.
@_specialize(where T == Float)
@_specialize(where T == Double)
private func vandermondeBackward<T: TensorScalar>(
    _ dK: [T], discrete: [DiagonalMode], logDt: [T], aRe: [T], aIm: [T], cRe: [T], cIm: [T], modes: Int, length: Int,
    discretization: Discretization
) -> [[T]?] {
    let channels = logDt.count
    let block = vandermondeBlock(length), rows = (length + block - 1) / block
    var gradLogDt = [T](repeating: 0, count: channels)
    var gradA = [Complex64](repeating: .zero, count: channels * modes), gradC = gradA
    gradLogDt.withUnsafeMutableBufferPointer { gdt in
        gradA.withUnsafeMutableBufferPointer { gap in
            gradC.withUnsafeMutableBufferPointer { gcp in
                discrete.withUnsafeBufferPointer { dp in
                    dK.withUnsafeBufferPointer { dkp in
                        Parallel.forEachRange(channels) { range in
                            let powers = UnsafeMutablePointer<T>.allocate(capacity: 2 * modes * block)
                            let weighted = UnsafeMutablePointer<T>.allocate(capacity: 2 * rows * block)  // [dK; r dK]  [2J, R]
                            let sums = UnsafeMutablePointer<T>.allocate(capacity: 2 * rows * 2 * modes)   // [2J, N]
                            defer { powers.deallocate(); weighted.deallocate(); sums.deallocate() }
                            for h in range {
                                let m = dp.baseAddress! + h * modes
                                fillPowerTable(m, modes: modes, block: block, into: powers)
                                weighted.initialize(repeating: 0, count: 2 * rows * block)
                                for j in 0..<rows {  // [dK; r dK] with l = R j + r
                                    for r in 0..<min(block, length - j * block) {
                                        let g = dkp[h * length + j * block + r]
                                        weighted[j * block + r] = g
                                        weighted[(rows + j) * block + r] = g * T(r)
                                    }
                                }
                                T.gemm(transA: false, transB: true, m: 2 * rows, n: 2 * modes, k: block, alpha: 1, a: weighted, lda: block,
                                       b: powers, ldb: block, beta: 0, c: sums, ldc: 2 * modes)
                                var gradDt = 0.0
                                let dt = Double.exp(Double(logDt[h]))
                                for n in 0..<modes {
                                    let z = m[n].z, stepR = power(z, block)
                                    var zj = Complex64.one
                                    var s0 = Complex64.zero, s1 = Complex64.zero
                                    for j in 0..<rows {
                                        let m0 = Complex64(Double(sums[j * 2 * modes + n]), Double(sums[j * 2 * modes + modes + n]))
                                        let m1 = Complex64(Double(sums[(rows + j) * 2 * modes + n]), Double(sums[(rows + j) * 2 * modes + modes + n]))
                                        s0 += zj * m0
                                        s1 += zj * (Complex64(Double(block * j)) * m0 + m1)
                                        zj = zj * stepR
                                    }
                                    let gradCoef = Complex64(2) * s0.conjugate
                                    let gradLogZ = Complex64(2) * (m[n].coef * s1).conjugate
                                    let j = h * modes + n
                                    let a = Complex64(Double(aRe[j]), Double(aIm[j])), c = Complex64(Double(cRe[j]), Double(cIm[j]))
                                    let (ga, gc, gdt) = discretizationAdjoint(
                                        dt: dt, a: a, c: c, gradCoef: gradCoef, gradLogZ: gradLogZ, discretization: discretization)
                                    gap[j] = ga
                                    gcp[j] = gc
                                    gradDt += gdt
                                }
                                gdt[h] = T(gradDt * dt)
                            }
                        }
                    }
                }
            }
        }
    }
    return [gradLogDt, gradA.map { T($0.real) }, gradA.map { T($0.imaginary) }, gradC.map { T($0.real) }, gradC.map { T($0.imaginary) }]
}

/// Gradients of A, C and dt from those of coef and log z (complex gradients g = dL/dRe + i dL/dIm).
/// ZOH: w = dt A, z = e^w, coef = C (e^w - 1)/A. Bilinear: v = dt A, q = 1 - v/2, z = (1 + v/2)/q, coef = C dt/q,
/// d log z / dv = 1/(1 - v^2/4).
private func discretizationAdjoint(
    dt: Double, a: Complex64, c: Complex64, gradCoef: Complex64, gradLogZ: Complex64, discretization: Discretization
) -> (Complex64, Complex64, Double) {
    let w = Complex64(dt) * a
    switch discretization {
    case .zoh:
        let e = Complex64.exp(w), em1 = Complex64.expMinusOne(w)
        let gradC = (em1 / a).conjugate * gradCoef
        let gradW = gradLogZ + (c * e / a).conjugate * gradCoef
        let gradA = (-(c * em1) / (a * a)).conjugate * gradCoef + Complex64(dt) * gradW
        let gradDt = (a.conjugate * gradW).real
        return (gradA, gradC, gradDt)
    case .bilinear:
        let q = Complex64.one - w * Complex64(0.5)
        let gradC = (Complex64(dt) / q).conjugate * gradCoef
        let gradV = (Complex64.one / (Complex64.one - w * w * Complex64(0.25))).conjugate * gradLogZ
            + (c * Complex64(dt) / (Complex64(2) * q * q)).conjugate * gradCoef
        let gradDt = ((c / q).conjugate * gradCoef).real + (a.conjugate * gradV).real
        return (Complex64(dt) * gradV, gradC, gradDt)
    }
}
