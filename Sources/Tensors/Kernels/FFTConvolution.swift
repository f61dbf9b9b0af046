// The `fft_conv` kernel (KERNELS.md): causal long convolution through FFTW, shared by S4 and S4D.
//   y[b, t, h] = sum_{s <= t} K[h, t - s] u[b, s, h] + D[h] u[b, t, h]
// Computed as irfft(rfft(u, 2L) rfft(K, 2L), 2L)[0..<L] per channel (zero padding to 2L: no wrap-around).
// Backward (the adjoint of a causal convolution is a correlation), with Y = rfft(dy, 2L):
//   du = irfft(conj(rfft K) Y)[0..<L] + D dy,  dK[h] = irfft(sum_b conj(rfft u_b) Y_b)[0..<L],  dD[h] = sum u dy.
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
    let kernelSpectrum = AlignedBuffer<T>(count: channels * bins * 2)
    let inputSpectrum = AlignedBuffer<T>(count: batch * channels * bins * 2)
    var out = [T](repeating: 0, count: u.count)
    let uData = u.data, kData = K.data, k1Data = K1?.data
    let dData = D?.data ?? [T](repeating: 0, count: channels)
    out.withUnsafeMutableBufferPointer { yp in
    uData.withUnsafeBufferPointer { up in
    kData.withUnsafeBufferPointer { kp in
    dData.withUnsafeBufferPointer { dp in
        let (y, uBase, kBase, dBase) = (yp.baseAddress!, up.baseAddress!, kp.baseAddress!, dp.baseAddress!)
        Parallel.forEach(blocks) { c in
            let h0 = c * channelBlock, hb = min(channels, h0 + channelBlock) - h0
            let rows = AlignedBuffer<T>(count: hb * n)          // zero tails stay zero: FFTW r2c keeps its input
            let result = AlignedBuffer<T>(count: hb * n)
            let spectrum = AlignedBuffer<T>(count: hb * bins * 2)
            for i in 0..<hb {
                (rows.pointer + i * n).update(from: kBase + (h0 + i) * length, count: length)
                if let k1Data { for j in 0..<length { rows.pointer[i * n + n - 1 - j] = k1Data[(h0 + i) * length + j] } }
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
                // y = conv / n + D u, back to [L, H]
                transposeOut(result.pointer, rowLength: n, scale: scale, skip: dBase + h0, input: ub, width: channels,
                             length: length, channels: hb, into: yb)
            }
        }
    }}}}
    let output = Tensor(shape: u.shape, data: out)
    let inputs = [u, K] + (K1.map { [$0] } ?? []) + (D.map { [$0] } ?? [])
    let (needU, needK, hasSkip) = (u.requiresGrad, K.requiresGrad || (K1?.requiresGrad ?? false), D != nil)
    Tape.record("fft_conv", inputs: inputs, output: output) { dy in
        var du = [T](repeating: 0, count: needU ? uData.count : 0)
        var dK = [T](repeating: 0, count: channels * length)
        var dK1 = [T](repeating: 0, count: k1Data == nil ? 0 : channels * length)
        var dD = [T](repeating: 0, count: channels)
        du.withUnsafeMutableBufferPointer { dup in
        dK.withUnsafeMutableBufferPointer { dkp in
        dK1.withUnsafeMutableBufferPointer { dk1p in
        dD.withUnsafeMutableBufferPointer { ddp in
        dy.withUnsafeBufferPointer { gp in
        uData.withUnsafeBufferPointer { up in
        dData.withUnsafeBufferPointer { dp in
            let (dkBase, ddBase, gBase, uBase, dBase) = (dkp.baseAddress!, ddp.baseAddress!, gp.baseAddress!, up.baseAddress!, dp.baseAddress!)
            let duBase = needU ? dup.baseAddress : nil
            let dk1Base = k1Data == nil ? nil : dk1p.baseAddress
            Parallel.forEach(blocks) { c in
                let h0 = c * channelBlock, hb = min(channels, h0 + channelBlock) - h0
                let rows = AlignedBuffer<T>(count: hb * n)
                let result = AlignedBuffer<T>(count: hb * n)
                let gradSpectrum = AlignedBuffer<T>(count: hb * bins * 2)
                let product = AlignedBuffer<T>(count: hb * bins * 2)
                let kernelGrad = AlignedBuffer<T>(count: hb * bins * 2)
                let kf = kernelSpectrum.pointer + h0 * bins * 2
                for b in 0..<batch {
                    let gb = gBase + b * length * channels + h0, ub = uBase + b * length * channels + h0
                    transposeIn(gb, width: channels, length: length, channels: hb, into: rows.pointer, rowLength: n)
                    plans.forward(n: n, howMany: hb, input: rows.pointer, output: gradSpectrum.pointer)
                    if needK {  // accumulate conj(U) Y over the batch
                        let uf = inputSpectrum.pointer + (b * channels + h0) * bins * 2
                        multiplySpectra(gradSpectrum.pointer, uf, into: kernelGrad.pointer, count: hb * bins, conjugateSecond: true, accumulate: b > 0)
                    }
                    if let duBase {
                        multiplySpectra(gradSpectrum.pointer, kf, into: product.pointer, count: hb * bins, conjugateSecond: true)
                        plans.inverse(n: n, howMany: hb, input: product.pointer, output: result.pointer)
                        transposeOut(result.pointer, rowLength: n, scale: scale, skip: dBase + h0, input: gb, width: channels,
                                     length: length, channels: hb, into: duBase + b * length * channels + h0)
                    }
                    if hasSkip { accumulateProducts(ub, gb, width: channels, length: length, channels: hb, into: ddBase + h0) }
                }
                if needK {
                    plans.inverse(n: n, howMany: hb, input: kernelGrad.pointer, output: result.pointer)
                    for i in 0..<hb {
                        let row = result.pointer + i * n, h = h0 + i
                        for t in 0..<length { dkBase[h * length + t] = row[t] * scale }
                        if let dk1Base { for j in 0..<length { dk1Base[h * length + j] = row[n - 1 - j] * scale } }
                    }
                }
            }
        }}}}}}}
        return [needU ? du : nil, needK ? dK : nil] + (k1Data != nil ? [needK ? dK1 : nil] : []) + (hasSkip ? [dD] : [])
    }
    return output
}

/// Rows [channels, rowLength] (first `length` entries) from a [length, width] slab starting at `x` (channel 0 of
/// the block): a transpose in tiles of 8 time steps.
@inline(__always)
private func transposeIn<T: TensorScalar>(
    _ x: UnsafePointer<T>, width: Int, length: Int, channels: Int, into rows: UnsafeMutablePointer<T>, rowLength: Int
) {
    var t0 = 0
    while t0 < length {
        let tb = min(8, length - t0)
        for i in 0..<channels {
            let dst = rows + i * rowLength + t0, src = x + t0 * width + i
            for t in 0..<tb { dst[t] = src[t * width] }
        }
        t0 += tb
    }
}

/// out[t, i] = rows[i, t] * scale + skip[i] * input[t, i] into a [length, width] slab (channels of one block).
@inline(__always)
private func transposeOut<T: TensorScalar>(
    _ rows: UnsafePointer<T>, rowLength: Int, scale: T, skip: UnsafePointer<T>, input: UnsafePointer<T>, width: Int,
    length: Int, channels: Int, into out: UnsafeMutablePointer<T>
) {
    var t0 = 0
    while t0 < length {
        let tb = min(8, length - t0)
        for i in 0..<channels {
            let src = rows + i * rowLength + t0, d = skip[i]
            for t in 0..<tb {
                let j = (t0 + t) * width + i
                out[j] = src[t] * scale + d * input[j]
            }
        }
        t0 += tb
    }
}

/// acc[i] += sum_t a[t, i] b[t, i] over a [length, width] slab (channels of one block).
@inline(__always)
private func accumulateProducts<T: TensorScalar>(
    _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, width: Int, length: Int, channels: Int, into acc: UnsafeMutablePointer<T>
) {
    for t in 0..<length {
        let (ar, br) = (a + t * width, b + t * width)
        for i in 0..<channels { acc[i] += ar[i] * br[i] }
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
        let (ar, ai, br, bi) = (a[2 * i], a[2 * i + 1], b[2 * i], sign * b[2 * i + 1])
        let re = ar * br - ai * bi, im = ar * bi + ai * br
        if accumulate {
            out[2 * i] += re
            out[2 * i + 1] += im
        } else {
            out[2 * i] = re
            out[2 * i + 1] = im
        }
    }
}
