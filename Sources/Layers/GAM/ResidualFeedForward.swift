import Tensors

// The feed-forward half of a GAM block (and of a Transformer block), one fused tape node:
//   y = x + m * (gelu(LayerNorm(x) W1^T + b1) W2^T + b2)  W1 [F, C], W2 [C, F] (nn.Linear's layout), exact-erf GELU,
// m an optional dropout mask (0 or 1 / (1 - p) per entry). Token-blocked: per block of 256 tokens the two GEMMs and
// the GELU run in cache. Saved: xhat, rstd, the pre-activation U and Phi(U) ([N, F] each). Backward per block:
//   dZ = m dy,  dW2 += dZ^T gelu(U),  dA = dZ W2,  dU = dA (Phi(U) + U phi(U)),  dW1 += dU^T h,
//   dh = dU W1,  dx = dy + LN^T(dh)     (h = LayerNorm(x) recomputed from xhat).

/// x + dropout(FFN(LayerNorm(x))) over x [B, L, C]: LayerNorm weight/bias [C], W1 [F, C], b1 [F], W2 [C, F], b2 [C]
/// (nn.Linear's layout).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func residualFeedForward<T: TensorScalar>(
    _ x: Tensor<T>, normWeight: Tensor<T>, normBias: Tensor<T>, upWeight: Tensor<T>, upBias: Tensor<T>,
    downWeight: Tensor<T>, downBias: Tensor<T>, dropoutMask: [T]? = nil
) -> Tensor<T> {
    let c = x.shape.last ?? 0, f = upWeight.shape.count == 2 ? upWeight.shape[0] : 0
    precondition(normWeight.shape == [c] && normBias.shape == [c] && upWeight.shape == [f, c] && upBias.shape == [f]
                 && downWeight.shape == [c, f] && downBias.shape == [c], "residualFeedForward: parameter shapes do not fit C = \(c)")
    if let dropoutMask { precondition(dropoutMask.count == x.count, "residualFeedForward: dropout mask of \(dropoutMask.count) for \(x.count) values") }
    let n = x.count / max(c, 1)
    let (xData, w1, b1, w2, b2, gamma, beta) = (x.data, upWeight.data, upBias.data, downWeight.data, downBias.data, normWeight.data, normBias.data)
    let xhat = PooledBuffer<T>(count: n * c), rstd = PooledBuffer<T>(count: n)
    let pre = PooledBuffer<T>(count: n * f), cdf = PooledBuffer<T>(count: n * f)  // U and Phi(U)  [N, F]
    var out: [T] = overwrittenArray(count: x.count)
    let workers = TokenBlocks.workers(count: n)
    let invSqrt2 = T(0.707_106_781_186_547_6)

    xData.withUnsafeBufferPointer { xp in w1.withUnsafeBufferPointer { w1p in b1.withUnsafeBufferPointer { b1p in
    w2.withUnsafeBufferPointer { w2p in b2.withUnsafeBufferPointer { b2p in gamma.withUnsafeBufferPointer { gp in
    beta.withUnsafeBufferPointer { bp in out.withUnsafeMutableBufferPointer { op in
        let scratch: [PooledBuffer<T>] = TokenBlocks.scratch(workers, TokenBlocks.rows * (c + f))
        TokenBlocks.forEach(count: n) { worker, r in
            let (rows, r0) = (r.count, r.lowerBound)
            let (h, a) = (scratch[worker].pointer, scratch[worker].pointer + TokenBlocks.rows * c)  // [rows, C], [rows, F]
            for i in 0..<rows {
                rstd.pointer[r0 + i] = RowLayerNorm.forward(xp.baseAddress! + (r0 + i) * c, c, gamma: gp.baseAddress!, beta: bp.baseAddress!,
                                                            xhat: xhat.pointer + (r0 + i) * c, y: h + i * c)
            }
            let (u, phi) = (pre.pointer + r0 * f, cdf.pointer + r0 * f)
            // U = h W1^T + b1  [rows, F]
            T.gemm(transA: false, transB: true, m: rows, n: f, k: c, alpha: 1, a: h, lda: c, b: w1p.baseAddress!, ldb: c, beta: 0, c: u, ldc: f)
            for i in 0..<rows {
                let (ur, pr, ar) = (u + i * f, phi + i * f, a + i * f)
                for j in 0..<f {
                    let z = ur[j] + b1p[j]
                    ur[j] = z
                    pr[j] = (1 + FastScalarMath.erf(z * invSqrt2)) / 2
                    ar[j] = z * pr[j]
                }
            }
            // Z = gelu(U) W2^T  [rows, C], then y = x + m (Z + b2)
            let y = op.baseAddress! + r0 * c
            T.gemm(transA: false, transB: true, m: rows, n: c, k: f, alpha: 1, a: a, lda: f, b: w2p.baseAddress!, ldb: f, beta: 0, c: y, ldc: c)
            for i in 0..<rows {
                let (yr, xr) = (y + i * c, xp.baseAddress! + (r0 + i) * c)
                if let dropoutMask {
                    dropoutMask.withUnsafeBufferPointer { mp in
                        let mr = mp.baseAddress! + (r0 + i) * c
                        for j in 0..<c { yr[j] = xr[j] + mr[j] * (yr[j] + b2p[j]) }
                    }
                } else {
                    for j in 0..<c { yr[j] = xr[j] + yr[j] + b2p[j] }
                }
            }
        }
    } } } } } } } }

    let result = Tensor(shape: x.shape, data: out)
    let inputs = [x, normWeight, normBias, upWeight, upBias, downWeight, downBias]
    Tape.record("residual_feed_forward", inputs: inputs, output: result) { dOut in
        var dx: [T] = overwrittenArray(count: xData.count)
        let dW1: [PooledBuffer<T>] = TokenBlocks.accumulators(workers, c * f), dW2: [PooledBuffer<T>] = TokenBlocks.accumulators(workers, f * c)
        let dSmall: [PooledBuffer<T>] = TokenBlocks.accumulators(workers, f + 3 * c)  // db1, db2, dgamma, dbeta
        let scratch: [PooledBuffer<T>] = TokenBlocks.scratch(workers, TokenBlocks.rows * (3 * c + 2 * f) + c)
        let normPhi = T(0.398_942_280_401_432_7)  // 1 / sqrt(2 pi)
        dOut.withUnsafeBufferPointer { gp in dx.withUnsafeMutableBufferPointer { dxp in w1.withUnsafeBufferPointer { w1p in
        w2.withUnsafeBufferPointer { w2p in gamma.withUnsafeBufferPointer { gam in beta.withUnsafeBufferPointer { bet in
            TokenBlocks.forEach(count: n) { worker, r in
                let (rows, r0) = (r.count, r.lowerBound)
                let base = scratch[worker].pointer
                let (dz, h, dh) = (base, base + TokenBlocks.rows * c, base + 2 * TokenBlocks.rows * c)
                let (a, da) = (base + 3 * TokenBlocks.rows * c, base + 3 * TokenBlocks.rows * c + TokenBlocks.rows * f)
                let lnScratch = da + TokenBlocks.rows * f
                let small = dSmall[worker].pointer
                let (db1, db2, dGamma, dBeta) = (small, small + f, small + f + c, small + f + 2 * c)
                let dy = gp.baseAddress! + r0 * c
                for i in 0..<(rows * c) { dz[i] = dy[i] }
                if let dropoutMask {
                    dropoutMask.withUnsafeBufferPointer { mp in
                        let m = mp.baseAddress! + r0 * c
                        for i in 0..<(rows * c) { dz[i] *= m[i] }
                    }
                }
                for i in 0..<rows { let row = dz + i * c; for j in 0..<c { db2[j] += row[j] } }
                let (u, phi) = (pre.pointer + r0 * f, cdf.pointer + r0 * f)
                for i in 0..<(rows * f) { a[i] = u[i] * phi[i] }  // gelu(U)
                // dW2 += dZ^T gelu(U)  [C, F];  dA = dZ W2  [rows, F]
                T.gemm(transA: true, transB: false, m: c, n: f, k: rows, alpha: 1, a: dz, lda: c, b: a, ldb: f, beta: 1, c: dW2[worker].pointer, ldc: f)
                T.gemm(transA: false, transB: false, m: rows, n: f, k: c, alpha: 1, a: dz, lda: c, b: w2p.baseAddress!, ldb: f, beta: 0, c: da, ldc: f)
                for i in 0..<(rows * f) {  // dU = dA gelu'(U)
                    let z = u[i]
                    da[i] *= phi[i] + z * normPhi * FastScalarMath.exp(-z * z / 2)
                }
                for i in 0..<rows { let row = da + i * f; for j in 0..<f { db1[j] += row[j] } }
                for i in 0..<rows {  // h = LayerNorm(x), recomputed
                    let (xr, hr) = (xhat.pointer + (r0 + i) * c, h + i * c)
                    for j in 0..<c { hr[j] = gam[j] * xr[j] + bet[j] }
                }
                // dW1 += dU^T h  [F, C];  dh = dU W1  [rows, C]
                T.gemm(transA: true, transB: false, m: f, n: c, k: rows, alpha: 1, a: da, lda: f, b: h, ldb: c, beta: 1, c: dW1[worker].pointer, ldc: c)
                T.gemm(transA: false, transB: false, m: rows, n: c, k: f, alpha: 1, a: da, lda: f, b: w1p.baseAddress!, ldb: c, beta: 0, c: dh, ldc: c)
                for i in 0..<rows {
                    let row = r0 + i, dxr = dxp.baseAddress! + row * c, dyr = dy + i * c
                    for j in 0..<c { dxr[j] = dyr[j] }
                    RowLayerNorm.backward(dh + i * c, c, xhat: xhat.pointer + row * c, rstd: rstd.pointer[row], gamma: gam.baseAddress!,
                                          dx: dxr, dGamma: dGamma, dBeta: dBeta, scratch: lnScratch)
                }
            }
        } } } } } }
        let small = TokenBlocks.reduce(dSmall)
        let part = { (offset: Int, count: Int) in Array(small[offset..<(offset + count)]) }
        return [dx, part(f + c, c), part(f + 2 * c, c), TokenBlocks.reduce(dW1), part(0, f), TokenBlocks.reduce(dW2), part(f, c)]
    }
    return result
}

/// x + dropout(FFN(LayerNorm(x))) from basic tape ops: the reference form of `residualFeedForward`.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceResidualFeedForward<T: TensorScalar>(
    _ x: Tensor<T>, normWeight: Tensor<T>, normBias: Tensor<T>, upWeight: Tensor<T>, upBias: Tensor<T>,
    downWeight: Tensor<T>, downBias: Tensor<T>, dropoutMask: [T]? = nil
) -> Tensor<T> {
    var z = (x.layerNorm(gamma: normWeight, beta: normBias).matmul(upWeight, transposeOther: true) + upBias).gelu()
        .matmul(downWeight, transposeOther: true) + downBias
    if let dropoutMask { z = z * Tensor(shape: x.shape, data: dropoutMask) }
    return x + z
}
