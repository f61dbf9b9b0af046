import Tensors

// Linear attention with one log-gate per head and token: the recurrence of RetNet (constant gates), Mamba-2's SSD
// (Dao & Gu 2024, "Transformers are SSMs", the chunkwise "SSD" algorithm) and the mLSTM. Per batch member and head,
// S in R^{K x V}, g_t <= 0 a scalar:
//     S_t = e^{g_t} S_{t-1} + k_t^T v_t,    o_t = s q_t S_t.
// Chunkwise form, per chunk of C tokens with G = cumsum of g inside the chunk and Gamma = G at its last row:
//     O     = s (e^G * Q) S_prev + (s Q K^T * M) V,      M_ij = e^{G_i - G_j} (j <= i), 0 above the diagonal
//     S_new = e^Gamma S_prev + (e^{Gamma - G} * K)^T V
// Every exponent is <= 0 (G decreases), so no secondary chunking is needed: where GLA's per-channel gates need
// sub-chunks of 16 and a GEMM per pair of sub-chunks, one gate per head makes the intra-chunk scores one GEMM and a
// C x C decay mask (C^2 exponentials per chunk).
// Backward recomputes the chunk-entry states, then sweeps the chunks in reverse carrying dS:
//     A = s Q K^T * M,  dA = tril(dO V^T) * s M,   dV = A^T dO + (e^{Gamma - G} * K) dS,
//     dQ = dA K + s e^G * (dO S_prev^T),   dK = dA^T Q + e^{Gamma - G} * (V dS^T),   dS_prev = e^Gamma dS + (s e^G * Q)^T dO,
// and the gates by the identity of the GLA kernel (q_t appears as q_t e^{G~_t}, k_t as k_t e^{-G~_t}, G~ the
// sequence-wide cumsum; hT carries e^{G~_L}): dG~_t = q_t . dq_t - k_t . dk_t (+ sum(hT * dhT) at t = L), and
// dg = its reverse cumsum.

/// Linear attention with scalar log-gates per head, chunkwise parallel form: one tape node (outputs o and hT).
///
/// - Parameters:
///   - q, k: [B, L, H, K]; v: [B, L, H, V]; g: [B, L, H] log-gates (every entry <= 0).
///   - initialState: h0 [B, H, K, V] (zero if nil). scale: s (default K^-1/2). chunkSize: C (default 64).
/// - Returns: o [B, L, H, V] and hT [B, H, K, V]; the same as `gatedLinearAttention` with g broadcast over K.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func scalarGatedLinearAttention<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, logGates g: Tensor<T>, initialState h0: Tensor<T>? = nil,
    scale: T? = nil, chunkSize: Int = 64
) -> (output: Tensor<T>, finalState: Tensor<T>) {
    precondition(q.rank == 4 && g.shape == Array(q.shape.prefix(3)), "scalar gla: g \(g.shape) must be [B, L, H] for q \(q.shape)")
    let geo = validatedGeometry(q: q, k: k, v: v, g: q, h0: h0)   // (g checked above; q stands in for the [B, L, H, K] gate)
    precondition(!g.data.contains { $0 > 0 }, "scalar gla: log-gates g must be <= 0")
    let grid = ChunkGrid(length: geo.length, chunkSize: chunkSize, subChunkSize: chunkSize)
    let s = scale ?? 1 / T(geo.keyDim).squareRoot()
    let (qData, kData, vData, gData, h0Data) = (q.data, k.data, v.data, g.data, h0?.data)
    var out = [T](repeating: 0, count: geo.batch * geo.length * geo.valueStride)
    var final = h0Data ?? [T](repeating: 0, count: geo.items * geo.keyDim * geo.valueDim)
    qData.withUnsafeBufferPointer { qp in kData.withUnsafeBufferPointer { kp in vData.withUnsafeBufferPointer { vp in
    gData.withUnsafeBufferPointer { gp in out.withUnsafeMutableBufferPointer { op in final.withUnsafeMutableBufferPointer { sp in
        let pointers = ScalarGateChunk<T>.Inputs(q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, g: gp.baseAddress!)
        Parallel.forEach(geo.items) { item in
            let w = ScalarGateChunk<T>(geo: geo, grid: grid, scale: s, item: item, inputs: pointers)
            let S = sp.baseAddress! + geo.stateOffset(item)
            for n in 0..<grid.count { w.forward(chunk: n, state: S, output: op.baseAddress! + w.valueOffset) }
        }
    } } }
    } } }
    let finalState = final
    return recordGatedLinearAttention("scalar_gla", geo: geo, q: q, k: k, v: v, g: g, h0: h0, output: out, finalState: finalState) {
        scalarGLABackward(geo: geo, grid: grid, scale: s, q: qData, k: kData, v: vData, g: gData, h0: h0Data,
                          finalState: finalState, dO: $0, dhT: $1)
    }
}

/// One (batch member, head) item's chunk workspace: decays, scores and decayed rows for one chunk at a time.
final class ScalarGateChunk<T: TensorScalar> {
    struct Inputs: @unchecked Sendable {
        let q, k, v, g: UnsafePointer<T>
    }
    let geo: LinearAttentionGeometry
    let grid: ChunkGrid
    let s: T
    let keyOffset, valueOffset, gateOffset: Int
    let inputs: Inputs
    /// G [C] (chunk cumsum), scores A [C, C] (s M * Q K^T), mask s M [C, C], s e^G * Q and e^{Gamma - G} * K [C, K].
    let G, scores, mask, qDecayed, kDecayed: AlignedBuffer<T>
    var gamma: T = 1
    var first = 0, rows = 0

    init(geo: LinearAttentionGeometry, grid: ChunkGrid, scale: T, item: Int, inputs: Inputs) {
        (self.geo, self.grid, self.s, self.inputs) = (geo, grid, scale, inputs)
        (keyOffset, valueOffset) = (geo.keyOffset(item), geo.valueOffset(item))
        gateOffset = (item / geo.heads) * geo.length * geo.heads + item % geo.heads
        let c = grid.chunkSize
        G = AlignedBuffer(count: c); scores = AlignedBuffer(count: c * c); mask = AlignedBuffer(count: c * c)
        qDecayed = AlignedBuffer(count: c * geo.keyDim); kDecayed = AlignedBuffer(count: c * geo.keyDim)
    }

    var q: UnsafePointer<T> { inputs.q + keyOffset + first * geo.keyStride }
    var k: UnsafePointer<T> { inputs.k + keyOffset + first * geo.keyStride }
    var v: UnsafePointer<T> { inputs.v + valueOffset + first * geo.valueStride }

    /// G (the gates' cumsum inside chunk n), Gamma = e^{G_last} and the decayed keys e^{G_last - G} * K.
    func prepareGates(chunk n: Int) {
        let range = grid.chunk(n)
        (first, rows) = (range.lowerBound, range.count)
        var total: T = 0
        for i in 0..<rows {
            total += inputs.g[gateOffset + (first + i) * geo.heads]
            G.pointer[i] = total
        }
        gamma = T.exp(total)
        for i in 0..<rows {
            let f = T.exp(total - G.pointer[i]), kr = k + i * geo.keyStride, ko = kDecayed.pointer + i * geo.keyDim
            for d in 0..<geo.keyDim { ko[d] = f * kr[d] }
        }
    }

    /// After `prepareGates`: the mask s M, the decayed queries s e^G * Q and the scores A = s M * Q K^T.
    func prepareScores() {
        let (c, kd) = (grid.chunkSize, geo.keyDim)
        for i in 0..<rows {
            let row = mask.pointer + i * c
            for j in 0...i { row[j] = -G.pointer[j] }
            _ = VectorMath.exponentiate(row, count: i + 1, minus: -G.pointer[i])    // e^{G_i - G_j}, each exponent <= 0
            for j in 0...i { row[j] *= s }
            let f = T.exp(G.pointer[i]) * s, qr = q + i * geo.keyStride, qo = qDecayed.pointer + i * kd
            for d in 0..<kd { qo[d] = f * qr[d] }
        }
        T.gemm(transA: false, transB: true, m: rows, n: rows, k: kd, alpha: 1, a: q, lda: geo.keyStride, b: k, ldb: geo.keyStride,
               beta: 0, c: scores.pointer, ldc: c)
        for i in 0..<rows {
            let a = scores.pointer + i * c, m = mask.pointer + i * c
            for j in 0...i { a[j] *= m[j] }
            for j in (i + 1)..<max(i + 1, rows) { a[j] = 0 }
        }
    }

    /// S <- e^Gamma S + (e^{Gamma - G} K)^T V over chunk n.
    func advance(chunk n: Int, state S: UnsafeMutablePointer<T>) {
        prepareGates(chunk: n)
        ChunkState.decayAndAccumulate(S, keyDim: geo.keyDim, valueDim: geo.valueDim, scalarDecay: gamma, a: kDecayed.pointer,
                                      lda: geo.keyDim, b: v, ldb: geo.valueStride, rows: rows)
    }

    /// O = A V + (s e^G Q) S_prev for chunk n, then S <- e^Gamma S + (e^{Gamma - G} K)^T V.
    func forward(chunk n: Int, state S: UnsafeMutablePointer<T>, output o: UnsafeMutablePointer<T>) {
        prepareGates(chunk: n)
        prepareScores()
        let (kd, vd, c) = (geo.keyDim, geo.valueDim, grid.chunkSize)
        let out = o + first * geo.valueStride
        T.gemm(transA: false, transB: false, m: rows, n: vd, k: rows, alpha: 1, a: scores.pointer, lda: c, b: v, ldb: geo.valueStride,
               beta: 0, c: out, ldc: geo.valueStride)
        T.gemm(transA: false, transB: false, m: rows, n: vd, k: kd, alpha: 1, a: qDecayed.pointer, lda: kd, b: S, ldb: vd,
               beta: 1, c: out, ldc: geo.valueStride)
        ChunkState.decayAndAccumulate(S, keyDim: kd, valueDim: vd, scalarDecay: gamma, a: kDecayed.pointer, lda: kd, b: v, ldb: geo.valueStride, rows: rows)
    }
}

/// Backward of the scalar-gate chunked form: [dq, dk, dv, dg, dh0].
private func scalarGLABackward<T: TensorScalar>(
    geo: LinearAttentionGeometry, grid: ChunkGrid, scale s: T, q: [T], k: [T], v: [T], g: [T], h0: [T]?,
    finalState: [T], dO: [T]?, dhT: [T]?
) -> [[T]?] {
    var dq = [T](repeating: 0, count: q.count), dk = [T](repeating: 0, count: k.count)
    var dv = [T](repeating: 0, count: v.count), dg = [T](repeating: 0, count: g.count)
    var dh0 = [T](repeating: 0, count: geo.items * geo.keyDim * geo.valueDim)
    let dOut = dO ?? [T](repeating: 0, count: v.count)
    let (K, V, C) = (geo.keyDim, geo.valueDim, grid.chunkSize)
    q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in g.withUnsafeBufferPointer { gp in
    dOut.withUnsafeBufferPointer { dop in finalState.withUnsafeBufferPointer { hp in
    dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in dv.withUnsafeMutableBufferPointer { dvp in
    dg.withUnsafeMutableBufferPointer { dgp in dh0.withUnsafeMutableBufferPointer { dhp in
        let pointers = ScalarGateChunk<T>.Inputs(q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, g: gp.baseAddress!)
        let (dqb, dkb, dvb, dgb) = (dqp.baseAddress!, dkp.baseAddress!, dvp.baseAddress!, dgp.baseAddress!)
        Parallel.forEach(geo.items) { item in
            let w = ScalarGateChunk<T>(geo: geo, grid: grid, scale: s, item: item, inputs: pointers)
            let sOff = geo.stateOffset(item)
            // 1. The state entering every chunk: states[n] [K, V].
            let states = AlignedBuffer<T>(count: grid.count * K * V)
            let S = AlignedBuffer<T>(count: K * V)
            if let h0 { for i in 0..<(K * V) { S.pointer[i] = h0[sOff + i] } }
            for n in 0..<grid.count {
                (states.pointer + n * K * V).update(from: S.pointer, count: K * V)
                if n + 1 < grid.count { w.advance(chunk: n, state: S.pointer) }
            }
            // 2. Reverse sweep carrying dS.
            let dS = AlignedBuffer<T>(count: K * V)
            if let dhT { for i in 0..<(K * V) { dS.pointer[i] = dhT[sOff + i] } }
            let dA = AlignedBuffer<T>(count: C * C), tmp = AlignedBuffer<T>(count: C * K)
            for n in stride(from: grid.count - 1, through: 0, by: -1) {
                w.prepareGates(chunk: n)
                w.prepareScores()
                let rows = w.rows, Sprev = states.pointer + n * K * V
                let dOc = dop.baseAddress! + w.valueOffset + w.first * geo.valueStride
                let (dqc, dkc, dvc) = (dqb + w.keyOffset + w.first * geo.keyStride, dkb + w.keyOffset + w.first * geo.keyStride,
                                       dvb + w.valueOffset + w.first * geo.valueStride)
                // dV = A^T dO + (e^{Gamma - G} K) dS
                T.gemm(transA: true, transB: false, m: rows, n: V, k: rows, alpha: 1, a: w.scores.pointer, lda: C, b: dOc, ldb: geo.valueStride,
                       beta: 0, c: dvc, ldc: geo.valueStride)
                T.gemm(transA: false, transB: false, m: rows, n: V, k: K, alpha: 1, a: w.kDecayed.pointer, lda: K, b: dS.pointer, ldb: V,
                       beta: 1, c: dvc, ldc: geo.valueStride)
                // dA = tril(dO V^T) * s M
                T.gemm(transA: false, transB: true, m: rows, n: rows, k: V, alpha: 1, a: dOc, lda: geo.valueStride, b: w.v, ldb: geo.valueStride,
                       beta: 0, c: dA.pointer, ldc: C)
                for i in 0..<rows {
                    let a = dA.pointer + i * C, m = w.mask.pointer + i * C
                    for j in 0...i { a[j] *= m[j] }
                    for j in (i + 1)..<max(i + 1, rows) { a[j] = 0 }
                }
                // dQ = dA K + s e^G * (dO S_prev^T)
                T.gemm(transA: false, transB: false, m: rows, n: K, k: rows, alpha: 1, a: dA.pointer, lda: C, b: w.k, ldb: geo.keyStride,
                       beta: 0, c: dqc, ldc: geo.keyStride)
                T.gemm(transA: false, transB: true, m: rows, n: K, k: V, alpha: 1, a: dOc, lda: geo.valueStride, b: Sprev, ldb: V,
                       beta: 0, c: tmp.pointer, ldc: K)
                for i in 0..<rows {
                    let f = s * T.exp(w.G.pointer[i]), row = dqc + i * geo.keyStride, t = tmp.pointer + i * K
                    for d in 0..<K { row[d] += f * t[d] }
                }
                // dK = dA^T Q + e^{Gamma - G} * (V dS^T)
                T.gemm(transA: true, transB: false, m: rows, n: K, k: rows, alpha: 1, a: dA.pointer, lda: C, b: w.q, ldb: geo.keyStride,
                       beta: 0, c: dkc, ldc: geo.keyStride)
                T.gemm(transA: false, transB: true, m: rows, n: K, k: V, alpha: 1, a: w.v, lda: geo.valueStride, b: dS.pointer, ldb: V,
                       beta: 0, c: tmp.pointer, ldc: K)
                let total = w.G.pointer[rows - 1]
                for i in 0..<rows {
                    let f = T.exp(total - w.G.pointer[i]), row = dkc + i * geo.keyStride, t = tmp.pointer + i * K
                    for d in 0..<K { row[d] += f * t[d] }
                }
                // dS_prev = e^Gamma dS + (s e^G Q)^T dO
                ChunkState.decayAndAccumulate(dS.pointer, keyDim: K, valueDim: V, scalarDecay: w.gamma, a: w.qDecayed.pointer, lda: K,
                                              b: dOc, ldb: geo.valueStride, rows: rows)
                // dG~_t = q_t . dq_t - k_t . dk_t
                for i in 0..<rows {
                    let (qr, kr) = (w.q + i * geo.keyStride, w.k + i * geo.keyStride)
                    let (dqr, dkr) = (dqc + i * geo.keyStride, dkc + i * geo.keyStride)
                    var acc: T = 0
                    for d in 0..<K { acc += qr[d] * dqr[d] - kr[d] * dkr[d] }
                    dgb[w.gateOffset + (w.first + i) * geo.heads] = acc
                }
            }
            if h0 != nil { (dhp.baseAddress! + sOff).update(from: dS.pointer, count: K * V) }
            // dg = reverse cumsum of dG~, with sum(hT dhT) reaching the last token.
            var tail: T = 0
            if let dhT { for i in 0..<(K * V) { tail += hp[sOff + i] * dhT[sOff + i] } }
            var running = tail
            for t in stride(from: geo.length - 1, through: 0, by: -1) {
                let at = w.gateOffset + t * geo.heads
                running += dgb[at]
                dgb[at] = running
            }
        }
    } } }
    } } } } }
    } } }
    return [dq, dk, dv, dg, h0 == nil ? nil : dh0]
}
