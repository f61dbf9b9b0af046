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
    let blockRange = { (c: Int) in (c * channelBlock)..<min(channels, (c + 1) * channelBlock) }

    // Spectra: kernel [H, bins] and inputs [B, H, bins], complex interleaved.
    let kernelSpectrum = AlignedBuffer<T>(count: channels * bins * 2)
    let inputSpectrum = AlignedBuffer<T>(count: batch * channels * bins * 2)
    var out = [T](repeating: 0, count: u.count)
    let uData = u.data, kData = K.data, dData = D?.data, k1Data = K1?.data
    out.withUnsafeMutableBufferPointer { yp in
        let y = yp.baseAddress!
        Parallel.forEach(blocks) { c in
            let hs = blockRange(c), hb = hs.count
            let real = AlignedBuffer<T>(count: hb * n)
            let spectrum = AlignedBuffer<T>(count: hb * bins * 2)
            for (i, h) in hs.enumerated() {
                for t in 0..<length { real.pointer[i * n + t] = kData[h * length + t] }
                if let k1Data { for j in 0..<length { real.pointer[i * n + n - 1 - j] = k1Data[h * length + j] } }
            }
            plans.forward(n: n, howMany: hb, input: real.pointer, output: kernelSpectrum.pointer + hs.lowerBound * bins * 2)
            let kf = kernelSpectrum.pointer + hs.lowerBound * bins * 2
            for b in 0..<batch {
                gatherChannels(uData, b: b, channels: hs, length: length, width: channels, into: real.pointer, rowLength: n)
                let uf = inputSpectrum.pointer + (b * channels + hs.lowerBound) * bins * 2
                plans.forward(n: n, howMany: hb, input: real.pointer, output: uf)
                multiplySpectra(uf, kf, into: spectrum.pointer, count: hb * bins, conjugateSecond: false)
                plans.inverse(n: n, howMany: hb, input: spectrum.pointer, output: real.pointer)
                let scale = 1 / T(n)
                for t in 0..<length {
                    let row = (b * length + t) * channels
                    for (i, h) in hs.enumerated() {
                        y[row + h] = real.pointer[i * n + t] * scale + (dData?[h] ?? 0) * uData[row + h]
                    }
                }
            }
        }
    }
    let result = Tensor(shape: u.shape, data: out)
    let inputs = [u, K] + (K1.map { [$0] } ?? []) + (D.map { [$0] } ?? [])
    let (needU, needK) = (u.requiresGrad, K.requiresGrad || (K1?.requiresGrad ?? false))
    Tape.record("fft_conv", inputs: inputs, output: result) { dy in
        var du = [T](repeating: 0, count: uData.count)
        var dK = [T](repeating: 0, count: channels * length)
        var dK1 = [T](repeating: 0, count: k1Data == nil ? 0 : channels * length)
        var dD = [T](repeating: 0, count: channels)
        du.withUnsafeMutableBufferPointer { dup in
            dK.withUnsafeMutableBufferPointer { dkp in
              dK1.withUnsafeMutableBufferPointer { dk1p in
                let (duBase, dkBase) = (dup.baseAddress!, dkp.baseAddress!)
                let dk1Base = k1Data == nil ? nil : dk1p.baseAddress
                Parallel.forEach(blocks) { c in
                    let hs = blockRange(c), hb = hs.count
                    let real = AlignedBuffer<T>(count: hb * n)
                    let gradSpectrum = AlignedBuffer<T>(count: hb * bins * 2)
                    let product = AlignedBuffer<T>(count: hb * bins * 2)
                    let kernelGrad = AlignedBuffer<T>(count: hb * bins * 2)
                    let kf = kernelSpectrum.pointer + hs.lowerBound * bins * 2
                    let scale = 1 / T(n)
                    for b in 0..<batch {
                        gatherChannels(dy, b: b, channels: hs, length: length, width: channels, into: real.pointer, rowLength: n)
                        plans.forward(n: n, howMany: hb, input: real.pointer, output: gradSpectrum.pointer)
                        if needK {  // accumulate conj(U) Y over the batch
                            let uf = inputSpectrum.pointer + (b * channels + hs.lowerBound) * bins * 2
                            multiplySpectra(gradSpectrum.pointer, uf, into: kernelGrad.pointer, count: hb * bins, conjugateSecond: true, accumulate: b > 0)
                        }
                        if needU {
                            multiplySpectra(gradSpectrum.pointer, kf, into: product.pointer, count: hb * bins, conjugateSecond: true)
                            plans.inverse(n: n, howMany: hb, input: product.pointer, output: real.pointer)
                            for t in 0..<length {
                                let row = (b * length + t) * channels
                                for (i, h) in hs.enumerated() {
                                    duBase[row + h] = real.pointer[i * n + t] * scale + (dData?[h] ?? 0) * dy[row + h]
                                }
                            }
                        }
                    }
                    if needK {
                        plans.inverse(n: n, howMany: hb, input: kernelGrad.pointer, output: real.pointer)
                        for (i, h) in hs.enumerated() {
                            for t in 0..<length { dkBase[h * length + t] = real.pointer[i * n + t] * scale }
                            if let dk1Base {
                                for j in 0..<length { dk1Base[h * length + j] = real.pointer[i * n + n - 1 - j] * scale }
                            }
                        }
                    }
                }
              }
            }
        }
        if dData != nil {
            for i in 0..<uData.count { dD[i % channels] += uData[i] * dy[i] }
        }
        return [needU ? du : nil, needK ? dK : nil] + (k1Data != nil ? [needK ? dK1 : nil] : []) + (dData != nil ? [dD] : [])
    }
    return result
}

/// Copies channels `hs` of batch member b of a [B, L, width] array into rows of `rowLength` (zero tail kept).
@inline(__always)
private func gatherChannels<T: TensorScalar>(
    _ x: [T], b: Int, channels hs: Range<Int>, length: Int, width: Int, into rows: UnsafeMutablePointer<T>, rowLength: Int
) {
    x.withUnsafeBufferPointer { xp in
        for t in 0..<length {
            let src = xp.baseAddress! + (b * length + t) * width
            for (i, h) in hs.enumerated() { rows[i * rowLength + t] = src[h] }
        }
    }
    for i in 0..<hs.count { for t in length..<rowLength { rows[i * rowLength + t] = 0 } }
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
