import Tensors

// Gated linear attention (Yang, Wang, Shen, Panda, Kim 2024, "Gated Linear Attention Transformers with
// Hardware-Efficient Training", section 4), chunkwise parallel form with secondary chunking. Per batch member and
// head, state S in R^{K x V}, log-gates g_t in R^K (<= 0):
//     S_t = diag(exp g_t) S_{t-1} + k_t^T v_t,    o_t = s q_t S_t.
// Per chunk of C tokens with G = cumsum of g inside the chunk, Gamma = G at the chunk's last row:
//     O     = (s Q * e^G) S_prev + A V                          (inter-chunk + intra-chunk)
//     S_new = diag(e^Gamma) S_prev + (K * e^{Gamma - G})^T V    (the state pass, `ChunkState`)
//     A_ij  = s sum_d Q_id K_jd e^{G_id - G_jd} for j <= i.
// A is built from sub-chunks of c tokens: for a sub-chunk I and the rows before it, with r = G at I's first row,
// A_{I,<I} = s (Q_I * e^{G_I - r}) (K_{<I} * e^{r - G_{<I}})^T (every exponent <= 0, so strong gates never
// overflow); the diagonal sub-blocks take e^{G_i - G_j} elementwise. All products are BLAS GEMMs.
//
// Backward recomputes the chunk states (one forward state pass, keeping S per chunk, not per token), then sweeps
// the chunks in reverse carrying dS (dS_prev = diag(e^Gamma) dS + (s Q e^G)^T dO):
//     dV = A^T dO + (K e^{Gamma - G}) dS,   dQ = s e^G * (dO S_prev^T) + intra,   dK = e^{Gamma - G} * (V dS^T) + intra,
//     dA = tril(dO V^T),   intra: dQ_i += s sum_j dA_ij K_j e^{G_i - G_j},  dK_j += s sum_i dA_ij Q_i e^{G_i - G_j}.
// The gates: q_t always appears as q_t e^{G~_t} and k_t as k_t e^{-G~_t} (G~ = cumsum over the whole sequence),
// and hT carries e^{G~_L}, so dG~_t = q_t dq_t - k_t dk_t (+ rowsum(hT dhT) at t = L), and dg = its reverse cumsum.

/// Gated linear attention in the chunkwise parallel form: one tape node (outputs o and the final state).
///
/// - Parameters:
///   - q, k: [B, L, H, K]; v: [B, L, H, V]; g: [B, L, H, K] log-gates (every entry <= 0).
///   - initialState: h0 [B, H, K, V] (zero if nil).
///   - scale: s (default K^-1/2). chunkSize: C (default 64). subChunkSize: c (default 16; at most C).
/// - Returns: o [B, L, H, V] and hT [B, H, K, V].
@_specialize(where T == Float)
@_specialize(where T == Double)
public func gatedLinearAttention<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, logGates g: Tensor<T>, initialState h0: Tensor<T>? = nil,
    scale: T? = nil, chunkSize: Int = 64, subChunkSize: Int = 16
) -> (output: Tensor<T>, finalState: Tensor<T>) {
    let geo = validatedGeometry(q: q, k: k, v: v, g: g, h0: h0)
    // A positive log-gate is a caller's bug; NaN or -inf (a diverged model's gates) propagate as NaN outputs for the
    // trainer's divergence stop to report (`seqlab op` refuses non-finite gates before reaching here).
    precondition(!g.data.contains { $0 > 0 }, "gla: log-gates g must be <= 0")
    let grid = ChunkGrid(length: geo.length, chunkSize: chunkSize, subChunkSize: subChunkSize)
    let s = scale ?? 1 / T(geo.keyDim).squareRoot()
    let (qData, kData, vData, gData, h0Data) = (q.data, k.data, v.data, g.data, h0?.data)
    var out = [T](repeating: 0, count: geo.batch * geo.length * geo.valueStride)
    var final = h0Data ?? [T](repeating: 0, count: geo.items * geo.keyDim * geo.valueDim)

    qData.withUnsafeBufferPointer { qp in kData.withUnsafeBufferPointer { kp in vData.withUnsafeBufferPointer { vp in
    gData.withUnsafeBufferPointer { gp in out.withUnsafeMutableBufferPointer { op in final.withUnsafeMutableBufferPointer { sp in
        let (qb, kb, vb, gb, ob, sb) = (qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, gp.baseAddress!, op.baseAddress!, sp.baseAddress!)
        Parallel.forEach(geo.items) { item in
            let w = GLAChunkWorkspace<T>(geo: geo, grid: grid, scale: s)
            let (kOff, vOff) = (geo.keyOffset(item), geo.valueOffset(item))
            let S = sb + geo.stateOffset(item)  // [K, V], starts as h0, ends as hT
            for n in 0..<grid.count {
                let rows = grid.chunk(n)
                let at = w.bind(q: qb + kOff, k: kb + kOff, v: vb + vOff, g: gb + kOff, first: rows.lowerBound, rows: rows.count)
                w.prepareDecays(at)
                // O = (s Q e^G) S_prev   [rows, V]
                T.gemm(transA: false, transB: false, m: at.rows, n: geo.valueDim, k: geo.keyDim, alpha: 1,
                       a: w.qDecayed.pointer, lda: geo.keyDim, b: S, ldb: geo.valueDim, beta: 0, c: ob + vOff + at.first * geo.valueStride, ldc: geo.valueStride)
                // O += A V   [rows, V]
                w.intraChunkScores(at)
                T.gemm(transA: false, transB: false, m: at.rows, n: geo.valueDim, k: at.rows, alpha: 1,
                       a: w.scores.pointer, lda: grid.chunkSize, b: at.v, ldb: geo.valueStride, beta: 1, c: ob + vOff + at.first * geo.valueStride, ldc: geo.valueStride)
                // S = diag(e^Gamma) S + (K e^{Gamma - G})^T V
                ChunkState.decayAndAccumulate(S, keyDim: geo.keyDim, valueDim: geo.valueDim, gamma: w.chunkDecay.pointer,
                                              a: w.kDecayed.pointer, lda: geo.keyDim, b: at.v, ldb: geo.valueStride, rows: at.rows)
            }
        }
    } } }
    } } }

    let finalState = final
    return recordGatedLinearAttention("gla", geo: geo, q: q, k: k, v: v, g: g, h0: h0, output: out, finalState: finalState) {
        glaBackward(geo: geo, grid: grid, scale: s, q: qData, k: kData, v: vData, g: gData, h0: h0Data,
                    finalState: finalState, dO: $0, dhT: $1)
    }
}

/// Shapes of the fla signature, or a precondition failure naming the offending tensor.
func validatedGeometry<T>(q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, g: Tensor<T>, h0: Tensor<T>?) -> LinearAttentionGeometry {
    precondition(q.rank == 4, "gla: q must be [B, L, H, K], got \(q.shape)")
    precondition(k.shape == q.shape && g.shape == q.shape, "gla: k \(k.shape) and g \(g.shape) must match q \(q.shape)")
    precondition(v.rank == 4 && Array(v.shape.prefix(3)) == Array(q.shape.prefix(3)), "gla: v \(v.shape) must be [B, L, H, V] for q \(q.shape)")
    let geo = LinearAttentionGeometry(batch: q.shape[0], length: q.shape[1], heads: q.shape[2], keyDim: q.shape[3], valueDim: v.shape[3])
    if let h0 { precondition(h0.shape == [geo.batch, geo.heads, geo.keyDim, geo.valueDim], "gla: h0 \(h0.shape) must be [B, H, K, V]") }
    return geo
}

/// Backward of the chunked form: [dq, dk, dv, dg, dh0] (dh0 nil without an initial state).
private func glaBackward<T: TensorScalar>(
    geo: LinearAttentionGeometry, grid: ChunkGrid, scale s: T, q: [T], k: [T], v: [T], g: [T], h0: [T]?,
    finalState: [T], dO: [T]?, dhT: [T]?
) -> [[T]?] {
    var dq = [T](repeating: 0, count: q.count), dk = [T](repeating: 0, count: k.count)
    var dv = [T](repeating: 0, count: v.count), dg = [T](repeating: 0, count: g.count)
    var dh0 = [T](repeating: 0, count: geo.items * geo.keyDim * geo.valueDim)
    let dOut = dO ?? [T](repeating: 0, count: v.count)
    let (K, V) = (geo.keyDim, geo.valueDim)
    q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in g.withUnsafeBufferPointer { gp in
    dOut.withUnsafeBufferPointer { dop in finalState.withUnsafeBufferPointer { hp in
    dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in dv.withUnsafeMutableBufferPointer { dvp in
    dg.withUnsafeMutableBufferPointer { dgp in dh0.withUnsafeMutableBufferPointer { dhp in
        let (qb, kb, vb, gb, gob, hb) = (qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, gp.baseAddress!, dop.baseAddress!, hp.baseAddress!)
        let (dqb, dkb, dvb, dgb, dhb) = (dqp.baseAddress!, dkp.baseAddress!, dvp.baseAddress!, dgp.baseAddress!, dhp.baseAddress!)
        Parallel.forEach(geo.items) { item in
            let w = GLAChunkWorkspace<T>(geo: geo, grid: grid, scale: s)
            let (kOff, vOff, sOff) = (geo.keyOffset(item), geo.valueOffset(item), geo.stateOffset(item))
            let bind = { (n: Int) in
                let rows = grid.chunk(n)
                return w.bind(q: qb + kOff, k: kb + kOff, v: vb + vOff, g: gb + kOff, first: rows.lowerBound, rows: rows.count)
            }
            // 1. Recompute the state entering every chunk: states[n] [K, V].
            let states = AlignedBuffer<T>(count: grid.count * K * V)
            let S = w.state.pointer
            if let h0 { for i in 0..<(K * V) { S[i] = h0[sOff + i] } } else { for i in 0..<(K * V) { S[i] = 0 } }
            for n in 0..<grid.count {
                (states.pointer + n * K * V).update(from: S, count: K * V)
                let at = bind(n)
                w.prepareDecays(at)
                ChunkState.decayAndAccumulate(S, keyDim: K, valueDim: V, gamma: w.chunkDecay.pointer,
                                              a: w.kDecayed.pointer, lda: K, b: at.v, ldb: geo.valueStride, rows: at.rows)
            }
            // 2. Reverse sweep carrying dS (the gradient of the state leaving the current chunk).
            let dS = w.state.pointer
            if let dhT { for i in 0..<(K * V) { dS[i] = dhT[sOff + i] } } else { for i in 0..<(K * V) { dS[i] = 0 } }
            for n in stride(from: grid.count - 1, through: 0, by: -1) {
                let at = bind(n)
                w.prepareDecays(at)
                w.intraChunkScores(at)
                w.chunkGradients(at, statePrev: states.pointer + n * K * V, dState: dS, dO: gob + vOff + at.first * geo.valueStride,
                                 dq: dqb + kOff + at.first * geo.keyStride, dk: dkb + kOff + at.first * geo.keyStride,
                                 dv: dvb + vOff + at.first * geo.valueStride)
                ChunkState.decayAndAccumulate(dS, keyDim: K, valueDim: V, gamma: w.chunkDecay.pointer, a: w.qDecayed.pointer, lda: K,
                                              b: gob + vOff + at.first * geo.valueStride, ldb: geo.valueStride, rows: at.rows)
            }
            (dhb + sOff).update(from: dS, count: K * V)
            // 3. Gates: dG~_t = q_t dq_t - k_t dk_t, plus rowsum(hT dhT) at the end; dg = reverse cumsum.
            let ld = geo.keyStride
            for t in 0..<geo.length {
                let o = kOff + t * ld
                for d in 0..<K { dgb[o + d] = qb[o + d] * dqb[o + d] - kb[o + d] * dkb[o + d] }
            }
            var tail = [T](repeating: 0, count: K)
            if let dhT {
                for d in 0..<K { for j in 0..<V { tail[d] += hb[sOff + d * V + j] * dhT[sOff + d * V + j] } }
            }
            reverseCumulativeSum(dgb + kOff, ld: ld, rows: geo.length, width: K, tail: tail)
        }
    } }
    } } }
    } }
    } } } }
    return [dq, dk, dv, dg, h0 == nil ? nil : dh0]
}

/// Floating-point operations of the chunked GLA kernel (products and the diagonal sub-blocks' multiply-adds, as
/// this implementation performs them), forward and backward (which recomputes the chunk states and scores).
public func glaChunkFlops(batch: Int, length: Int, heads: Int, keyDim K: Int, valueDim V: Int,
                          chunkSize: Int = 64, subChunkSize: Int = 16) -> (forward: Double, backward: Double) {
    let grid = ChunkGrid(length: length, chunkSize: chunkSize, subChunkSize: subChunkSize)
    var forward = 0.0, backward = 0.0
    for c in 0..<grid.count {
        let n = Double(grid.chunk(c).count)
        var offDiagonal = 0.0, diagonal = 0.0
        for i0 in stride(from: 0, to: grid.chunk(c).count, by: grid.subChunkSize) {
            let rows = Double(min(grid.subChunkSize, grid.chunk(c).count - i0))
            offDiagonal += 2 * rows * Double(i0) * Double(K)
            diagonal += rows * (rows + 1) / 2 * 3 * Double(K)
        }
        let (kv, nnv) = (2 * n * Double(K * V), 2 * n * n * Double(V))
        forward += kv + nnv + kv + offDiagonal + diagonal                 // inter, A V, state, A
        backward += kv + offDiagonal + diagonal + nnv + (nnv + kv) + 2 * kv + 2 * offDiagonal + 2 * diagonal + kv
    }
    let items = Double(batch * heads)
    return (forward * items, backward * items)
}
