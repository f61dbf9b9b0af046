import Tensors

// RAT's attention across chunks (Wei et al. 2025, eq. 3). With c(t) = floor(t / C) the chunk of position t, the
// query at t attends over the chunk-end states (kt, vt at positions jC + C - 1) of the strictly earlier chunks
// j < c(t), plus its own partial state (kt_t, vt_t):
//   s_j = scale <R(c(t)) q_t, R(j) kt_{jC+C-1}>,   s_self = scale <q_t, kt_t>  (same rotation on both sides),
//   o_t = (sum_{j < c(t)} e^{s_j} vt_{jC+C-1} + e^{s_self} vt_t) / (sum_j e^{s_j} + e^{s_self}),
// one softmax over c(t) + 1 scores: the two parts merge exactly, by log-sum-exp. R is the rotary embedding by chunk
// index. Chunk size 1 is causal softmax attention; a chunk as long as the sequence leaves o_t = vt_t (a gated RNN).
//
// Blocked like the `attention` kernel, over (batch member, block of query rows): a block (128 rows, whole chunks)
// runs every head: per head two GEMMs against the chunk ends the block may see, then the row softmaxes with the rows
// outer and the heads inner (each row's q, k, v, o of all heads are contiguous in [B, L, H, E] and are read once).
// Only the row log-sum-exp is kept, so memory is O(B L H) plus the chunk ends and one block of scores per worker,
// and the work O(L * L / C * E). Backward recomputes P = exp(S - lse) and applies dVe += P^T dO, dP = dO Ve^T,
// dS = P (dP - rowsum(dO o)), dQ = scale dS Ke, dKe += scale dS^T Q, plus the self terms; rotated gradients are
// rotated back. The chunk-end gradients are accumulated per worker and scattered back at the end.

/// The query rows of one block: whole chunks, at least `blockTarget` rows when chunks are short.
private let blockTarget = 128

@inline(__always) private func blockRows(chunkSize: Int, length: Int) -> Int {
    min(max(1, blockTarget / chunkSize) * chunkSize, max(length, 1))
}

/// RAT's inter-chunk attention: q [B, L, G, E] (query groups; head h reads group h mod G), k and v [B, L, H, E]
/// (the partial states kt, vt of the chunked recurrence) -> o [B, L, H, E]. Rotary positions by chunk index when
/// `ropeBase` is set. One tape node with a hand-written backward.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func chunkAttention<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, chunkSize: Int, scale: T? = nil, ropeBase: Double? = 10_000
) -> Tensor<T> {
    precondition(q.rank == 4 && k.rank == 4 && v.shape == k.shape, "chunkAttention: q \(q.shape) must be [B, L, G, E], k \(k.shape) and v \(v.shape) one [B, L, H, E] shape")
    let (batch, length, groups, e) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let heads = k.shape[2]
    precondition(k.shape[0] == batch && k.shape[1] == length && k.shape[3] == e && groups > 0 && heads % groups == 0,
                 "chunkAttention: q \(q.shape) and k \(k.shape) disagree (need the same B, L, E and G dividing H)")
    precondition(chunkSize >= 1, "chunkAttention: chunk size \(chunkSize) must be positive")
    let g = ChunkAttentionGeometry(batch: batch, length: length, groups: groups, heads: heads, e: e, chunkSize: chunkSize,
                                   scale: scale ?? 1 / T(e).squareRoot(), rotary: ChunkRotary<T>(positions: max((length + chunkSize - 1) / chunkSize, 1), dim: e, base: ropeBase))
    let qData = q.data, kData = k.data, vData = v.data
    var out: [T] = overwrittenArray(count: k.count)
    let lse = PooledBuffer<T>(count: batch * length * heads)  // [B, L, H]

    qData.withUnsafeBufferPointer { qp in kData.withUnsafeBufferPointer { kp in vData.withUnsafeBufferPointer { vp in
    out.withUnsafeMutableBufferPointer { op in
        let (q, k, v, o) = (qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, op.baseAddress!)
        let (ke, ve) = g.chunkEnds(k, v)
        TokenBlocks.forEachItem(count: batch * g.blocksPerSequence) { _, item in
            let (b, t0) = (item / g.blocksPerSequence, (item % g.blocksPerSequence) * g.rowsPerBlock)
            let rows = min(g.rowsPerBlock, length - t0), nk = (t0 + rows - 1) / chunkSize  // chunk ends the block sees
            let qr = PooledBuffer<T>(count: groups * rows * e)  // rotated queries of the block, per group
            let pass = g.headsPerPass(rows: rows, keys: nk)
            let scores = PooledBuffer<T>(count: pass * rows * max(nk, 1))  // [heads of the pass, rows, nk]
            if nk > 0 { g.rotateQueries(q, b: b, t0: t0, rows: rows, into: qr.pointer) }
            for h0 in stride(from: 0, to: heads, by: pass) {
                let hs = h0..<min(heads, h0 + pass)
                if nk > 0 {
                    for h in hs {  // S = scale Qr Ke^T  [rows, nk]
                        T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: g.scale, a: qr.pointer + (h % groups) * rows * e, lda: e,
                               b: ke.pointer + (b * heads + h) * g.ends * e, ldb: e, beta: 0, c: scores.pointer + (h - h0) * rows * nk, ldc: nk)
                    }
                }
                for r in 0..<rows {  // rows outer, heads inner: each row's q, k, v, o are read together
                    let t = t0 + r, visible = t / chunkSize
                    let (qt, kt, vt, ot) = (q + (b * length + t) * g.ldq, k + (b * length + t) * g.ld, v + (b * length + t) * g.ld, o + (b * length + t) * g.ld)
                    for h in hs {
                        let row = scores.pointer + ((h - h0) * rows + r) * nk
                        let selfScore = g.scale * RowReduce.dot(qt + (h % groups) * e, kt + h * e, e)
                        let m = max(selfScore, RowReduce.max(row, visible))
                        for j in 0..<visible { row[j] = FastScalarMath.exp(row[j] - m) }
                        for j in visible..<max(nk, visible) { row[j] = 0 }
                        let es = FastScalarMath.exp(selfScore - m)
                        let total = RowReduce.sum(row, visible) + es
                        let inv = 1 / total
                        for j in 0..<visible { row[j] *= inv }
                        let (w, vh, oh) = (es * inv, vt + h * e, ot + h * e)
                        for d in 0..<e { oh[d] = w * vh[d] }  // the own partial state's share
                        lse.pointer[(b * length + t) * heads + h] = m + T.log(total)
                    }
                }
                if nk > 0 {
                    for h in hs {  // O += P Ve  [rows, E], rows strided by H E
                        T.gemm(transA: false, transB: false, m: rows, n: e, k: nk, alpha: 1, a: scores.pointer + (h - h0) * rows * nk, lda: nk,
                               b: ve.pointer + (b * heads + h) * g.ends * e, ldb: e, beta: 1, c: o + (b * length + t0) * g.ld + h * e, ldc: g.ld)
                    }
                }
            }
        }
    } } } }

    let result = Tensor(shape: k.shape, data: out)
    Tape.record("rat_chunk_attention", inputs: [q, k, v], output: result) { dOut in
        var dq = [T](repeating: 0, count: qData.count)
        var dk = [T](repeating: 0, count: kData.count)
        var dv = [T](repeating: 0, count: vData.count)
        qData.withUnsafeBufferPointer { qp in kData.withUnsafeBufferPointer { kp in vData.withUnsafeBufferPointer { vp in
        out.withUnsafeBufferPointer { op in dOut.withUnsafeBufferPointer { gp in
        dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in dv.withUnsafeMutableBufferPointer { dvp in
            let (q, k, v, o, gOut) = (qp.baseAddress!, kp.baseAddress!, vp.baseAddress!, op.baseAddress!, gp.baseAddress!)
            let (dq, dk, dv) = (dqp.baseAddress!, dkp.baseAddress!, dvp.baseAddress!)
            let (ke, ve) = g.chunkEnds(k, v)
            let items = batch * g.blocksPerSequence, endCount = batch * heads * g.ends * e
            let dke: [PooledBuffer<T>] = TokenBlocks.accumulators(TokenBlocks.itemWorkers(count: items), endCount)
            let dve: [PooledBuffer<T>] = TokenBlocks.accumulators(TokenBlocks.itemWorkers(count: items), endCount)
            TokenBlocks.forEachItem(count: items) { worker, item in
                let (b, t0) = (item / g.blocksPerSequence, (item % g.blocksPerSequence) * g.rowsPerBlock)
                let rows = min(g.rowsPerBlock, length - t0), nk = (t0 + rows - 1) / chunkSize
                let qr = PooledBuffer<T>(count: groups * rows * e), dqr = PooledBuffer<T>(count: groups * rows * e, zeroed: true)
                let pass = g.headsPerPass(rows: rows, keys: nk)
                let p = PooledBuffer<T>(count: pass * rows * max(nk, 1)), dp = PooledBuffer<T>(count: pass * rows * max(nk, 1))  // [heads of the pass, rows, nk]
                if nk > 0 { g.rotateQueries(q, b: b, t0: t0, rows: rows, into: qr.pointer) }
                for h0 in stride(from: 0, to: heads, by: pass) {
                    let hs = h0..<min(heads, h0 + pass)
                    if nk > 0 {
                        for h in hs {
                            let keys = (b * heads + h) * g.ends * e
                            T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: g.scale, a: qr.pointer + (h % groups) * rows * e, lda: e,
                                   b: ke.pointer + keys, ldb: e, beta: 0, c: p.pointer + (h - h0) * rows * nk, ldc: nk)  // S  [rows, nk]
                            T.gemm(transA: false, transB: true, m: rows, n: nk, k: e, alpha: 1, a: gOut + (b * length + t0) * g.ld + h * e, lda: g.ld,
                                   b: ve.pointer + keys, ldb: e, beta: 0, c: dp.pointer + (h - h0) * rows * nk, ldc: nk)  // dP = dO Ve^T  [rows, nk]
                        }
                    }
                    for r in 0..<rows {  // rows outer, heads inner
                        let t = t0 + r, visible = t / chunkSize, at = (b * length + t) * g.ld
                        let (qt, dqt) = (q + (b * length + t) * g.ldq, dq + (b * length + t) * g.ldq)
                        for h in hs {
                            let logZ = lse.pointer[(b * length + t) * heads + h]
                            let (go, oh, kh, vh) = (gOut + at + h * e, o + at + h * e, k + at + h * e, v + at + h * e)
                            let (qh, dqh) = (qt + (h % groups) * e, dqt + (h % groups) * e)
                            let rowDot = RowReduce.dot(go, oh, e)
                            let (pr, dpr) = (p.pointer + ((h - h0) * rows + r) * nk, dp.pointer + ((h - h0) * rows + r) * nk)
                            for j in 0..<visible {
                                let pj = FastScalarMath.exp(pr[j] - logZ)
                                pr[j] = pj
                                dpr[j] = pj * (dpr[j] - rowDot)  // dS
                            }
                            for j in visible..<max(nk, visible) { pr[j] = 0; dpr[j] = 0 }
                            let ps = FastScalarMath.exp(g.scale * RowReduce.dot(qh, kh, e) - logZ)
                            let dSelf = g.scale * ps * (RowReduce.dot(go, vh, e) - rowDot)
                            let (dvh, dkh) = (dv + at + h * e, dk + at + h * e)
                            for d in 0..<e {
                                dvh[d] += ps * go[d]
                                dqh[d] += dSelf * kh[d]
                                dkh[d] += dSelf * qh[d]
                            }
                        }
                    }
                    guard nk > 0 else { continue }
                    for h in hs {
                        let keys = (b * heads + h) * g.ends * e
                        let (ph, dph, dO) = (p.pointer + (h - h0) * rows * nk, dp.pointer + (h - h0) * rows * nk, gOut + (b * length + t0) * g.ld + h * e)
                        let (qrg, dqrg) = (qr.pointer + (h % groups) * rows * e, dqr.pointer + (h % groups) * rows * e)
                        // dVe += P^T dO  [nk, E];  dQr += scale dS Ke  [rows, E];  dKe += scale dS^T Qr  [nk, E]
                        T.gemm(transA: true, transB: false, m: nk, n: e, k: rows, alpha: 1, a: ph, lda: nk, b: dO, ldb: g.ld,
                               beta: 1, c: dve[worker].pointer + keys, ldc: e)
                        T.gemm(transA: false, transB: false, m: rows, n: e, k: nk, alpha: g.scale, a: dph, lda: nk, b: ke.pointer + keys, ldb: e,
                               beta: 1, c: dqrg, ldc: e)
                        T.gemm(transA: true, transB: false, m: nk, n: e, k: rows, alpha: g.scale, a: dph, lda: nk, b: qrg, ldb: e,
                               beta: 1, c: dke[worker].pointer + keys, ldc: e)
                    }
                }
                guard nk > 0 else { return }
                for r in 0..<rows {  // rotated query gradients back to the groups' queries
                    for grp in 0..<groups {
                        g.rotary.addRotatedBack(dqr.pointer + (grp * rows + r) * e, into: dq + (b * length + t0 + r) * g.ldq + grp * e,
                                                position: (t0 + r) / chunkSize)
                    }
                }
            }
            // chunk-end gradients back to their positions  (dk rotated back)
            let (dkeSum, dveSum) = (TokenBlocks.reduce(dke), TokenBlocks.reduce(dve))
            dkeSum.withUnsafeBufferPointer { dkep in dveSum.withUnsafeBufferPointer { dvep in
                for b in 0..<batch {
                    for h in 0..<heads {
                        for j in 0..<g.ends {
                            let at = (b * length + j * chunkSize + chunkSize - 1) * g.ld + h * e, src = ((b * heads + h) * g.ends + j) * e
                            g.rotary.addRotatedBack(dkep.baseAddress! + src, into: dk + at, position: j)
                            for d in 0..<e { dv[at + d] += dvep[src + d] }
                        }
                    }
                }
            } }
        } } } } } } } }
        return [dq, dk, dv]
    }
    return result
}

/// The sizes of one `chunkAttention` call and the helpers its forward and backward passes share.
private struct ChunkAttentionGeometry<T: TensorScalar> {
    let batch, length, groups, heads, e, chunkSize: Int
    let scale: T
    let rotary: ChunkRotary<T>
    /// Chunk ends that some query sees (every chunk but the last); rows per query block; blocks per sequence.
    let ends, rowsPerBlock, blocksPerSequence: Int
    /// Row strides of q and of k, v, o.
    let ldq, ld: Int

    init(batch: Int, length: Int, groups: Int, heads: Int, e: Int, chunkSize: Int, scale: T, rotary: ChunkRotary<T>) {
        (self.batch, self.length, self.groups, self.heads, self.e, self.chunkSize) = (batch, length, groups, heads, e, chunkSize)
        self.scale = scale
        self.rotary = rotary
        ends = max((length + chunkSize - 1) / chunkSize - 1, 0)
        rowsPerBlock = blockRows(chunkSize: chunkSize, length: length)
        blocksPerSequence = (length + rowsPerBlock - 1) / rowsPerBlock
        (ldq, ld) = (groups * e, heads * e)
    }

    /// The rotated chunk-end keys R(j) kt_{jC+C-1} and the chunk-end values vt_{jC+C-1}, gathered per batch
    /// member and head into [B, H, ends, E] buffers.
    func chunkEnds(_ k: UnsafePointer<T>, _ v: UnsafePointer<T>) -> (PooledBuffer<T>, PooledBuffer<T>) {
        let ke = PooledBuffer<T>(count: max(batch * heads * ends * e, 1)), ve = PooledBuffer<T>(count: max(batch * heads * ends * e, 1))
        for b in 0..<batch {
            for j in 0..<ends {
                let row = (b * length + j * chunkSize + chunkSize - 1) * ld
                for h in 0..<heads {
                    let dst = ((b * heads + h) * ends + j) * e
                    rotary.rotate(k + row + h * e, into: ke.pointer + dst, position: j)
                    (ve.pointer + dst).update(from: v + row + h * e, count: e)
                }
            }
        }
        return (ke, ve)
    }

    /// Heads whose score blocks are kept at once: all of them while two [rows, nk] blocks per head fit in about
    /// 256 KB (short histories: the per-row work dominates, rows are read once for every head), fewer as the
    /// history grows (long histories: the GEMMs and exponentials dominate, the scores should stay in cache).
    func headsPerPass(rows: Int, keys nk: Int) -> Int {
        max(1, min(heads, (256 * 1024) / max(1, 2 * rows * max(nk, 1) * MemoryLayout<T>.stride)))
    }

    /// The rotated queries of rows t0 ..< t0 + rows of batch member b, per group: [G, rows, E].
    func rotateQueries(_ q: UnsafePointer<T>, b: Int, t0: Int, rows: Int, into qr: UnsafeMutablePointer<T>) {
        for r in 0..<rows {
            let src = q + (b * length + t0 + r) * ldq
            for grp in 0..<groups { rotary.rotate(src + grp * e, into: qr + (grp * rows + r) * e, position: (t0 + r) / chunkSize) }
        }
    }
}

/// RAT's attention written with basic tape ops: queries tiled to the heads, rotary embedding by chunk index, the
/// full L x L score matrix with every entry masked except the chunk ends of earlier chunks and the diagonal, one
/// softmax, times V. The obviously right O(L^2) form `chunkAttention` is tested against.
@_specialize(where T == Float)
@_specialize(where T == Double)
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
