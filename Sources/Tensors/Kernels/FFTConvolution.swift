// The `fft_conv` kernel (KERNELS.md): causal long convolution through FFTW, shared by S4 and S4D.
//   y[b, t, h] = sum_{s <= t} K[h, t - s] u[b, s, h] + D[h] u[b, t, h]
// Computed as irfft(rfft(u, 2L) rfft(K', 2L), 2L)[0..<L] per channel (zero padding to 2L: no wrap-around), with the
// skip folded into the kernel, K'[h, 0] = K[h, 0] + D[h], and 1/(2L) folded into its spectrum: the [B, L, H] data
// is read once (u) and written once (y).
// Backward (the adjoint of a causal convolution is a correlation), with Y = rfft(dy, 2L):
//   du = irfft(conj(rfft K') Y)[0..<L] (the skip included),  dK[h] = irfft(sum_b conj(rfft u_b) Y_b)[0..<L],
//   dD[h] = sum_{b,t} u dy = the same correlation at lag 0 (= dK[h, 0]).
// Work is split over blocks of channels (each block = one batched FFTW plan); the batch loop sits inside a block
// so that dK accumulates without races.
// Bidirectional form (S4's bidirectional FFTConv): with an anticausal kernel K1 [H, L] the length-2L kernel is
// pad(K, right L) + pad(flip(K1), left L), i.e. y[b, t, h] += sum_{s > t} K1[h, s - t - 1] u[b, s, h];
// then dK1[h, j] = (the same correlation)[2L - 1 - j].

/// Channels per FFTW batch.
private let channelBlock = 16

/// Causal convolution of u [B, L, H] with per-channel kernels K [H, L], plus the skip D [H] u: one tape node.
/// With `anticausalKernel` K1 [H, L] the convolution is two-sided: y[b, t, h] += sum_{s > t} K1[h, s - t - 1] u[b, s, h].
@_specialize(where T == Float)
@_specialize(where T == Double)
public func fftConvolution<T: TensorScalar>(
    _ u: Tensor<T>, kernel K: Tensor<T>, anticausalKernel K1: Tensor<T>? = nil, skip D: Tensor<T>? = nil
) -> Tensor<T> {
    convolution(u, kernel: K, anticausalKernel: K1, skip: D, geluChannelMajor: false)
}

/// GELU(fft_conv(u, K, K1, D)) returned channel-major, [B, H, L]: the S4 block's convolution and activation as one
/// node. The activation runs on the contiguous rows of the inverse FFT (vectorised), and the channel-major result
/// feeds a product that reads it transposed, so that neither pass goes through the strided [B, L, H] layout.
/// Backward: dv = dy GELU'(v) on the same rows, then the convolution's backward.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func fftConvolutionGELU<T: TensorScalar>(
    _ u: Tensor<T>, kernel K: Tensor<T>, anticausalKernel K1: Tensor<T>? = nil, skip D: Tensor<T>? = nil
) -> Tensor<T> {
    convolution(u, kernel: K, anticausalKernel: K1, skip: D, geluChannelMajor: true)
}

@inline(__always)
private func convolution<T: TensorScalar>(
    _ u: Tensor<T>, kernel K: Tensor<T>, anticausalKernel K1: Tensor<T>?, skip D: Tensor<T>?, geluChannelMajor: Bool
) -> Tensor<T> {
    precondition(u.rank == 3, "fft_conv: u must be [B, L, H], got \(u.shape)")
    let (batch, length, channels) = (u.shape[0], u.shape[1], u.shape[2])
    precondition(K.shape == [channels, length], "fft_conv: K has shape \(K.shape), needs [H, L] = [\(channels), \(length)] for u \(u.shape)")
    if let K1 { precondition(K1.shape == K.shape, "fft_conv: the anticausal kernel has shape \(K1.shape), needs \(K.shape)") }
    if let D { precondition(D.shape == [channels], "fft_conv: Dskip has shape \(D.shape), needs [\(channels)]") }
    let n = 2 * length, bins = length + 1  // rfft of length 2L has L + 1 bins
    let plans = T.fftPlans
    let blocks = (channels + channelBlock - 1) / channelBlock
    let scale = 1 / T(n)

    // Spectra: kernel [H, bins] and inputs [B, H, bins], complex interleaved (the latter kept for dK).
    let kernelSpectrum = AlignedBuffer<T>(count: channels * bins * 2, zeroed: false)
    let inputSpectrum = AlignedBuffer<T>(count: batch * channels * bins * 2, zeroed: false)
    var out = uninitializedArray(T.self, count: u.count)  // every entry written below
    var slope = uninitializedArray(T.self, count: geluChannelMajor ? u.count : 0)  // GELU'(v), [B, H, L]
    let uData = u.data, kData = K.data, k1Data = K1?.data
    let dData = D?.data ?? [T](repeating: 0, count: channels)
    out.withUnsafeMutableBufferPointer { yp in
    slope.withUnsafeMutableBufferPointer { sp in
    uData.withUnsafeBufferPointer { up in
    kData.withUnsafeBufferPointer { kp in
    dData.withUnsafeBufferPointer { dp in
        let (y, uBase, kBase, dBase) = (yp.baseAddress!, up.baseAddress!, kp.baseAddress!, dp.baseAddress!)
        Parallel.forEach(blocks) { c in
            let h0 = c * channelBlock, hb = min(channels, h0 + channelBlock) - h0
            let rows = AlignedBuffer<T>(count: hb * n)          // zero tails stay zero: FFTW r2c keeps its input
            let result = AlignedBuffer<T>(count: hb * n, zeroed: false)
            let spectrum = AlignedBuffer<T>(count: hb * bins * 2, zeroed: false)
            for i in 0..<hb {  // K' = (K + D delta) / (2L), and the anticausal part
                let row = rows.pointer + i * n, k = kBase + (h0 + i) * length
                for t in 0..<length { row[t] = k[t] * scale }
                row[0] += dBase[h0 + i] * scale
                if let k1Data { for j in 0..<length { row[n - 1 - j] = k1Data[(h0 + i) * length + j] * scale } }
            }
            let kf = kernelSpectrum.pointer + h0 * bins * 2
            plans.forward(n: n, howMany: hb, input: rows.pointer, output: kf)
            if k1Data != nil { for i in 0..<hb { (rows.pointer + i * n + length).initialize(repeating: 0, count: length) } }
            for b in 0..<batch {
                let ub = uBase + b * length * channels + h0, yb = y + b * length * channels + h0
                transposeIn(ub, width: channels, length: length, channels: hb, into: rows.pointer, rowLength: n)
                let uf = inputSpectrum.pointer + (b * channels + h0) * bins * 2
                plans.forward(n: n, howMany: hb, input: rows.pointer, output: uf)
                multiplySpectra(uf, kf, into: spectrum.pointer, count: hb * bins, conjugateSecond: false)
                plans.inverse(n: n, howMany: hb, input: spectrum.pointer, output: result.pointer)
                if geluChannelMajor {  // GELU(v) and GELU'(v), [B, H, L]
                    let offset = (b * channels + h0) * length
                    for i in 0..<hb {
                        geluValuesAndSlopes(result.pointer + i * n, y + offset + i * length, sp.baseAddress! + offset + i * length, count: length)
                    }
                } else {
                    transposeOut(result.pointer, rowLength: n, width: channels, length: length, channels: hb, into: yb)  // y, [L, H]
                }
            }
        }
    }}}}}
    let output = Tensor(shape: geluChannelMajor ? [batch, channels, length] : u.shape, data: out)
    let inputs = [u, K] + (K1.map { [$0] } ?? []) + (D.map { [$0] } ?? [])
    let (needU, needK, hasSkip) = (u.requiresGrad, K.requiresGrad || (K1?.requiresGrad ?? false), D != nil)
    let needCorrelation = needK || hasSkip
    Tape.record(geluChannelMajor ? "fft_conv_gelu" : "fft_conv", inputs: inputs, output: output) { dy in
        var du = uninitializedArray(T.self, count: needU ? uData.count : 0)
        var dK = uninitializedArray(T.self, count: channels * length)
        var dK1 = uninitializedArray(T.self, count: k1Data == nil ? 0 : channels * length)
        var dD = [T](repeating: 0, count: channels)
        du.withUnsafeMutableBufferPointer { dup in
        dK.withUnsafeMutableBufferPointer { dkp in
        dK1.withUnsafeMutableBufferPointer { dk1p in
        dD.withUnsafeMutableBufferPointer { ddp in
        dy.withUnsafeBufferPointer { gp in
        slope.withUnsafeBufferPointer { sp in
            let (dkBase, ddBase, gBase) = (dkp.baseAddress!, ddp.baseAddress!, gp.baseAddress!)
            let duBase = needU ? dup.baseAddress : nil
            let dk1Base = k1Data == nil ? nil : dk1p.baseAddress
            Parallel.forEach(blocks) { c in
                let h0 = c * channelBlock, hb = min(channels, h0 + channelBlock) - h0
                let rows = AlignedBuffer<T>(count: hb * n)
                let result = AlignedBuffer<T>(count: hb * n, zeroed: false)
                let gradSpectrum = AlignedBuffer<T>(count: hb * bins * 2, zeroed: false)
                let product = AlignedBuffer<T>(count: hb * bins * 2, zeroed: false)
                let kernelGrad = AlignedBuffer<T>(count: hb * bins * 2, zeroed: false)
                let kf = kernelSpectrum.pointer + h0 * bins * 2
                for b in 0..<batch {
                    if geluChannelMajor {  // dv = dy GELU'(v) on contiguous rows
                        let offset = (b * channels + h0) * length
                        for i in 0..<hb {
                            let (g, d, row) = (gBase + offset + i * length, sp.baseAddress! + offset + i * length, rows.pointer + i * n)
                            for t in 0..<length { row[t] = g[t] * d[t] }
                        }
                    } else {
                        transposeIn(gBase + b * length * channels + h0, width: channels, length: length, channels: hb,
                                    into: rows.pointer, rowLength: n)
                    }
                    plans.forward(n: n, howMany: hb, input: rows.pointer, output: gradSpectrum.pointer)
                    if needCorrelation {  // accumulate conj(U) Y over the batch
                        let uf = inputSpectrum.pointer + (b * channels + h0) * bins * 2
                        multiplySpectra(gradSpectrum.pointer, uf, into: kernelGrad.pointer, count: hb * bins, conjugateSecond: true, accumulate: b > 0)
                    }
                    if let duBase {
                        multiplySpectra(gradSpectrum.pointer, kf, into: product.pointer, count: hb * bins, conjugateSecond: true)
                        plans.inverse(n: n, howMany: hb, input: product.pointer, output: result.pointer)
                        transposeOut(result.pointer, rowLength: n, width: channels, length: length, channels: hb,
                                     into: duBase + b * length * channels + h0)
                    }
                }
                if needCorrelation {
                    plans.inverse(n: n, howMany: hb, input: kernelGrad.pointer, output: result.pointer)
                    for i in 0..<hb {
                        let row = result.pointer + i * n, h = h0 + i
                        ddBase[h] = row[0] * scale  // lag 0: sum_{b,t} u dy
                        for t in 0..<length { dkBase[h * length + t] = row[t] * scale }
                        if let dk1Base { for j in 0..<length { dk1Base[h * length + j] = row[n - 1 - j] * scale } }
                    }
                }
            }
        }}}}}}
        return [needU ? du : nil, needK ? dK : nil] + (k1Data != nil ? [needK ? dK1 : nil] : []) + (hasSkip ? [dD] : [])
    }
    return output
}

/// Rows [channels, rowLength] (first `length` entries) from a [length, width] slab starting at `x` (channel 0 of
/// the block): a transpose in tiles of 8 time steps that also touches the next tile's rows early, so that their
/// cache lines are in flight while the current tile is copied (wrapping index arithmetic: no overflow checks).
@inline(__always)
private func transposeIn<T: TensorScalar>(
    _ x: UnsafePointer<T>, width: Int, length: Int, channels: Int, into rows: UnsafeMutablePointer<T>, rowLength: Int
) {
    var t0 = 0, touched: T = 0
    while t0 < length {
        let tb = min(8, length - t0)
        let ahead = min(8, length - t0 - tb)
        for t in 0..<ahead { touched += x[(t0 &+ tb &+ t) &* width] }
        for i in 0..<channels {
            let dst = rows + (i &* rowLength &+ t0), src = x + (t0 &* width &+ i)
            for t in 0..<tb { dst[t] = src[t &* width] }
        }
        t0 += tb
    }
    if touched.isNaN { rows[rowLength - 1] = rows[rowLength - 1] }  // keeps the touching loads alive
}

/// out[t, i] = rows[i, t] into a [length, width] slab (channels of one block).
@inline(__always)
private func transposeOut<T: TensorScalar>(
    _ rows: UnsafePointer<T>, rowLength: Int, width: Int, length: Int, channels: Int, into out: UnsafeMutablePointer<T>
) {
    var t0 = 0
    while t0 < length {
        let tb = min(8, length - t0)
        for i in 0..<channels {
            let src = rows + (i &* rowLength &+ t0), o = out + (t0 &* width &+ i)
            for t in 0..<tb { o[t &* width] = src[t] }
        }
        t0 += tb
    }
}

/// out = a * b (or a * conj(b)) over `count` interleaved complex numbers; `accumulate` adds into out.
@inline(__always)
private func multiplySpectra<T: TensorScalar>(
    _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, into out: UnsafeMutablePointer<T>, count: Int,
    conjugateSecond: Bool, accumulate: Bool = false
) {
    let sign: T = conjugateSecond ? -1 : 1
    for i in 0..<count {
        let (re, im) = (i &* 2, i &* 2 &+ 1)
        let (ar, ai, br, bi) = (a[re], a[im], b[re], sign * b[im])
        let x = ar * br - ai * bi, y = ar * bi + ai * br
        if accumulate {
            out[re] += x
            out[im] += y
        } else {
            out[re] = x
            out[im] = y
        }
    }
}
