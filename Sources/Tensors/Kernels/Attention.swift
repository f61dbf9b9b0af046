// The `attention` kernel (KERNELS.md): o = softmax(scale q k^T + causal mask) v per batch member and head,
// q, k, v, o all [B, L, H, E] (row t of head h is a strided row: leading dimension H E, which BLAS reads directly).
//
// Blocked over queries (flash-attention's memory pattern): a block of `queryBlock` queries against the keys it may
// see is two GEMMs and a row softmax; only the per-row log-sum-exp is kept, so memory is O(B L H) plus one
// block of scores per thread. Backward recomputes each block's probabilities P = exp(S - lse) and applies
//   dV += P^T dO,  dP = dO V^T,  dS = P (dP - rowsum(dO o)),  dQ = scale dS K,  dK += scale dS^T Q.

private let queryBlock = 64

/// Multi-head scaled dot-product attention on [B, L, H, E] tensors: one tape node.
public func scaledDotProductAttention<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, scale: T? = nil, causal: Bool = true
) -> Tensor<T> {
    precondition(q.rank == 4, "attention: q must be [B, L, H, E], got \(q.shape)")
    precondition(k.shape == q.shape && v.shape == q.shape, "attention: q \(q.shape), k \(k.shape), v \(v.shape) must have one shape")
    let (batch, length, heads, e) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let s = scale ?? 1 / T(e).squareRoot()
    let ld = heads * e
    let qData = q.data, kData = k.data, vData = v.data
    var out = [T](repeating: 0, count: q.count)
    var lse = [T](repeating: 0, count: batch * heads * length)  // [B, H, L]
    let keysVisible = { (blockEnd: Int) in causal ? blockEnd : length }

    qData.withUnsafeBufferPointer { qp in kData.withUnsafeBufferPointer { kp in vData.withUnsafeBufferPointer { vp in
        out.withUnsafeMutableBufferPointer { op in lse.withUnsafeMutableBufferPointer { lp in
            let (qb, kb, vb, ob, lb) = (qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, op.baseAddress!, lp.baseAddress!)
            Parallel.forEach(batch * heads) { item in
                let (b, h) = (item / heads, item % heads)
                let head = b * length * ld + h * e
                let scores = AlignedBuffer<T>(count: queryBlock * length)
                for start in stride(from: 0, to: length, by: queryBlock) {
                    let rows = min(queryBlock, length - start), nk = keysVisible(start + rows)
                    // S = scale Q_blk K^T   [rows, nk]
                    T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: s,
                           a: qb + head + start * ld, lda: ld, b: kb + head, ldb: ld, beta: 0, c: scores.pointer, ldc: nk)
                    for r in 0..<rows {
                        let row = scores.pointer + r * nk
                        if causal { for j in (start + r + 1)..<max(nk, start + r + 1) { row[j] = -T.infinity } }
                        lb[item * length + start + r] = softmaxInPlace(row, nk)
                    }
                    // O_blk = P V   [rows, E]
                    T.gemm(transA: false, transB: false, m: rows, n: e, k: nk, alpha: 1,
                           a: scores.pointer, lda: nk, b: vb + head, ldb: ld, beta: 0, c: ob + head + start * ld, ldc: ld)
                }
            }
        } }
    } } }

    let result = Tensor(shape: q.shape, data: out)
    Tape.record("attention", inputs: [q, k, v], output: result) { dOut in
        var dq = [T](repeating: 0, count: qData.count)
        var dk = [T](repeating: 0, count: qData.count)
        var dv = [T](repeating: 0, count: qData.count)
        qData.withUnsafeBufferPointer { qp in kData.withUnsafeBufferPointer { kp in vData.withUnsafeBufferPointer { vp in
        out.withUnsafeBufferPointer { op in dOut.withUnsafeBufferPointer { gp in
        dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in dv.withUnsafeMutableBufferPointer { dvp in
            let (qb, kb, vb, ob, gb) = (qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, op.baseAddress!, gp.baseAddress!)
            let (dqb, dkb, dvb) = (dqp.baseAddress!, dkp.baseAddress!, dvp.baseAddress!)
            Parallel.forEach(batch * heads) { item in
                let (b, h) = (item / heads, item % heads)
                let head = b * length * ld + h * e
                let p = AlignedBuffer<T>(count: queryBlock * length)
                let dp = AlignedBuffer<T>(count: queryBlock * length)
                for start in stride(from: 0, to: length, by: queryBlock) {
                    let rows = min(queryBlock, length - start), nk = keysVisible(start + rows)
                    T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: s,
                           a: qb + head + start * ld, lda: ld, b: kb + head, ldb: ld, beta: 0, c: p.pointer, ldc: nk)
                    // dP = dO_blk V^T   [rows, nk]
                    T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: 1,
                           a: gb + head + start * ld, lda: ld, b: vb + head, ldb: ld, beta: 0, c: dp.pointer, ldc: nk)
                    for r in 0..<rows {
                        let t = start + r
                        let logZ = lse[item * length + t]
                        var rowDot: T = 0
                        for d in 0..<e { rowDot += gb[head + t * ld + d] * ob[head + t * ld + d] }
                        let pr = p.pointer + r * nk, dpr = dp.pointer + r * nk
                        let visible = causal ? t + 1 : nk
                        for j in 0..<visible {
                            let pj = T.exp(pr[j] - logZ)
                            pr[j] = pj
                            dpr[j] = pj * (dpr[j] - rowDot)  // dS
                        }
                        for j in visible..<nk { pr[j] = 0; dpr[j] = 0 }
                    }
                    // dV += P^T dO_blk;  dQ_blk = scale dS K;  dK += scale dS^T Q_blk
                    T.gemm(transA: true, transB: false, m: nk, n: e, k: rows, alpha: 1,
                           a: p.pointer, lda: nk, b: gb + head + start * ld, ldb: ld, beta: 1, c: dvb + head, ldc: ld)
                    T.gemm(transA: false, transB: false, m: rows, n: e, k: nk, alpha: s,
                           a: dp.pointer, lda: nk, b: kb + head, ldb: ld, beta: 0, c: dqb + head + start * ld, ldc: ld)
                    T.gemm(transA: true, transB: false, m: nk, n: e, k: rows, alpha: s,
                           a: dp.pointer, lda: nk, b: qb + head + start * ld, ldb: ld, beta: 1, c: dkb + head, ldc: ld)
                }
            }
        } } }
        } }
        } } }
        return [dq, dk, dv]
    }
    return result
}

/// In place: softmax of `n` scores (entries of -inf get 0); returns the row's log-sum-exp.
@inline(__always)
private func softmaxInPlace<T: TensorScalar>(_ row: UnsafeMutablePointer<T>, _ n: Int) -> T {
    var m = -T.infinity
    for j in 0..<n { m = max(m, row[j]) }
    var total: T = 0
    for j in 0..<n {
        let e = T.exp(row[j] - m)
        row[j] = e
        total += e
    }
    let inv = 1 / total
    for j in 0..<n { row[j] *= inv }
    return m + T.log(total)
}
