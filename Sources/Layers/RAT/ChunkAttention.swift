import Tensors

// RAT's attention across chunks (Wei et al. 2025, eq. 3). With c(t) = floor(t / C) the chunk of position t, the
// query at t attends over the chunk-end states (kt, vt at positions jC + C - 1) of the strictly earlier chunks
// j < c(t), plus its own partial state (kt_t, vt_t):
//   s_j = scale <R(c(t)) q_t, R(j) kt_{jC+C-1}>,   s_self = scale <q_t, kt_t>  (same rotation on both sides),
//   o_t = (sum_{j < c(t)} e^{s_j} vt_{jC+C-1} + e^{s_self} vt_t) / (sum_j e^{s_j} + e^{s_self}),
// one softmax over c(t) + 1 scores: the two parts merge exactly, by log-sum-exp. R is the rotary embedding by chunk
// index. Chunk size 1 is causal softmax attention; a chunk as long as the sequence leaves o_t = vt_t (a gated RNN).
//
// Blocked like the `attention` kernel: per batch member and head, a block of queries (64 rows, whole chunks) is two
// GEMMs against the chunk-end keys/values it may see and a row softmax; only the row log-sum-exp is kept, so
// memory is O(B L H) plus one block of scores per thread and the work O(L * L / C * E). Backward recomputes
// P = exp(S - lse) and applies dVe += P^T dO, dP = dO Ve^T, dS = P (dP - rowsum(dO o)), dQ = scale dS Ke,
// dKe += scale dS^T Q, plus the self terms; rotated gradients are rotated back.

/// The query rows of one block: whole chunks, at least 64 rows when chunks are short.
@inline(__always) private func blockRows(chunkSize: Int, length: Int) -> Int {
    min(max(1, 64 / chunkSize) * chunkSize, max(length, 1))
}

/// RAT's inter-chunk attention: q [B, L, G, E] (query groups; head h reads group h mod G), k and v [B, L, H, E]
/// (the partial states kt, vt of the chunked recurrence) -> o [B, L, H, E]. Rotary positions by chunk index when
/// `ropeBase` is set. One tape node with a hand-written backward.
public func chunkAttention<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, chunkSize: Int, scale: T? = nil, ropeBase: Double? = 10_000
) -> Tensor<T> {
    precondition(q.rank == 4 && k.rank == 4 && v.shape == k.shape, "chunkAttention: q \(q.shape) must be [B, L, G, E], k \(k.shape) and v \(v.shape) one [B, L, H, E] shape")
    let (batch, length, groups, e) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let heads = k.shape[2]
    precondition(k.shape[0] == batch && k.shape[1] == length && k.shape[3] == e && groups > 0 && heads % groups == 0,
                 "chunkAttention: q \(q.shape) and k \(k.shape) disagree (need the same B, L, E and G dividing H)")
    precondition(chunkSize >= 1, "chunkAttention: chunk size \(chunkSize) must be positive")
    let s = scale ?? 1 / T(e).squareRoot()
    let chunks = (length + chunkSize - 1) / chunkSize, ends = max(chunks - 1, 0)
    let rowsPerBlock = blockRows(chunkSize: chunkSize, length: length)
    let rotary = ChunkRotary<T>(positions: max(chunks, 1), dim: e, base: ropeBase)
    let (ldq, ld) = (groups * e, heads * e)
    let qData = q.data, kData = k.data, vData = v.data
    var out = [T](repeating: 0, count: k.count)
    var lse = [T](repeating: 0, count: batch * heads * length)  // [B, H, L]

    qData.withUnsafeBufferPointer { qp in kData.withUnsafeBufferPointer { kp in vData.withUnsafeBufferPointer { vp in
    out.withUnsafeMutableBufferPointer { op in lse.withUnsafeMutableBufferPointer { lp in
        Parallel.forEach(batch * heads) { item in
            let (b, h) = (item / heads, item % heads)
            let qb = qp.baseAddress! + b * length * ldq + (h % groups) * e
            let (kb, vb, ob) = (kp.baseAddress! + b * length * ld + h * e, vp.baseAddress! + b * length * ld + h * e, op.baseAddress! + b * length * ld + h * e)
            let (ke, ve) = gatherChunkEnds(kb, vb, ld: ld, ends: ends, chunkSize: chunkSize, rotary: rotary)  // [ends, E] each
            let qr = AlignedBuffer<T>(count: rowsPerBlock * e)
            let scores = AlignedBuffer<T>(count: rowsPerBlock * max(ends, 1))
            let selfWeight = AlignedBuffer<T>(count: rowsPerBlock)
            for t0 in stride(from: 0, to: length, by: rowsPerBlock) {
                let rows = min(rowsPerBlock, length - t0), nk = (t0 + rows - 1) / chunkSize  // chunk ends the block sees
                if nk > 0 {
                    for r in 0..<rows { rotary.rotate(qb + (t0 + r) * ldq, into: qr.pointer + r * e, position: (t0 + r) / chunkSize) }
                    // S = scale Qr Ke^T  [rows, nk]
                    T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: s, a: qr.pointer, lda: e, b: ke.pointer, ldb: e,
                           beta: 0, c: scores.pointer, ldc: nk)
                }
                for r in 0..<rows {
                    let t = t0 + r, visible = t / chunkSize
                    let row = scores.pointer + r * nk
                    let selfScore = s * RowReduce.dot(qb + t * ldq, kb + t * ld, e)
                    let m = max(selfScore, RowReduce.max(row, visible))
                    for j in 0..<visible { row[j] = FastScalarMath.exp(row[j] - m) }
                    for j in visible..<max(nk, visible) { row[j] = 0 }
                    let es = FastScalarMath.exp(selfScore - m)
                    let total = RowReduce.sum(row, visible) + es
                    let inv = 1 / total
                    for j in 0..<visible { row[j] *= inv }
                    selfWeight.pointer[r] = es * inv
                    lp[item * length + t] = m + T.log(total)
                }
                if nk > 0 {  // O = P Ve  [rows, E], rows strided by H E
                    T.gemm(transA: false, transB: false, m: rows, n: e, k: nk, alpha: 1, a: scores.pointer, lda: nk, b: ve.pointer, ldb: e,
                           beta: 0, c: ob + t0 * ld, ldc: ld)
                }
                for r in 0..<rows {
                    let (o, vt, w) = (ob + (t0 + r) * ld, vb + (t0 + r) * ld, selfWeight.pointer[r])
                    for d in 0..<e { o[d] += w * vt[d] }
                }
            }
        }
    } } } } }

    let result = Tensor(shape: k.shape, data: out)
    Tape.record("rat_chunk_attention", inputs: [q, k, v], output: result) { dOut in
        var dq = [T](repeating: 0, count: qData.count)
        var dk = [T](repeating: 0, count: kData.count)
        var dv = [T](repeating: 0, count: vData.count)
        let dqHeads = AlignedBuffer<T>(count: kData.count)  // per-head query gradients [B, L, H, E], summed into groups below
        qData.withUnsafeBufferPointer { qp in kData.withUnsafeBufferPointer { kp in vData.withUnsafeBufferPointer { vp in
        out.withUnsafeBufferPointer { op in dOut.withUnsafeBufferPointer { gp in
        dk.withUnsafeMutableBufferPointer { dkp in dv.withUnsafeMutableBufferPointer { dvp in
            Parallel.forEach(batch * heads) { item in
                let (b, h) = (item / heads, item % heads)
                let head = b * length * ld + h * e
                let qb = qp.baseAddress! + b * length * ldq + (h % groups) * e
                let (kb, vb, ob, gb) = (kp.baseAddress! + head, vp.baseAddress! + head, op.baseAddress! + head, gp.baseAddress! + head)
                let (dqb, dkb, dvb) = (dqHeads.pointer + head, dkp.baseAddress! + head, dvp.baseAddress! + head)
                let (ke, ve) = gatherChunkEnds(kb, vb, ld: ld, ends: ends, chunkSize: chunkSize, rotary: rotary)
                let dke = AlignedBuffer<T>(count: max(ends, 1) * e), dve = AlignedBuffer<T>(count: max(ends, 1) * e)
                let qr = AlignedBuffer<T>(count: rowsPerBlock * e), dqr = AlignedBuffer<T>(count: rowsPerBlock * e)
                let p = AlignedBuffer<T>(count: rowsPerBlock * max(ends, 1)), dp = AlignedBuffer<T>(count: rowsPerBlock * max(ends, 1))
                for t0 in stride(from: 0, to: length, by: rowsPerBlock) {
                    let rows = min(rowsPerBlock, length - t0), nk = (t0 + rows - 1) / chunkSize
                    if nk > 0 {
                        for r in 0..<rows { rotary.rotate(qb + (t0 + r) * ldq, into: qr.pointer + r * e, position: (t0 + r) / chunkSize) }
                        T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: s, a: qr.pointer, lda: e, b: ke.pointer, ldb: e,
                               beta: 0, c: p.pointer, ldc: nk)  // S  [rows, nk]
                        T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: 1, a: gb + t0 * ld, lda: ld, b: ve.pointer, ldb: e,
                               beta: 0, c: dp.pointer, ldc: nk)  // dP = dO Ve^T  [rows, nk]
                    }
                    for r in 0..<rows {
                        let t = t0 + r, visible = t / chunkSize
                        let logZ = lse[item * length + t]
                        let (go, o) = (gb + t * ld, ob + t * ld)
                        let rowDot = RowReduce.dot(go, o, e)
                        let pr = p.pointer + r * nk, dpr = dp.pointer + r * nk
                        for j in 0..<visible {
                            let pj = FastScalarMath.exp(pr[j] - logZ)
                            pr[j] = pj
                            dpr[j] = pj * (dpr[j] - rowDot)  // dS
                        }
                        for j in visible..<max(nk, visible) { pr[j] = 0; dpr[j] = 0 }
                        let (qt, kt, vt) = (qb + t * ldq, kb + t * ld, vb + t * ld)
                        let ps = FastScalarMath.exp(s * RowReduce.dot(qt, kt, e) - logZ)
                        let dSelf = s * ps * (RowReduce.dot(go, vt, e) - rowDot)
                        let (dvt, dkt, dqt) = (dvb + t * ld, dkb + t * ld, dqb + t * ld)
                        for d in 0..<e {
                            dvt[d] += ps * go[d]
                            dqt[d] += dSelf * kt[d]
                            dkt[d] += dSelf * qt[d]
                        }
                    }
                    guard nk > 0 else { continue }
                    // dVe += P^T dO  [nk, E];  dQr = scale dS Ke  [rows, E];  dKe += scale dS^T Qr  [nk, E]
                    T.gemm(transA: true, transB: false, m: nk, n: e, k: rows, alpha: 1, a: p.pointer, lda: nk, b: gb + t0 * ld, ldb: ld,
                           beta: 1, c: dve.pointer, ldc: e)
                    T.gemm(transA: false, transB: false, m: rows, n: e, k: nk, alpha: s, a: dp.pointer, lda: nk, b: ke.pointer, ldb: e,
                           beta: 0, c: dqr.pointer, ldc: e)
                    T.gemm(transA: true, transB: false, m: nk, n: e, k: rows, alpha: s, a: dp.pointer, lda: nk, b: qr.pointer, ldb: e,
                           beta: 1, c: dke.pointer, ldc: e)
                    for r in 0..<rows {
                        rotary.addRotatedBack(dqr.pointer + r * e, into: dqb + (t0 + r) * ld, position: (t0 + r) / chunkSize)
                    }
                }
                for j in 0..<ends {  // chunk-end gradients back to their positions
                    let t = j * chunkSize + chunkSize - 1
                    rotary.addRotatedBack(dke.pointer + j * e, into: dkb + t * ld, position: j)
                    for d in 0..<e { dvb[t * ld + d] += dve.pointer[j * e + d] }
                }
            }
        } } } } } } }
        for r in 0..<(batch * length) {  // dq[b, t, g] = sum over heads h = g mod G
            for h in 0..<heads {
                let (src, dst) = (r * ld + h * e, r * ldq + (h % groups) * e)
                for d in 0..<e { dq[dst + d] += dqHeads.pointer[src + d] }
            }
        }
        return [dq, dk, dv]
    }
    return result
}

/// The rotated chunk-end keys R(j) kt_{jC+C-1} and the chunk-end values vt_{jC+C-1}, j < ends, of one head
/// (rows strided by `ld`), gathered into contiguous [ends, E] buffers.
private func gatherChunkEnds<T: TensorScalar>(
    _ kb: UnsafePointer<T>, _ vb: UnsafePointer<T>, ld: Int, ends: Int, chunkSize: Int, rotary: ChunkRotary<T>
) -> (AlignedBuffer<T>, AlignedBuffer<T>) {
    let e = rotary.dim
    let ke = AlignedBuffer<T>(count: max(ends, 1) * e), ve = AlignedBuffer<T>(count: max(ends, 1) * e)
    for j in 0..<ends {
        let t = j * chunkSize + chunkSize - 1
        rotary.rotate(kb + t * ld, into: ke.pointer + j * e, position: j)
        (ve.pointer + j * e).update(from: vb + t * ld, count: e)
    }
    return (ke, ve)
}

/// RAT's attention written with basic tape ops: queries tiled to the heads, rotary embedding by chunk index, the
/// full L x L score matrix with every entry masked except the chunk ends of earlier chunks and the diagonal, one
/// softmax, times V. The obviously right O(L^2) form `chunkAttention` is tested against.
public func referenceChunkAttention<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, chunkSize: Int, scale: T? = nil, ropeBase: Double? = 10_000
) -> Tensor<T> {
    let (batch, length, groups, e) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let heads = k.shape[2]
    let s = scale ?? 1 / T(e).squareRoot()
    let positions = (0..<length).map { $0 / chunkSize }
    let qHeads = Tensor.concatenate(Array(repeating: q, count: heads / groups), axis: 2)  // [B, L, H, E]
    let qr = referenceRotary(qHeads, positions: positions, base: ropeBase).permuted([0, 2, 1, 3]).reshaped([batch * heads, length, e])
    let kr = referenceRotary(k, positions: positions, base: ropeBase).permuted([0, 2, 1, 3]).reshaped([batch * heads, length, e])
    var hidden = [Bool](repeating: true, count: length * length)
    for t in 0..<length {
        hidden[t * length + t] = false
        for j in 0..<t where j % chunkSize == chunkSize - 1 && j / chunkSize < t / chunkSize { hidden[t * length + j] = false }
    }
    let scores = (qr.matmul(kr, transposeOther: true) * s).maskedFill(hidden, maskShape: [length, length], with: -T.infinity)
    let o = scores.softmax().matmul(v.permuted([0, 2, 1, 3]).reshaped([batch * heads, length, e]))  // [B H, L, E]
    return o.reshaped([batch, heads, length, e]).permuted([0, 2, 1, 3])
}
