import CKernels
import Foundation
import Tensors

// The `s4_dplr_kernel` (KERNELS.md): S4's convolution kernel from its DPLR parameters by the Cauchy kernel with the
// rank-1 Woodbury correction, evaluated at the roots of unity, then one inverse real FFT (Gu et al., "Efficiently
// Modeling Long Sequences with Structured State Spaces", ICLR 2022, algorithm 1; REFERENCE.md section 1).
//
// With w_k = exp(-2 pi i k / L), the bilinear discretisation and C-tilde, the truncated generating function is
//   Khat(w) = 2/(1+w) [r00 - r01 r10 / (1 + r11)],  r_ij(z) = sum over both conjugate halves of a_n b_n dt/(z - dt Lambda_n),
//   z = 2 (1-w)/(1+w),  (a, b) in {(C~, B), (C~, P), (P^*, B), (P^*, P)}.
// Multiplying numerators and denominators by (1+w)/2 removes the pole at w = -1 (k = L/2):
//   r_ij = beta R_ij,  R_ij = sum_n c_ij,n g_n + conj(c_ij,n) g'_n,  g_n = 1/(alpha - beta mu_n),  g'_n = 1/(alpha - beta conj mu_n),
//   alpha = 1 - w,  beta = (1 + w)/2,  mu_n = dt Lambda_n,  c_ij,n = dt a_n b_n,
//   Khat = R00 - beta R01 R10 / (1 + beta R11),   K = irfft(Khat, n = L).
// Cost O(N L) per channel: the loop over modes n sits outside a vectorised loop over a block of nodes k.
//
// Backward, with complex gradients gz = dLoss/dRe z + i dLoss/dIm z (for w = f(z) holomorphic: gz = conj(f'(z)) gw):
//   gKhat_k = (c_k / L) rfft(dK)_k  (c_k = 1 at k = 0 and k = L/2, else 2: the adjoint of irfft),
//   gR00 = gK,  gR01 = -conj(t R10) gK,  gR10 = -conj(t R01) gK,  gR11 = conj(t^2 R01 R10) gK,  t = beta / (1 + beta R11),
//   gc_ij,n = sum_k conj(g_n) gR_ij + g'_n conj(gR_ij),
//   gmu_n = sum_k conj(beta g_n^2) G_n + beta g'_n^2 conj(G'_n),  G_n = sum_ij conj(c_ij,n) gR_ij,  G'_n = sum_ij c_ij,n gR_ij,
// then through c_ij = dt a b and mu = dt Lambda to C~, B, P, Lambda and log dt.

/// Nodes of the truncated generating function at the L-th roots of unity, k = 0...L/2:
/// alpha_k = 1 - w_k = 2 sin^2(theta/2) + i sin(theta), beta_k = (1 + w_k)/2 = cos^2(theta/2) - i sin(theta)/2,
/// theta = 2 pi k / L (computed in Float64, without cancellation).
struct RootOfUnityNodes<T: TensorScalar> {
    let alphaRe: [T], alphaIm: [T], betaRe: [T], betaIm: [T]

    init(length: Int) {
        let bins = length / 2 + 1
        var ar = [T](repeating: 0, count: bins), ai = ar, br = ar, bi = ar
        for k in 0..<bins {
            let theta = 2 * Double.pi * Double(k) / Double(length)
            let s = Foundation.sin(theta / 2), c = Foundation.cos(theta / 2), sn = Foundation.sin(theta)
            ar[k] = T(2 * s * s)
            ai[k] = T(sn)
            br[k] = T(c * c)
            bi[k] = T(-sn / 2)
        }
        (alphaRe, alphaIm, betaRe, betaIm) = (ar, ai, br, bi)
    }
}

/// The per-mode coefficients of one channel: mu = dt Lambda and c_ij = dt a b for the four Cauchy sums,
/// laid out as 9 rows of N/2 (mu re, mu im, c00 re, c00 im, c01 re, c01 im, c10 re, c10 im, c11).
@inline(__always)
private func dplrCoefficients<T: TensorScalar>(
    dt: T, row: Int, modes: Int, _ lr: UnsafePointer<T>, _ li: UnsafePointer<T>, _ pr: UnsafePointer<T>,
    _ pi: UnsafePointer<T>, _ br: UnsafePointer<T>, _ bi: UnsafePointer<T>, _ cr: UnsafePointer<T>,
    _ ci: UnsafePointer<T>, into out: UnsafeMutablePointer<T>
) {
    for n in 0..<modes {
        let j = row + n
        out[n] = dt * lr[j]
        out[modes + n] = dt * li[j]
        out[2 * modes + n] = dt * (cr[j] * br[j] - ci[j] * bi[j])  // C~ B
        out[3 * modes + n] = dt * (cr[j] * bi[j] + ci[j] * br[j])
        out[4 * modes + n] = dt * (cr[j] * pr[j] - ci[j] * pi[j])  // C~ P
        out[5 * modes + n] = dt * (cr[j] * pi[j] + ci[j] * pr[j])
        out[6 * modes + n] = dt * (pr[j] * br[j] + pi[j] * bi[j])  // conj(P) B
        out[7 * modes + n] = dt * (pr[j] * bi[j] - pi[j] * br[j])
        out[8 * modes + n] = dt * (pr[j] * pr[j] + pi[j] * pi[j])  // |P|^2
    }
}

/// Nodes per block of the forward pass (the accumulators of one block stay in L1).
private let nodeBlock = 128

/// S4's kernel K [H, L] from log dt [H] and Lambda, P, B, C-tilde [H, N/2] (complex as re/im pairs): the Cauchy
/// kernel with the Woodbury correction at the roots of unity, then an inverse real FFT. One fused tape node with a
/// hand-written backward (gradients to every input). O(N L) per channel, threaded over channels.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func s4DPLRKernel<T: TensorScalar>(
    logDt: Tensor<T>, lambdaRe: Tensor<T>, lambdaIm: Tensor<T>, pRe: Tensor<T>, pIm: Tensor<T>,
    bRe: Tensor<T>, bIm: Tensor<T>, cRe: Tensor<T>, cIm: Tensor<T>, length: Int
) -> Tensor<T> {
    let channels = logDt.count
    precondition(logDt.shape == [channels] && lambdaRe.rank == 2 && lambdaRe.shape[0] == channels,
                 "s4_dplr_kernel: log_dt [H] and Lambda [H, N/2], got \(logDt.shape) and \(lambdaRe.shape)")
    for t in [lambdaIm, pRe, pIm, bRe, bIm, cRe, cIm] {
        precondition(t.shape == lambdaRe.shape, "s4_dplr_kernel: every complex input must be [H, N/2] = \(lambdaRe.shape), got \(t.shape)")
    }
    precondition(length >= 1, "s4_dplr_kernel: L must be >= 1, got \(length)")
    let modes = lambdaRe.shape[1], bins = length / 2 + 1
    let nodes = RootOfUnityNodes<T>(length: length)
    let inputs = [logDt, lambdaRe, lambdaIm, pRe, pIm, bRe, bIm, cRe, cIm]
    let data = inputs.map(\.data)
    // The four Cauchy sums per node, [H, 8, bins] (R00, R01, R10, R11 as re/im rows): kept for the backward pass.
    var sums = [T](repeating: 0, count: channels * 8 * bins)
    let spectrum = AlignedBuffer<T>(count: channels * bins * 2)  // Khat [H, bins] interleaved
    sums.withUnsafeMutableBufferPointer { sp in
        let sumsBase = sp.baseAddress!
        withPointers(data) { p in
            Parallel.forEachRange(channels) { range in
                let coefficients = UnsafeMutablePointer<T>.allocate(capacity: 9 * modes)
                defer { coefficients.deallocate() }
                for h in range {
                    let dt = T.exp(p[0][h])
                    dplrCoefficients(dt: dt, row: h * modes, modes: modes, p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], into: coefficients)
                    let r = sumsBase + h * 8 * bins
                    for k0 in stride(from: 0, to: bins, by: nodeBlock) {
                        cauchySums(coefficients, modes: modes, nodes: nodes, from: k0, count: min(nodeBlock, bins - k0), into: r, stride: bins)
                    }
                    let out = spectrum.pointer + h * bins * 2
                    for k in 0..<bins {  // Khat = R00 - beta R01 R10 / (1 + beta R11)
                        let (br, bi) = (nodes.betaRe[k], nodes.betaIm[k])
                        let (qr, qi) = (1 + br * r[6 * bins + k] - bi * r[7 * bins + k], br * r[7 * bins + k] + bi * r[6 * bins + k])
                        let (xr, xi) = complexMultiply(r[2 * bins + k], r[3 * bins + k], r[4 * bins + k], r[5 * bins + k])
                        let (yr, yi) = complexMultiply(br, bi, xr, xi)
                        let (zr, zi) = complexDivide(yr, yi, qr, qi)
                        out[2 * k] = r[k] - zr
                        out[2 * k + 1] = r[bins + k] - zi
                    }
                }
            }
        }
    }
    let real = AlignedBuffer<T>(count: channels * length)
    T.fftPlans.inverse(n: length, howMany: channels, input: spectrum.pointer, output: real.pointer)
    let scale = 1 / T(length)
    let kernel = (0..<(channels * length)).map { real.pointer[$0] * scale }
    let result = Tensor(shape: [channels, length], data: kernel)
    Tape.record("s4_dplr_kernel", inputs: inputs, output: result) { dK in
        cauchyKernelBackward(dK, data: data, sums: sums, nodes: nodes, channels: channels, modes: modes, length: length)
    }
    return result
}

/// Adds the four Cauchy sums over all modes for nodes k0..<k0+count into rows of `r` (row stride `stride`).
/// The inner loop runs over nodes (contiguous, vectorised); every mode adds c g + conj(c) g' per node.
@inline(__always)
private func cauchySums<T: TensorScalar>(
    _ c: UnsafePointer<T>, modes: Int, nodes: RootOfUnityNodes<T>, from k0: Int, count: Int,
    into r: UnsafeMutablePointer<T>, stride: Int
) {
    if T.self == Float.self {  // the CKernels form (instruction set chosen at run time)
        let f = { (p: UnsafePointer<T>) in UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
        nodes.alphaRe.withUnsafeBufferPointer { arp in nodes.alphaIm.withUnsafeBufferPointer { aip in
        nodes.betaRe.withUnsafeBufferPointer { brp in nodes.betaIm.withUnsafeBufferPointer { bip in
            sl_cauchy_sums_f32(f(c), modes, f(arp.baseAddress! + k0), f(aip.baseAddress! + k0), f(brp.baseAddress! + k0),
                               f(bip.baseAddress! + k0), count, UnsafeMutableRawPointer(r + k0).assumingMemoryBound(to: Float.self), stride)
        }}}}
        return
    }
    for row in 0..<8 { (r + row * stride + k0).initialize(repeating: 0, count: count) }
    nodes.alphaRe.withUnsafeBufferPointer { arp in
    nodes.alphaIm.withUnsafeBufferPointer { aip in
    nodes.betaRe.withUnsafeBufferPointer { brp in
    nodes.betaIm.withUnsafeBufferPointer { bip in
        let (ar, ai, br, bi) = (arp.baseAddress! + k0, aip.baseAddress! + k0, brp.baseAddress! + k0, bip.baseAddress! + k0)
        let (r00r, r00i, r01r, r01i) = (r + k0, r + stride + k0, r + 2 * stride + k0, r + 3 * stride + k0)
        let (r10r, r10i, r11r, r11i) = (r + 4 * stride + k0, r + 5 * stride + k0, r + 6 * stride + k0, r + 7 * stride + k0)
        for n in 0..<modes {
            let (mr, mi) = (c[n], c[modes + n])
            let (c00r, c00i, c01r, c01i) = (c[2 * modes + n], c[3 * modes + n], c[4 * modes + n], c[5 * modes + n])
            let (c10r, c10i, c11) = (c[6 * modes + n], c[7 * modes + n], c[8 * modes + n])
            for k in 0..<count {
                // d = alpha - beta mu, e = alpha - beta conj(mu); g = 1/d, g' = 1/e.
                let dr = ar[k] - (br[k] * mr - bi[k] * mi), di = ai[k] - (br[k] * mi + bi[k] * mr)
                let er = ar[k] - (br[k] * mr + bi[k] * mi), ei = ai[k] - (bi[k] * mr - br[k] * mi)
                let dn = dr * dr + di * di, en = er * er + ei * ei
                let inverse = 1 / (dn * en)
                let (sd, se) = (en * inverse, dn * inverse)
                let (gr, gi, hr, hi) = (dr * sd, -di * sd, er * se, -ei * se)
                let (sr, si, xr, xi) = (gr + hr, gi + hi, gr - hr, gi - hi)  // g + g', g - g'
                // c g + conj(c) g' = (cr S_r - ci X_i) + i (cr S_i + ci X_r)
                r00r[k] += c00r * sr - c00i * xi
                r00i[k] += c00r * si + c00i * xr
                r01r[k] += c01r * sr - c01i * xi
                r01i[k] += c01r * si + c01i * xr
                r10r[k] += c10r * sr - c10i * xi
                r10i[k] += c10r * si + c10i * xr
                r11r[k] += c11 * sr
                r11i[k] += c11 * si
            }
        }
    }}}}
}

/// The backward pass of `s4DPLRKernel`: gradients to log dt, Lambda, P, B, C-tilde (see the file header).
@_specialize(where T == Float)
@_specialize(where T == Double)
private func cauchyKernelBackward<T: TensorScalar>(
    _ dK: [T], data: [[T]], sums: [T], nodes: RootOfUnityNodes<T>, channels: Int, modes: Int, length: Int
) -> [[T]?] {
    let bins = length / 2 + 1
    let real = AlignedBuffer<T>(count: channels * length)
    for i in 0..<dK.count { real.pointer[i] = dK[i] }
    let spectrum = AlignedBuffer<T>(count: channels * bins * 2)
    T.fftPlans.forward(n: length, howMany: channels, input: real.pointer, output: spectrum.pointer)  // rfft(dK)
    let size = channels * modes
    var grads = [T](repeating: 0, count: 8 * size)  // Lambda re/im, P re/im, B re/im, C re/im, each [H, N/2]
    var gradLogDt = [T](repeating: 0, count: channels)
    grads.withUnsafeMutableBufferPointer { gp in
        let g = (0..<8).map { gp.baseAddress! + $0 * size }
        gradLogDt.withUnsafeMutableBufferPointer { gdt in
            withPointers(data) { p in
                sums.withUnsafeBufferPointer { sp in
                    Parallel.forEachRange(channels) { range in
                        let coefficients = UnsafeMutablePointer<T>.allocate(capacity: 9 * modes)
                        let sumGrads = UnsafeMutablePointer<T>.allocate(capacity: 8 * bins)
                        let acc = UnsafeMutablePointer<T>.allocate(capacity: 9 * modes)
                        defer { coefficients.deallocate(); sumGrads.deallocate(); acc.deallocate() }
                        for h in range {
                            let dt = T.exp(p[0][h])
                            dplrCoefficients(dt: dt, row: h * modes, modes: modes, p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], into: coefficients)
                            sumGradients(spectrum.pointer + h * bins * 2, sums: sp.baseAddress! + h * 8 * bins, nodes: nodes,
                                         length: length, into: sumGrads)
                            acc.initialize(repeating: 0, count: 9 * modes)
                            for k in 0..<bins {
                                cauchyAdjoint(coefficients, modes: modes, nodes: nodes, node: k, sumGrads: sumGrads, bins: bins, into: acc)
                            }
                            gdt[h] = chainToParameters(
                                dt: dt, row: h * modes, modes: modes, acc: acc, p: p, into: g)
                        }
                    }
                }
            }
        }
    }
    return [gradLogDt] + (0..<8).map { Array(grads[($0 * size)..<(($0 + 1) * size)]) }
}

/// gR_ij at every node of one channel from gKhat = (c_k/L) rfft(dK)_k, as 8 rows of `bins` (see the file header).
@inline(__always)
private func sumGradients<T: TensorScalar>(
    _ spectrum: UnsafePointer<T>, sums r: UnsafePointer<T>, nodes: RootOfUnityNodes<T>, length: Int,
    into out: UnsafeMutablePointer<T>
) {
    let bins = length / 2 + 1
    for k in 0..<bins {
        let weight = (k == 0 || 2 * k == length ? 1 : 2) / T(length)
        let (gr, gi) = (weight * spectrum[2 * k], weight * spectrum[2 * k + 1])
        let (br, bi) = (nodes.betaRe[k], nodes.betaIm[k])
        let (qr, qi) = (1 + br * r[6 * bins + k] - bi * r[7 * bins + k], br * r[7 * bins + k] + bi * r[6 * bins + k])
        let (tr, ti) = complexDivide(br, bi, qr, qi)  // t = beta / (1 + beta R11)
        let (ar, ai) = complexMultiply(tr, ti, r[4 * bins + k], r[5 * bins + k])  // t R10
        let (cr, ci) = complexMultiply(tr, ti, r[2 * bins + k], r[3 * bins + k])  // t R01
        let (er, ei) = complexMultiply(ar, ai, cr, ci)  // t^2 R01 R10
        out[k] = gr
        out[bins + k] = gi
        (out[2 * bins + k], out[3 * bins + k]) = complexMultiply(-ar, ai, gr, gi)  // -conj(t R10) gK
        (out[4 * bins + k], out[5 * bins + k]) = complexMultiply(-cr, ci, gr, gi)  // -conj(t R01) gK
        (out[6 * bins + k], out[7 * bins + k]) = complexMultiply(er, -ei, gr, gi)  // conj(t^2 R01 R10) gK
    }
}

/// Adds node k's contribution to the per-mode accumulators: gc_ij (7 rows: 00, 01, 10 re/im and Re gc11) and
/// gmu (2 rows). The loop over modes is contiguous and vectorised.
@inline(__always)
private func cauchyAdjoint<T: TensorScalar>(
    _ c: UnsafePointer<T>, modes: Int, nodes: RootOfUnityNodes<T>, node k: Int, sumGrads s: UnsafePointer<T>,
    bins: Int, into acc: UnsafeMutablePointer<T>
) {
    if T.self == Float.self {  // the CKernels form (instruction set chosen at run time)
        let f = { (x: T) in unsafeBitCast(x, to: Float.self) }
        sl_cauchy_adjoint_f32(UnsafeRawPointer(c).assumingMemoryBound(to: Float.self), modes, f(nodes.alphaRe[k]),
                              f(nodes.alphaIm[k]), f(nodes.betaRe[k]), f(nodes.betaIm[k]),
                              UnsafeRawPointer(s + k).assumingMemoryBound(to: Float.self), bins,
                              UnsafeMutableRawPointer(acc).assumingMemoryBound(to: Float.self))
        return
    }
    let (ar, ai, br, bi) = (nodes.alphaRe[k], nodes.alphaIm[k], nodes.betaRe[k], nodes.betaIm[k])
    let (g00r, g00i, g01r, g01i) = (s[k], s[bins + k], s[2 * bins + k], s[3 * bins + k])
    let (g10r, g10i, g11r, g11i) = (s[4 * bins + k], s[5 * bins + k], s[6 * bins + k], s[7 * bins + k])
    let (mre, mim) = (c, c + modes)
    let (c00r, c00i, c01r, c01i) = (c + 2 * modes, c + 3 * modes, c + 4 * modes, c + 5 * modes)
    let (c10r, c10i, c11) = (c + 6 * modes, c + 7 * modes, c + 8 * modes)
    let (a00r, a00i, a01r, a01i) = (acc, acc + modes, acc + 2 * modes, acc + 3 * modes)
    let (a10r, a10i, a11, amr, ami) = (acc + 4 * modes, acc + 5 * modes, acc + 6 * modes, acc + 7 * modes, acc + 8 * modes)
    for n in 0..<modes {
        let (mr, mi) = (mre[n], mim[n])
        let dr = ar - (br * mr - bi * mi), di = ai - (br * mi + bi * mr)
        let er = ar - (br * mr + bi * mi), ei = ai - (bi * mr - br * mi)
        let dn = dr * dr + di * di, en = er * er + ei * ei
        let inverse = 1 / (dn * en)
        let (sd, se) = (en * inverse, dn * inverse)
        let (gr, gi, hr, hi) = (dr * sd, -di * sd, er * se, -ei * se)  // g = 1/d, g' = 1/e
        let (sr, si, xr, xi) = (gr + hr, gi + hi, gr - hr, gi - hi)
        // gc += conj(g) gR + g' conj(gR) = (gR_r S_r + gR_i S_i) + i (gR_i X_r - gR_r X_i)
        a00r[n] += g00r * sr + g00i * si
        a00i[n] += g00i * xr - g00r * xi
        a01r[n] += g01r * sr + g01i * si
        a01i[n] += g01i * xr - g01r * xi
        a10r[n] += g10r * sr + g10i * si
        a10i[n] += g10i * xr - g10r * xi
        a11[n] += g11r * sr + g11i * si
        // G = sum conj(c) gR, G' = sum c gR
        let (p00r, p00i, p01r, p01i) = (c00r[n], c00i[n], c01r[n], c01i[n])
        let (p10r, p10i, p11) = (c10r[n], c10i[n], c11[n])
        let uRe = p00r * g00r + p01r * g01r + p10r * g10r + p11 * g11r
        let uIm = p00r * g00i + p01r * g01i + p10r * g10i + p11 * g11i
        let vRe = p00i * g00i + p01i * g01i + p10i * g10i
        let vIm = p00i * g00r + p01i * g01r + p10i * g10r
        let (bigGr, bigGi) = (uRe + vRe, uIm - vIm)  // conj(c) gR
        let (bigHr, bigHi) = (uRe - vRe, uIm + vIm)  // c gR
        // gmu += conj(beta g^2) G + beta g'^2 conj(G')
        let (g2r, g2i) = (gr * gr - gi * gi, 2 * gr * gi)
        let (h2r, h2i) = (hr * hr - hi * hi, 2 * hr * hi)
        let (bgr, bgi) = (br * g2r - bi * g2i, br * g2i + bi * g2r)
        let (bhr, bhi) = (br * h2r - bi * h2i, br * h2i + bi * h2r)
        amr[n] += (bgr * bigGr + bgi * bigGi) + (bhr * bigHr + bhi * bigHi)
        ami[n] += (bgr * bigGi - bgi * bigGr) + (bhi * bigHr - bhr * bigHi)
    }
}

/// From the accumulated gc_ij and gmu of one channel to the gradients of Lambda, P, B, C-tilde (rows of `g`:
/// Lambda re/im, P re/im, B re/im, C re/im); returns dLoss/dlog dt.
@inline(__always)
private func chainToParameters<T: TensorScalar>(
    dt: T, row: Int, modes: Int, acc: UnsafePointer<T>, p: [UnsafePointer<T>], into g: [UnsafeMutablePointer<T>]
) -> T {
    var gradDt: T = 0
    for n in 0..<modes {
        let j = row + n
        let (lr, li, pr, pi) = (p[1][j], p[2][j], p[3][j], p[4][j])
        let (br, bi, cr, ci) = (p[5][j], p[6][j], p[7][j], p[8][j])
        let (a00r, a00i, a01r, a01i) = (acc[n], acc[modes + n], acc[2 * modes + n], acc[3 * modes + n])
        let (a10r, a10i, a11) = (acc[4 * modes + n], acc[5 * modes + n], acc[6 * modes + n])
        let (amr, ami) = (acc[7 * modes + n], acc[8 * modes + n])
        // c00 = dt C B, c01 = dt C P, c10 = dt conj(P) B, c11 = dt |P|^2
        let (gc1r, gc1i) = complexMultiply(br, -bi, a00r, a00i)  // conj(B) gc00
        let (gc2r, gc2i) = complexMultiply(pr, -pi, a01r, a01i)  // conj(P) gc01
        g[6][j] += dt * (gc1r + gc2r)
        g[7][j] += dt * (gc1i + gc2i)
        let (gb1r, gb1i) = complexMultiply(cr, -ci, a00r, a00i)  // conj(C) gc00
        let (gb2r, gb2i) = complexMultiply(pr, pi, a10r, a10i)   // P gc10
        g[4][j] += dt * (gb1r + gb2r)
        g[5][j] += dt * (gb1i + gb2i)
        let (gp1r, gp1i) = complexMultiply(cr, -ci, a01r, a01i)  // conj(C) gc01
        let (gp2r, gp2i) = complexMultiply(br, bi, a10r, -a10i)  // B conj(gc10)
        g[2][j] += dt * (gp1r + gp2r + 2 * a11 * pr)
        g[3][j] += dt * (gp1i + gp2i + 2 * a11 * pi)
        // mu = dt Lambda
        g[0][j] += dt * amr
        g[1][j] += dt * ami
        // dLoss/ddt = sum_ij Re(conj(c_ij / dt) gc_ij) + Re(conj(Lambda) gmu)
        let (c0r, c0i) = complexMultiply(cr, ci, br, bi)
        let (c1r, c1i) = complexMultiply(cr, ci, pr, pi)
        let (c2r, c2i) = complexMultiply(pr, -pi, br, bi)
        gradDt += c0r * a00r + c0i * a00i + c1r * a01r + c1i * a01i + c2r * a10r + c2i * a10i
        gradDt += (pr * pr + pi * pi) * a11 + lr * amr + li * ami
    }
    return gradDt * dt  // d/dlog dt = dt d/ddt
}

@inline(__always)
func complexMultiply<T: TensorScalar>(_ ar: T, _ ai: T, _ br: T, _ bi: T) -> (T, T) {
    (ar * br - ai * bi, ar * bi + ai * br)
}

@inline(__always)
func complexDivide<T: TensorScalar>(_ ar: T, _ ai: T, _ br: T, _ bi: T) -> (T, T) {
    let inverse = 1 / (br * br + bi * bi)
    return ((ar * br + ai * bi) * inverse, (ai * br - ar * bi) * inverse)
}

/// Runs `body` with base pointers of every array (read-only).
func withPointers<T, R>(_ arrays: [[T]], _ body: ([UnsafePointer<T>]) -> R) -> R {
    func go(_ i: Int, _ acc: [UnsafePointer<T>]) -> R {
        if i == arrays.count { return body(acc) }
        return arrays[i].withUnsafeBufferPointer { go(i + 1, acc + [$0.baseAddress!]) }
    }
    return go(0, [])
}
