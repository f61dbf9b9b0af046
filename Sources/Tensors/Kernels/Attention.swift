// The `attention` kernel (KERNELS.md): o = softmax(scale q k^T + causal mask) v per batch member and head,
// q [B, Lq, H, E], k and v [B, Lk, H, E], o [B, Lq, H, E] (row t of head h is a strided row: leading dimension
// H E, which BLAS reads directly). Lk >= Lq serves a KV cache: query i sits at position Lk - Lq + i, so the causal
// mask lets it see keys 0...(Lk - Lq + i). Lq = Lk is the training case.
//
// Flash attention (Dao et al. 2022, "FlashAttention"; FlashAttention-2 for the loop order), on the CPU:
// forward, per query block Q_b and key block K_c (only blocks the mask leaves partly visible):
//   S = scale Q_b K_c^T;  m' = max(m, rowmax S);  P = exp(S - m');  l = e^{m - m'} l + rowsum P;
//   O_b = e^{m - m'} O_b + P V_c;  finally O_b = O_b / l and the log-sum-exp lse = m + log l is kept.
// Memory is O(B L H) plus one score block per thread. Backward recomputes P = exp(S - lse) block by block:
//   dV_c += P^T dO_b,  dP = dO_b V_c^T,  dS = P (dP - rowsum(dO o)),  dQ_b += scale dS K_c,  dK_c += scale dS^T Q_b.
// The two or five products per block are BLAS GEMMs (blocks large enough for BLAS to run near its peak); the
// exps go through `VectorMath`'s polynomial exp on 16-wide vectors.

/// Queries per block.
private let queryBlock = 128
/// Keys per block (a score block is queryBlock x keyBlock: 128 KB in Float32, resident in L2).
private let keyBlock = 256

/// Multi-head scaled dot-product attention on [B, L, H, E] tensors (flash-attention blocking): one tape node.
/// q [B, Lq, H, E], k, v [B, Lk, H, E] with Lk >= Lq; with `causal`, query i sees keys j <= Lk - Lq + i.
public func scaledDotProductAttention<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, scale: T? = nil, causal: Bool = true
) -> Tensor<T> {
    precondition(q.rank == 4, "attention: q must be [B, L, H, E], got \(q.shape)")
    precondition(k.shape == v.shape, "attention: k \(k.shape) and v \(v.shape) must have one shape")
    precondition(k.rank == 4 && k.shape[0] == q.shape[0] && k.shape[2] == q.shape[2] && k.shape[3] == q.shape[3] && k.shape[1] >= q.shape[1],
                 "attention: k \(k.shape) must be [B, Lk, H, E] with Lk >= Lq for q \(q.shape)")
    let geometry = AttentionGeometry(batch: q.shape[0], queries: q.shape[1], keys: k.shape[1], heads: q.shape[2],
                                     headDim: q.shape[3], causal: causal)
    let s = scale ?? 1 / T(geometry.headDim).squareRoot()
    let qData = q.data, kData = k.data, vData = v.data
    let (out, lse) = attentionForward(geometry, scale: s, q: qData, k: kData, v: vData)
    let result = Tensor(shape: q.shape, data: out)
    Tape.record("attention", inputs: [q, k, v], output: result) { dOut in
        attentionBackward(geometry, scale: s, q: qData, k: kData, v: vData, o: out, lse: lse, dO: dOut)
    }
    return result
}

/// Sizes and mask of one attention call.
struct AttentionGeometry {
    let batch, queries, keys, heads, headDim: Int
    let causal: Bool
    /// Row stride of q, k, v, o: H E.
    var rowStride: Int { heads * headDim }
    /// Position of query 0 among the keys (Lk - Lq).
    var offset: Int { keys - queries }
    /// The number of keys query i may see.
    @inline(__always) func visibleKeys(query i: Int) -> Int { causal ? min(keys, offset + i + 1) : keys }
}

/// Forward pass: o [B, Lq, H, E] and the row log-sum-exp [B, H, Lq].
private func attentionForward<T: TensorScalar>(
    _ g: AttentionGeometry, scale s: T, q: [T], k: [T], v: [T]
) -> ([T], [T]) {
    var out = [T](repeating: 0, count: q.count)
    var lse = [T](repeating: 0, count: g.batch * g.heads * g.queries)
    let (ld, e) = (g.rowStride, g.headDim)
    let queryBlocks = (g.queries + queryBlock - 1) / queryBlock
    q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
    out.withUnsafeMutableBufferPointer { op in lse.withUnsafeMutableBufferPointer { lp in
        let (qb, kb, vb, ob, lb) = (qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, op.baseAddress!, lp.baseAddress!)
        // Work items: (batch member, head, query block); blocks are independent in the forward pass.
        Parallel.forEach(g.batch * g.heads * queryBlocks) { work in
            let item = work / queryBlocks, block = work % queryBlocks
            let (b, h) = (item / g.heads, item % g.heads)
            let qHead = b * g.queries * ld + h * e, kHead = b * g.keys * ld + h * e
            let start = block * queryBlock, rows = min(queryBlock, g.queries - start)
            let scores = AlignedBuffer<T>(count: queryBlock * keyBlock)  // [rows, keyBlock]
            let acc = AlignedBuffer<T>(count: queryBlock * e)            // [rows, E], unnormalised O
            var rowMax = [T](repeating: -T.infinity, count: rows), rowSum = [T](repeating: 0, count: rows)
            let lastVisible = g.visibleKeys(query: start + rows - 1)
            for k0 in stride(from: 0, to: lastVisible, by: keyBlock) {
                let nk = min(keyBlock, lastVisible - k0)
                // S = scale Q_b K_c^T   [rows, nk]
                T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: s,
                       a: qb + qHead + start * ld, lda: ld, b: kb + kHead + k0 * ld, ldb: ld, beta: 0, c: scores.pointer, ldc: nk)
                for r in 0..<rows {
                    let row = scores.pointer + r * nk
                    let visible = max(0, min(nk, g.visibleKeys(query: start + r) - k0))
                    for j in visible..<nk { row[j] = 0 }
                    if visible == 0 { continue }
                    let mOld = rowMax[r]
                    let mNew = max(mOld, VectorMath.maximum(row, count: visible))
                    let total = VectorMath.exponentiate(row, count: visible, minus: mNew)
                    if k0 > 0 && mNew > mOld {  // rescale what earlier key blocks accumulated
                        let alpha = VectorMath.exp(mOld - mNew)
                        rowSum[r] *= alpha
                        let accRow = acc.pointer + r * e
                        for d in 0..<e { accRow[d] *= alpha }
                    }
                    rowMax[r] = mNew
                    rowSum[r] += total
                }
                // O_b (+)= P V_c   [rows, E]
                T.gemm(transA: false, transB: false, m: rows, n: e, k: nk, alpha: 1,
                       a: scores.pointer, lda: nk, b: vb + kHead + k0 * ld, ldb: ld, beta: k0 == 0 ? 0 : 1, c: acc.pointer, ldc: e)
            }
            for r in 0..<rows {
                let inv = 1 / rowSum[r]
                let dst = ob + qHead + (start + r) * ld, src = acc.pointer + r * e
                for d in 0..<e { dst[d] = src[d] * inv }
                lb[item * g.queries + start + r] = rowMax[r] + T.log(rowSum[r])
            }
        }
    } }
    } } }
    return (out, lse)
}

/// Backward pass: [dq, dk, dv] from dO, recomputing each block's probabilities from the saved log-sum-exp.
private func attentionBackward<T: TensorScalar>(
    _ g: AttentionGeometry, scale s: T, q: [T], k: [T], v: [T], o: [T], lse: [T], dO: [T]
) -> [[T]?] {
    var dq = [T](repeating: 0, count: q.count)
    var dk = [T](repeating: 0, count: k.count)
    var dv = [T](repeating: 0, count: k.count)
    let (ld, e) = (g.rowStride, g.headDim)
    // rowsum(dO o) per query row: [B, H, Lq]
    var rowDot = [T](repeating: 0, count: lse.count)
    for b in 0..<g.batch { for t in 0..<g.queries { for h in 0..<g.heads {
        let base = (b * g.queries + t) * ld + h * e
        var acc: T = 0
        for d in 0..<e { acc += dO[base + d] * o[base + d] }
        rowDot[(b * g.heads + h) * g.queries + t] = acc
    } } }
    q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
    dO.withUnsafeBufferPointer { gp in lse.withUnsafeBufferPointer { lp in rowDot.withUnsafeBufferPointer { rp in
    dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in dv.withUnsafeMutableBufferPointer { dvp in
        let (qb, kb, vb, gb) = (qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, gp.baseAddress!)
        let (dqb, dkb, dvb, lb, rb) = (dqp.baseAddress!, dkp.baseAddress!, dvp.baseAddress!, lp.baseAddress!, rp.baseAddress!)
        // One work item per (batch member, head): its key blocks accumulate dK, dV from every query block.
        Parallel.forEach(g.batch * g.heads) { item in
            let (b, h) = (item / g.heads, item % g.heads)
            let qHead = b * g.queries * ld + h * e, kHead = b * g.keys * ld + h * e
            let p = AlignedBuffer<T>(count: queryBlock * keyBlock)   // P block
            let dp = AlignedBuffer<T>(count: queryBlock * keyBlock)  // dP, then dS
            for start in stride(from: 0, to: g.queries, by: queryBlock) {
                let rows = min(queryBlock, g.queries - start)
                let (qRows, gRows) = (qb + qHead + start * ld, gb + qHead + start * ld)
                let lastVisible = g.visibleKeys(query: start + rows - 1)
                for k0 in stride(from: 0, to: lastVisible, by: keyBlock) {
                    let nk = min(keyBlock, lastVisible - k0)
                    let (kRows, vRows) = (kb + kHead + k0 * ld, vb + kHead + k0 * ld)
                    // S = scale Q_b K_c^T;  dP = dO_b V_c^T   [rows, nk]
                    T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: s,
                           a: qRows, lda: ld, b: kRows, ldb: ld, beta: 0, c: p.pointer, ldc: nk)
                    T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: 1,
                           a: gRows, lda: ld, b: vRows, ldb: ld, beta: 0, c: dp.pointer, ldc: nk)
                    for r in 0..<rows {
                        let t = start + r
                        let visible = max(0, min(nk, g.visibleKeys(query: t) - k0))
                        let pr = p.pointer + r * nk, dpr = dp.pointer + r * nk
                        VectorMath.softmaxBackwardRow(scores: pr, gradients: dpr, count: visible,
                                                      logZ: lb[item * g.queries + t], rowDot: rb[item * g.queries + t])
                        for j in visible..<nk { pr[j] = 0; dpr[j] = 0 }
                    }
                    // dV_c += P^T dO_b;  dQ_b += scale dS K_c;  dK_c += scale dS^T Q_b
                    T.gemm(transA: true, transB: false, m: nk, n: e, k: rows, alpha: 1,
                           a: p.pointer, lda: nk, b: gRows, ldb: ld, beta: 1, c: dvb + kHead + k0 * ld, ldc: ld)
                    T.gemm(transA: false, transB: false, m: rows, n: e, k: nk, alpha: s,
                           a: dp.pointer, lda: nk, b: kRows, ldb: ld, beta: 1, c: dqb + qHead + start * ld, ldc: ld)
                    T.gemm(transA: true, transB: false, m: nk, n: e, k: rows, alpha: s,
                           a: dp.pointer, lda: nk, b: qRows, ldb: ld, beta: 1, c: dkb + kHead + k0 * ld, ldc: ld)
                }
            }
        }
    } } }
    } } }
    } } }
    return [dq, dk, dv]
}

/// Floating-point operations of one attention forward and backward pass (the GEMMs only, counting the
/// backward's recomputation of S, and only the blocks the causal mask leaves partly visible), for throughput figures.
public func attentionFlops(batch: Int, length: Int, heads: Int, headDim: Int, causal: Bool = true) -> (forward: Double, backward: Double) {
    var pairs = 0.0  // (query, key) pairs computed, block-granular as the kernel does
    for start in stride(from: 0, to: length, by: queryBlock) {
        let rows = min(queryBlock, length - start)
        pairs += Double(rows * (causal ? min(length, start + rows) : length))
    }
    let perPair = 2.0 * Double(headDim) * Double(batch * heads)
    return (2 * perPair * pairs, 5 * perPair * pairs)
}
