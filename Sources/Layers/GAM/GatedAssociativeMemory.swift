import Tensors

// The token mixer of a GAM block (Acharya 2025, "Gated Associative Memory: A Parallel O(N) Architecture for
// Efficient Sequence Modeling"), one fused tape node:
//   xh = LayerNorm(x)                                        [N, C]
//   local = causal depthwise conv(xh, w [C, 1, k]) + b_conv  local context (kernel k, with bias)
//   global = softmax(xh M^T) M                               M [S, C] a learned memory bank; softmax over the S slots
//   [gl, gg] = xh W_g^T + b_g                                W_g [2C, C] (nn.Linear's layout)
//   y = x + sigmoid(gl) local + sigmoid(gg) global
// Token-blocked (GEMM-bound): per block of 256 tokens, one GEMM xh [W_g | M^T] (n = 2C + S) gives the gate logits
// and the slot scores, then the row softmax, global = P M, the convolution and the gating, all in cache. Saved for
// the backward pass: xhat, xh, rstd, the gates, local, global and P [N, S] (O(N S) memory, no GEMM recomputed).
// Backward per block, with dcat = [dgl, dgg, dscores]:
//   dgl = dy local s_l (1 - s_l),  dgg = dy global s_g (1 - s_g),  dglobal = dy s_g,
//   dP = dglobal M^T,  dM += P^T dglobal,  dscores = P (dP - rowsum(dP P)),
//   dxh = dcat [W_g | M^T]^T + conv^T(dy s_l),  d[W_g | M^T] += xh^T dcat,  then dx = dy + LN^T(dxh).

/// The GAM mixer with its residual: x + sigmoid(gl) local + sigmoid(gg) global (see above). x [B, L, C],
/// LayerNorm weight/bias [C], conv weight [C, 1, k] (nn.Conv1d's layout; [C, k] is accepted too) and bias [C],
/// memory [S, C], gate weight [2C, C] (nn.Linear's layout) and bias [2C].
@_specialize(where T == Float)
@_specialize(where T == Double)
public func gatedAssociativeMemory<T: TensorScalar>(
    _ x: Tensor<T>, normWeight: Tensor<T>, normBias: Tensor<T>, convWeight: Tensor<T>, convBias: Tensor<T>,
    memory: Tensor<T>, gateWeight: Tensor<T>, gateBias: Tensor<T>
) -> Tensor<T> {
    precondition(x.rank == 3, "gatedAssociativeMemory: x must be [B, L, C], got \(x.shape)")
    let (length, c) = (x.shape[1], x.shape[2])
    let (k, s) = (depthwiseTaps(convWeight, channels: c) ?? 0, memory.shape[0])
    precondition(normWeight.shape == [c] && normBias.shape == [c] && k >= 1 && convBias.shape == [c]
                 && memory.rank == 2 && memory.shape[1] == c && gateWeight.shape == [2 * c, c] && gateBias.shape == [2 * c],
                 "gatedAssociativeMemory: parameter shapes do not fit C = \(c)")
    let n = x.count / max(c, 1), wide = 2 * c + s
    let (xData, mData, gbData) = (x.data, memory.data, gateBias.data)
    let (gamma, beta, convB) = (normWeight.data, normBias.data, convBias.data)
    var wcat = [T](repeating: 0, count: c * wide)  // [W_g | M^T]  [C, 2C + S]
    for i in 0..<c {
        for j in 0..<(2 * c) { wcat[i * wide + j] = gateWeight.data[j * c + i] }
        for j in 0..<s { wcat[i * wide + 2 * c + j] = mData[j * c + i] }
    }
    var convT = [T](repeating: 0, count: k * c)  // [k, C]: tap-major, channels contiguous
    for i in 0..<c { for j in 0..<k { convT[j * c + i] = convWeight.data[i * k + j] } }
    let xhat = PooledBuffer<T>(count: n * c), xh = PooledBuffer<T>(count: n * c), rstd = PooledBuffer<T>(count: n)
    let gates = PooledBuffer<T>(count: n * 2 * c), local = PooledBuffer<T>(count: n * c), global = PooledBuffer<T>(count: n * c)
    let probs = PooledBuffer<T>(count: n * s)  // P  [N, S]
    var out: [T] = overwrittenArray(count: x.count)
    let workers = TokenBlocks.workers(count: n)

    xData.withUnsafeBufferPointer { xp in mData.withUnsafeBufferPointer { mp in wcat.withUnsafeBufferPointer { wp in
    convT.withUnsafeBufferPointer { cw in convB.withUnsafeBufferPointer { cb in gbData.withUnsafeBufferPointer { gb in
    gamma.withUnsafeBufferPointer { gp in beta.withUnsafeBufferPointer { bp in out.withUnsafeMutableBufferPointer { op in
        let (x, m, w, cw, cb, gb, y) = (xp.baseAddress!, mp.baseAddress!, wp.baseAddress!, cw.baseAddress!, cb.baseAddress!, gb.baseAddress!, op.baseAddress!)
        TokenBlocks.forEach(count: n) { _, r in
            for row in r {
                rstd.pointer[row] = RowLayerNorm.forward(x + row * c, c, gamma: gp.baseAddress!, beta: bp.baseAddress!,
                                                         xhat: xhat.pointer + row * c, y: xh.pointer + row * c)
            }
        }
        let scratch: [PooledBuffer<T>] = TokenBlocks.scratch(workers, TokenBlocks.rows * wide)
        TokenBlocks.forEach(count: n) { worker, r in
            let (rows, r0, h) = (r.count, r.lowerBound, scratch[worker].pointer)
            // [gl, gg, scores] = xh [W_g | M^T]  [rows, 2C + S]
            T.gemm(transA: false, transB: false, m: rows, n: wide, k: c, alpha: 1, a: xh.pointer + r0 * c, lda: c, b: w, ldb: wide,
                   beta: 0, c: h, ldc: wide)
            for i in 0..<rows {
                let (hr, g) = (h + i * wide, gates.pointer + (r0 + i) * 2 * c)
                for j in 0..<(2 * c) { g[j] = FastScalarMath.sigmoid(hr[j] + gb[j]) }
                let (scores, p) = (hr + 2 * c, probs.pointer + (r0 + i) * s)
                let top = RowReduce.max(scores, s)
                for j in 0..<s { p[j] = FastScalarMath.exp(scores[j] - top) }
                let inv = 1 / RowReduce.sum(p, s)
                for j in 0..<s { p[j] *= inv }
            }
            // global = P M  [rows, C]
            T.gemm(transA: false, transB: false, m: rows, n: c, k: s, alpha: 1, a: probs.pointer + r0 * s, lda: s, b: m, ldb: c,
                   beta: 0, c: global.pointer + r0 * c, ldc: c)
            for row in r {
                let t = row % length, loc = local.pointer + row * c
                for ch in 0..<c { loc[ch] = cb[ch] }
                for j in 0..<k where t - (k - 1) + j >= 0 {
                    let src = xh.pointer + (row - (k - 1) + j) * c, tap = cw + j * c
                    for ch in 0..<c { loc[ch] += tap[ch] * src[ch] }
                }
                let (sl, sg, glob, xr, yr) = (gates.pointer + row * 2 * c, gates.pointer + row * 2 * c + c, global.pointer + row * c, x + row * c, y + row * c)
                for ch in 0..<c { yr[ch] = xr[ch] + sl[ch] * loc[ch] + sg[ch] * glob[ch] }
            }
        }
    } } } } } } } } }

    let result = Tensor(shape: x.shape, data: out)
    let inputs = [x, normWeight, normBias, convWeight, convBias, memory, gateWeight, gateBias]
    Tape.record("gam_memory_mixer", inputs: inputs, output: result) { dOut in
        var dx: [T] = overwrittenArray(count: xData.count)
        let dWcat: [PooledBuffer<T>] = TokenBlocks.accumulators(workers, c * wide)
        let dM: [PooledBuffer<T>] = TokenBlocks.accumulators(workers, s * c)
        // per worker: dconv^T [k, C], dconv bias [C], dgamma [C], dbeta [C], dgate bias [2C]
        let dSmall: [PooledBuffer<T>] = TokenBlocks.accumulators(workers, k * c + 5 * c)
        let scratch: [PooledBuffer<T>] = TokenBlocks.scratch(workers, TokenBlocks.rows * (wide + 2 * c) + c)
        dOut.withUnsafeBufferPointer { gp in dx.withUnsafeMutableBufferPointer { dxp in mData.withUnsafeBufferPointer { mp in
        wcat.withUnsafeBufferPointer { wp in convT.withUnsafeBufferPointer { cw in gamma.withUnsafeBufferPointer { gam in
            let (dy, dx, m, w, cw) = (gp.baseAddress!, dxp.baseAddress!, mp.baseAddress!, wp.baseAddress!, cw.baseAddress!)
            TokenBlocks.forEach(count: n) { worker, r in
                let (rows, r0) = (r.count, r.lowerBound)
                let dcat = scratch[worker].pointer, dglobal = dcat + TokenBlocks.rows * wide, dxh = dglobal + TokenBlocks.rows * c
                let lnScratch = dxh + TokenBlocks.rows * c
                let small = dSmall[worker].pointer
                let (dConvT, dConvB, dGamma, dBeta, dGateB) = (small, small + k * c, small + k * c + c, small + k * c + 2 * c, small + k * c + 3 * c)
                for i in 0..<rows {
                    let row = r0 + i
                    let (dyr, gl, gg, loc, glob) = (dy + row * c, gates.pointer + row * 2 * c, gates.pointer + row * 2 * c + c, local.pointer + row * c, global.pointer + row * c)
                    let (dc, dcg, dgl) = (dcat + i * wide, dcat + i * wide + c, dglobal + i * c)
                    for ch in 0..<c {
                        let (sl, sg) = (gl[ch], gg[ch])
                        dc[ch] = dyr[ch] * loc[ch] * sl * (1 - sl)
                        dcg[ch] = dyr[ch] * glob[ch] * sg * (1 - sg)
                        dgl[ch] = dyr[ch] * sg
                    }
                    for j in 0..<(2 * c) { dGateB[j] += dc[j] }
                }
                // dP = dglobal M^T  [rows, S] (into the score columns of dcat);  dM += P^T dglobal  [S, C]
                T.gemm(transA: false, transB: true, m: rows, n: s, k: c, alpha: 1, a: dglobal, lda: c, b: m, ldb: c,
                       beta: 0, c: dcat + 2 * c, ldc: wide)
                T.gemm(transA: true, transB: false, m: s, n: c, k: rows, alpha: 1, a: probs.pointer + r0 * s, lda: s, b: dglobal, ldb: c,
                       beta: 1, c: dM[worker].pointer, ldc: c)
                for i in 0..<rows {  // dscores = P (dP - rowsum(dP P))
                    let (p, dp) = (probs.pointer + (r0 + i) * s, dcat + i * wide + 2 * c)
                    let dot = RowReduce.dot(p, dp, s)
                    for j in 0..<s { dp[j] = p[j] * (dp[j] - dot) }
                }
                // dxh = dcat [W_g | M^T]^T  [rows, C];  d[W_g | M^T] += xh^T dcat  [C, 2C + S]
                T.gemm(transA: false, transB: true, m: rows, n: c, k: wide, alpha: 1, a: dcat, lda: wide, b: w, ldb: wide,
                       beta: 0, c: dxh, ldc: c)
                T.gemm(transA: true, transB: false, m: c, n: wide, k: rows, alpha: 1, a: xh.pointer + r0 * c, lda: c, b: dcat, ldb: wide,
                       beta: 1, c: dWcat[worker].pointer, ldc: wide)
                for i in 0..<rows {  // convolution backward, dlocal_u = dy_u s_l(u)
                    let row = r0 + i, t = row % length
                    let (dyr, sl, dxr) = (dy + row * c, gates.pointer + row * 2 * c, dxh + i * c)
                    for ch in 0..<c { dConvB[ch] += dyr[ch] * sl[ch] }
                    for j in 0..<k where t - (k - 1) + j >= 0 {
                        let src = xh.pointer + (row - (k - 1) + j) * c, d = dConvT + j * c
                        for ch in 0..<c { d[ch] += dyr[ch] * sl[ch] * src[ch] }
                    }
                    for j in 0..<k where t + (k - 1) - j < length {
                        let u = row + (k - 1) - j
                        let (dyu, slu, tap) = (dy + u * c, gates.pointer + u * 2 * c, cw + j * c)
                        for ch in 0..<c { dxr[ch] += tap[ch] * dyu[ch] * slu[ch] }
                    }
                    let dxo = dx + row * c
                    for ch in 0..<c { dxo[ch] = dyr[ch] }
                    RowLayerNorm.backward(dxr, c, xhat: xhat.pointer + row * c, rstd: rstd.pointer[row], gamma: gam.baseAddress!,
                                          dx: dxo, dGamma: dGamma, dBeta: dBeta, scratch: lnScratch)
                }
            }
        } } } } } }
        let wcatGrad = TokenBlocks.reduce(dWcat), small = TokenBlocks.reduce(dSmall)
        var dMemory = TokenBlocks.reduce(dM)
        var dGateW = [T](repeating: 0, count: c * 2 * c), dConv = [T](repeating: 0, count: c * k)
        for i in 0..<c {
            for j in 0..<(2 * c) { dGateW[j * c + i] = wcatGrad[i * wide + j] }
            for j in 0..<s { dMemory[j * c + i] += wcatGrad[i * wide + 2 * c + j] }
            for j in 0..<k { dConv[i * k + j] = small[j * c + i] }
        }
        let at = { (offset: Int, count: Int) in Array(small[(k * c + offset)..<(k * c + offset + count)]) }
        return [dx, at(c, c), at(2 * c, c), dConv, at(0, c), dMemory, dGateW, at(3 * c, 2 * c)]
    }
    return result
}

/// The GAM mixer from basic tape ops (LayerNorm, the causal depthwise convolution op, softmax, matmuls): the
/// obviously right form `gatedAssociativeMemory` is tested against.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceGatedAssociativeMemory<T: TensorScalar>(
    _ x: Tensor<T>, normWeight: Tensor<T>, normBias: Tensor<T>, convWeight: Tensor<T>, convBias: Tensor<T>,
    memory: Tensor<T>, gateWeight: Tensor<T>, gateBias: Tensor<T>
) -> Tensor<T> {
    let c = x.shape[2]
    let xh = x.layerNorm(gamma: normWeight, beta: normBias)
    let local = xh.causalDepthwiseConv1d(weight: convWeight, bias: convBias)
    let global = xh.matmul(memory, transposeOther: true).softmax().matmul(memory)
    let gates = (xh.matmul(gateWeight, transposeOther: true) + gateBias).split(axis: 2, sizes: [c, c])
    return x + gates[0].sigmoid() * local + gates[1].sigmoid() * global
}
