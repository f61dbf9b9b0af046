import CKernels
import Dispatch
import Foundation

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
// The kernel works on head-major copies ([B H, L, E]: each head's rows contiguous, leading dimension E) made once
// per call, so that a block of keys or values is one contiguous 32 KB run (E 32) that stays in L1 across a tile's
// rows; reading the [B, L, H, E] layout directly streams rows 4 E bytes apart that alias in L1. The transposed keys
// (and values, backward) have a padded leading dimension for the same reason.
// Blocks are 256 queries x 256 keys; a key block that crosses the causal diagonal is cut into 64-row strips, each
// computed only up to its last visible key, and fully masked blocks are skipped. The two (forward) or five
// (backward) products per tile run on `SmallGemm` in Float32 when E is a multiple of 16 (register tiles, no
// packing of the score blocks; S = Q K^T reads K pre-transposed), else on BLAS. The exps go through
// `VectorMath`'s polynomial exp on 16-wide vectors.
//
// Forgetting attention (Lin et al. 2025, "Forgetting Transformer: Softmax Attention with a Forget Gate"), with
// per-token log forget gates g [B, Lk, H] (<= 0): S_ij = scale q_i k_j + F_i - F_j, F = cumsum of g over the keys
// (query i at key position Lk - Lq + i). The bias is added to each score block as the difference F_i - F_j (computed
// first, so that large |F| costs no precision of q k); backward, dF_j = -colsum_i dS_ij per (batch member, head)
// (the query side, dF_i = rowsum_j dS_ij, is zero: rowsum_j P_ij (dP_ij - rowsum(dO o)_i) = 0 since P's rows sum to
// one), and dg = the reverse cumulative sum of dF.

/// Queries per block.
private let queryBlock = 256
/// Rows per strip where a key block crosses the causal diagonal.
private let diagonalStrip = 64
/// Keys per block (a score block is queryBlock x keyBlock: 256 KB in Float32, two of them stay in L2).
private let keyBlock = 256

/// Multi-head scaled dot-product attention on [B, L, H, E] tensors (flash-attention blocking): one tape node.
/// q [B, Lq, H, E], k, v [B, Lk, H, E] with Lk >= Lq; with `causal`, query i sees keys j <= Lk - Lq + i.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func scaledDotProductAttention<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, scale: T? = nil, causal: Bool = true, logForgetGates gates: Tensor<T>? = nil
) -> Tensor<T> {
    precondition(q.rank == 4, "attention: q must be [B, L, H, E], got \(q.shape)")
    precondition(k.shape == v.shape, "attention: k \(k.shape) and v \(v.shape) must have one shape")
    precondition(k.rank == 4 && k.shape[0] == q.shape[0] && k.shape[2] == q.shape[2] && k.shape[3] == q.shape[3] && k.shape[1] >= q.shape[1],
                 "attention: k \(k.shape) must be [B, Lk, H, E] with Lk >= Lq for q \(q.shape)")
    let geometry = AttentionGeometry(batch: q.shape[0], queries: q.shape[1], keys: k.shape[1], heads: q.shape[2],
                                     headDim: q.shape[3], causal: causal)
    if let gates {
        precondition(gates.shape == [geometry.batch, geometry.keys, geometry.heads],
                     "attention: log forget gates \(gates.shape) must be [B, Lk, H] for k \(k.shape)")
    }
    let s = scale ?? 1 / T(geometry.headDim).squareRoot()
    let heads = q.data.withUnsafeBufferPointer { qp in k.data.withUnsafeBufferPointer { kp in v.data.withUnsafeBufferPointer { vp in
        let keys = geometry.packHeads(kp.baseAddress!, length: geometry.keys)
        return HeadMajor(q: geometry.packHeads(qp.baseAddress!, length: geometry.queries), k: keys,
                         v: geometry.packHeads(vp.baseAddress!, length: geometry.keys),
                         kT: geometry.smallProducts(T.self) ? geometry.transposedHeads(keys.pointer) : nil,
                         forget: gates.map { geometry.cumulativeGates($0.data) })
    } } }
    let (out, lse) = attentionForward(geometry, scale: s, heads)
    let result = Tensor(shape: q.shape, data: out)
    Tape.record(gates == nil ? "attention" : "forgetting_attention", inputs: [q, k, v] + (gates.map { [$0] } ?? []),
                output: result) { dOut in
        attentionBackward(geometry, scale: s, heads, o: out, lse: lse, dO: dOut)
    }
    return result
}

/// Head-major copies of q, k, v: [B H, L, E], and the transposed keys [B H, E, Lk'] of `SmallGemm`'s score products
/// (made once, used by the forward and the backward pass).
private struct HeadMajor<T> {
    let q, k, v: AlignedBuffer<T>
    let kT: AlignedBuffer<T>?
    /// Forgetting attention: F = cumsum of the log forget gates over the keys, [B H, Lk] (nil for plain attention).
    let forget: AlignedBuffer<T>?
}

/// Sizes and mask of one attention call.
struct AttentionGeometry {
    let batch, queries, keys, heads, headDim: Int
    let causal: Bool
    /// Row stride of q, k, v, o in the caller's [B, L, H, E] layout: H E.
    var rowStride: Int { heads * headDim }
    /// Leading dimension of the transposed keys or values [E, Lk]: Lk rounded up to 64 floats, plus 16, so that
    /// consecutive rows fall in different L1 sets (a multiple of 1024 floats would put all E rows in one set).
    var transposedStride: Int { (keys + 63) / 64 * 64 + 16 }
    /// Position of query 0 among the keys (Lk - Lq).
    var offset: Int { keys - queries }
    /// The number of keys query i may see.
    @inline(__always) func visibleKeys(query i: Int) -> Int { causal ? min(keys, offset + i + 1) : keys }

    /// Whether the block products run on `SmallGemm` (Float32 with E a multiple of 16) rather than BLAS.
    func smallProducts<T>(_: T.Type) -> Bool { T.self == Float.self && headDim % 16 == 0 }

    /// Log forget gates g [B, Lk, H] -> F [B H, Lk], F_j = g_0 + ... + g_j (accumulated in Double).
    func cumulativeGates<T: TensorScalar>(_ g: [T]) -> AlignedBuffer<T> {
        let out = AlignedBuffer<T>(count: batch * heads * keys, zeroed: false)
        for item in 0..<(batch * heads) {
            let (b, h) = (item / heads, item % heads)
            var sum = 0.0
            for j in 0..<keys {
                sum += Double(g[(b * keys + j) * heads + h])
                out.pointer[item * keys + j] = T(sum)
            }
        }
        return out
    }

    /// Adds F_i - F_j to row `row` (query t) of a score tile over keys k0..<k0 + count: forgetting attention's bias.
    @inline(__always)
    func addForgetBias<T: TensorScalar>(_ row: UnsafeMutablePointer<T>, forget f: UnsafePointer<T>, query t: Int, k0: Int, count: Int) {
        let fq = f[offset + t]
        for j in 0..<count { row[j] += fq - f[k0 + j] }
    }

    /// x [B, L, H, E] -> [B H, L, E].
    func packHeads<T: TensorScalar>(_ x: UnsafePointer<T>, length: Int) -> AlignedBuffer<T> {
        let out = AlignedBuffer<T>(count: batch * heads * length * headDim, zeroed: false)
        let (e, ld, o) = (headDim, rowStride, out.pointer)
        Parallel.forEach(batch * heads) { item in
            let src = x + (item / heads) * length * ld + (item % heads) * e, dst = o + item * length * e
            for t in 0..<length { (dst + t * e).update(from: src + t * ld, count: e) }
        }
        return out
    }

    /// [B H, L, E] -> y [B, L, H, E] (every element written).
    func unpackHeads<T: TensorScalar>(_ x: UnsafePointer<T>, length: Int, into y: UnsafeMutablePointer<T>) {
        let (e, ld) = (headDim, rowStride)
        Parallel.forEach(batch * heads) { item in
            let src = x + item * length * e, dst = y + (item / heads) * length * ld + (item % heads) * e
            for t in 0..<length { (dst + t * ld).update(from: src + t * e, count: e) }
        }
    }

    /// Every head's keys (or values) transposed, [B H, E, transposedStride], from head-major [B H, Lk, E]: the
    /// E-major key blocks of `scores`.
    func transposedHeads<T: TensorScalar>(_ x: UnsafePointer<T>) -> AlignedBuffer<T> {
        let ldT = transposedStride
        let out = AlignedBuffer<T>(count: batch * heads * headDim * ldT, zeroed: false)
        let (e, o) = (headDim, out.pointer)
        Parallel.forEach(batch * heads) { item in
            let src = x + item * keys * e, dst = o + item * e * ldT
            for t0 in stride(from: 0, to: keys, by: 64) {  // 64-key panels keep both sides in cache
                for d in 0..<e { for t in t0..<min(keys, t0 + 64) { dst[d * ldT + t] = src[t * e + d] } }
            }
        }
        return out
    }

    /// S [m, n] = alpha X Y^T for head-major rows of X and n rows of Y (leading dimension E); with
    /// `keysTransposed` (Y^T, leading dimension `transposedStride`) on `SmallGemm`, else one BLAS call.
    @inline(__always)
    func scores<T: TensorScalar>(
        m: Int, n: Int, alpha: T, rows x: UnsafePointer<T>, keys y: UnsafePointer<T>, keysTransposed yT: UnsafePointer<T>?,
        into c: UnsafeMutablePointer<T>
    ) {
        if let yT {
            product(T.self, m: m, n: n, k: headDim, alpha: alpha, a: x, lda: headDim, transposedA: false, b: yT,
                    ldb: transposedStride, accumulate: false, c: c, ldc: n)
        } else {
            T.gemm(transA: false, transB: true, m: m, n: n, k: headDim, alpha: alpha, a: x, lda: headDim, b: y, ldb: headDim,
                   beta: 0, c: c, ldc: n)
        }
    }

    /// C [m, n] (+)= alpha op(A) B, op(A) = A [m, k] or A^T (A stored [k, m]) with leading dimension lda:
    /// `SmallGemm` when `smallProducts`, else BLAS.
    @inline(__always)
    func product<T: TensorScalar>(
        _: T.Type, m: Int, n: Int, k: Int, alpha: T, a: UnsafePointer<T>, lda: Int, transposedA: Bool,
        b: UnsafePointer<T>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<T>, ldc: Int
    ) {
        if smallProducts(T.self) {
            SmallGemm.product(m: m, n: n, k: k, alpha: unsafeBitCast(alpha, to: Float.self),
                              a: UnsafeRawPointer(a).assumingMemoryBound(to: Float.self),
                              rowStride: transposedA ? 1 : lda, colStride: transposedA ? lda : 1,
                              b: UnsafeRawPointer(b).assumingMemoryBound(to: Float.self), ldb: ldb, accumulate: accumulate,
                              c: UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self), ldc: ldc)
        } else {
            T.gemm(transA: transposedA, transB: false, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                   beta: accumulate ? 1 : 0, c: c, ldc: ldc)
        }
    }

    /// The tiles (row strip r0..<r0 + rows of the query block, keys k0..<k0 + nk) of query block
    /// [start, start + rows): whole key blocks where every row sees every key; a key block that crosses the causal
    /// diagonal is cut into strips of `diagonalStrip` rows, each computed only up to its last visible key.
    @inline(__always)
    func forEachTile(start: Int, rows: Int, _ body: (_ r0: Int, _ rows: Int, _ k0: Int, _ nk: Int) -> Void) {
        let lastVisible = visibleKeys(query: start + rows - 1), seenByAll = visibleKeys(query: start)
        for k0 in stride(from: 0, to: lastVisible, by: keyBlock) {
            let nk = min(keyBlock, lastVisible - k0)
            if k0 + nk <= seenByAll || rows <= diagonalStrip {
                body(0, rows, k0, nk)
                continue
            }
            for r0 in stride(from: 0, to: rows, by: diagonalStrip) {
                let stripRows = min(diagonalStrip, rows - r0)
                let stripKeys = min(nk, visibleKeys(query: start + r0 + stripRows - 1) - k0)
                if stripKeys > 0 { body(r0, stripRows, k0, stripKeys) }
            }
        }
    }
}

/// Forward pass on head-major q, k, v: o [B, Lq, H, E] and the row log-sum-exp [B, H, Lq].
private func attentionForward<T: TensorScalar>(_ g: AttentionGeometry, scale s: T, _ x: HeadMajor<T>) -> ([T], [T]) {
    let e = g.headDim
    var out = [T](unsafeUninitializedCapacity: g.batch * g.queries * g.rowStride) { _, n in n = g.batch * g.queries * g.rowStride }
    var lse = [T](repeating: 0, count: g.batch * g.heads * g.queries)
    let queryBlocks = (g.queries + queryBlock - 1) / queryBlock
    let (qb, kb, vb) = (UnsafePointer(x.q.pointer), UnsafePointer(x.k.pointer), UnsafePointer(x.v.pointer))
    out.withUnsafeMutableBufferPointer { op in lse.withUnsafeMutableBufferPointer { lp in
        let (ob, lb) = (op.baseAddress!, lp.baseAddress!)
        // Work units: (batch member, head, query block), independent in the forward pass; the last query blocks
        // (the most visible keys) go first so that the dynamic queue ends with short units.
        let items = g.batch * g.heads
        let kT = x.kT  // [B H, E, Lk'] for S = Q K^T
        AttentionWorkQueue.run(items * queryBlocks, scratch: { ForwardScratch<T>(headDim: e) }) { unit, w in
            let item = unit % items, block = queryBlocks - 1 - unit / items
            let qHead = item * g.queries * e, kHead = item * g.keys * e
            let outHead = (item / g.heads) * g.queries * g.rowStride + (item % g.heads) * e
            let start = block * queryBlock, rows = min(queryBlock, g.queries - start)
            let (scores, acc, rowMax, rowSum) = (w.scores.pointer, w.acc, w.rowMax, w.rowSum)
            for r in 0..<rows { rowMax[r] = -T.infinity; rowSum[r] = 0 }
            g.forEachTile(start: start, rows: rows) { r0, tileRows, k0, nk in
                // S = scale Q_tile K_c^T   [tileRows, nk]
                g.scores(m: tileRows, n: nk, alpha: s, rows: qb + qHead + (start + r0) * e, keys: kb + kHead + k0 * e,
                         keysTransposed: kT.map { UnsafePointer($0.pointer + item * e * g.transposedStride + k0) }, into: scores)
                for r in r0..<(r0 + tileRows) {
                    let row = scores + (r - r0) * nk
                    let visible = max(0, min(nk, g.visibleKeys(query: start + r) - k0))
                    for j in visible..<nk { row[j] = 0 }
                    if visible == 0 { continue }
                    if let f = x.forget { g.addForgetBias(row, forget: f.pointer + item * g.keys, query: start + r, k0: k0, count: visible) }
                    let mOld = rowMax[r]
                    let mNew = max(mOld, VectorMath.maximum(row, count: visible))
                    let total = VectorMath.exponentiate(row, count: visible, minus: mNew)
                    if mOld > -T.infinity && mNew > mOld {  // rescale what earlier key blocks accumulated
                        let alpha = VectorMath.exp(mOld - mNew)
                        rowSum[r] *= alpha
                        let accRow = acc + r * e
                        for d in 0..<e { accRow[d] *= alpha }
                    }
                    rowMax[r] = mNew
                    rowSum[r] += total
                }
                // O_tile (+)= P V_c   [tileRows, E]  (the tiles at k0 = 0 cover every row first)
                g.product(T.self, m: tileRows, n: e, k: nk, alpha: 1, a: scores, lda: nk, transposedA: false,
                          b: vb + kHead + k0 * e, ldb: e, accumulate: k0 != 0, c: acc + r0 * e, ldc: e)
            }
            for r in 0..<rows {
                let inv = 1 / rowSum[r]
                let dst = ob + outHead + (start + r) * g.rowStride, src = acc + r * e
                for d in 0..<e { dst[d] = src[d] * inv }
                lb[item * g.queries + start + r] = rowMax[r] + T.log(rowSum[r])
            }
        }
    } }
    return (out, lse)
}

/// Backward pass: [dq, dk, dv] from dO, recomputing each block's probabilities from the saved log-sum-exp.
private func attentionBackward<T: TensorScalar>(
    _ g: AttentionGeometry, scale s: T, _ x: HeadMajor<T>, o: [T], lse: [T], dO: [T]
) -> [[T]?] {
    let (ld, e) = (g.rowStride, g.headDim)
    // rowsum(dO o) per query row: [B, H, Lq]
    var rowDot = [T](repeating: 0, count: lse.count)
    for b in 0..<g.batch { for t in 0..<g.queries { for h in 0..<g.heads {
        let base = (b * g.queries + t) * ld + h * e
        var acc: T = 0
        for d in 0..<e { acc += dO[base + d] * o[base + d] }
        rowDot[(b * g.heads + h) * g.queries + t] = acc
    } } }
    let items = g.batch * g.heads
    let dOHeads = dO.withUnsafeBufferPointer { g.packHeads($0.baseAddress!, length: g.queries) }
    let dqHeads = AlignedBuffer<T>(count: items * g.queries * e), dkHeads = AlignedBuffer<T>(count: items * g.keys * e)
    let dvHeads = AlignedBuffer<T>(count: items * g.keys * e)
    let (qb, kb, vb, gb) = (UnsafePointer(x.q.pointer), UnsafePointer(x.k.pointer), UnsafePointer(x.v.pointer), UnsafePointer(dOHeads.pointer))
    let (dqb, dkb, dvb) = (dqHeads.pointer, dkHeads.pointer, dvHeads.pointer)
    let dForget = x.forget.map { _ in AlignedBuffer<T>(count: items * g.keys) }  // dF [B H, Lk]
    lse.withUnsafeBufferPointer { lp in rowDot.withUnsafeBufferPointer { rp in
        let (lb, rb) = (lp.baseAddress!, rp.baseAddress!)
        // One work item per (batch member, head): its key blocks accumulate dK, dV from every query block.
        let small = g.smallProducts(T.self)
        let (kT, vT) = (x.kT, small ? g.transposedHeads(vb) : nil)  // [B H, E, Lk']
        AttentionWorkQueue.run(items, scratch: { BackwardScratch<T>() }) { item, w in
            let qHead = item * g.queries * e, kHead = item * g.keys * e
            let (p, dp) = (w.p, w.dp)  // P block; dP, then dS
            for start in stride(from: 0, to: g.queries, by: queryBlock) {
                let rows = min(queryBlock, g.queries - start)
                g.forEachTile(start: start, rows: rows) { r0, tileRows, k0, nk in
                    let (qRows, gRows) = (qb + qHead + (start + r0) * e, gb + qHead + (start + r0) * e)
                    let (kRows, vRows) = (kb + kHead + k0 * e, vb + kHead + k0 * e)
                    // S = scale Q_tile K_c^T;  dP = dO_tile V_c^T   [tileRows, nk]
                    let transposedOffset = item * e * g.transposedStride + k0
                    g.scores(m: tileRows, n: nk, alpha: s, rows: qRows, keys: kRows,
                             keysTransposed: kT.map { UnsafePointer($0.pointer + transposedOffset) }, into: p)
                    g.scores(m: tileRows, n: nk, alpha: 1, rows: gRows, keys: vRows,
                             keysTransposed: vT.map { UnsafePointer($0.pointer + transposedOffset) }, into: dp)
                    for r in 0..<tileRows {
                        let t = start + r0 + r
                        let visible = max(0, min(nk, g.visibleKeys(query: t) - k0))
                        let pr = p + r * nk, dpr = dp + r * nk
                        if let f = x.forget { g.addForgetBias(pr, forget: f.pointer + item * g.keys, query: t, k0: k0, count: visible) }
                        VectorMath.softmaxBackwardRow(scores: pr, gradients: dpr, count: visible,
                                                      logZ: lb[item * g.queries + t], rowDot: rb[item * g.queries + t])
                        for j in visible..<nk { pr[j] = 0; dpr[j] = 0 }
                        if let dF = dForget?.pointer.advanced(by: item * g.keys + k0) {  // dF_j -= dS_ij
                            for j in 0..<visible { dF[j] -= dpr[j] }
                        }
                    }
                    // dV_c += P^T dO_tile;  dQ_tile += scale dS K_c;  dK_c += scale dS^T Q_tile
                    g.product(T.self, m: nk, n: e, k: tileRows, alpha: 1, a: p, lda: nk, transposedA: true,
                              b: gRows, ldb: e, accumulate: true, c: dvb + kHead + k0 * e, ldc: e)
                    g.product(T.self, m: tileRows, n: e, k: nk, alpha: s, a: dp, lda: nk, transposedA: false,
                              b: kRows, ldb: e, accumulate: true, c: dqb + qHead + (start + r0) * e, ldc: e)
                    g.product(T.self, m: nk, n: e, k: tileRows, alpha: s, a: dp, lda: nk, transposedA: true,
                              b: qRows, ldb: e, accumulate: true, c: dkb + kHead + k0 * e, ldc: e)
                }
            }
        }
    } }
    func unpacked(_ heads: AlignedBuffer<T>, length: Int) -> [T] {
        [T](unsafeUninitializedCapacity: g.batch * length * ld) { buffer, n in
            g.unpackHeads(heads.pointer, length: length, into: buffer.baseAddress!)
            n = g.batch * length * ld
        }
    }
    var grads = [unpacked(dqHeads, length: g.queries), unpacked(dkHeads, length: g.keys), unpacked(dvHeads, length: g.keys)]
    if let dF = dForget {  // dg_t = sum_{j >= t} dF_j, back to [B, Lk, H]
        var dg = [T](repeating: 0, count: items * g.keys)
        for item in 0..<items {
            let (b, h) = (item / g.heads, item % g.heads)
            var tail: T = 0
            for j in stride(from: g.keys - 1, through: 0, by: -1) {
                tail += dF.pointer[item * g.keys + j]
                dg[(b * g.keys + j) * g.heads + h] = tail
            }
        }
        grads.append(dg)
    }
    return grads
}

/// Scratch of one forward thread: a score block, the unnormalised output block, running row maxima and sums.
private final class ForwardScratch<T: TensorScalar> {
    let scores = AlignedBuffer<T>(count: queryBlock * keyBlock)
    let accBuffer: AlignedBuffer<T>
    let rowBuffer = AlignedBuffer<T>(count: 2 * queryBlock)
    init(headDim: Int) { accBuffer = AlignedBuffer(count: queryBlock * headDim) }
    var acc: UnsafeMutablePointer<T> { accBuffer.pointer }
    var rowMax: UnsafeMutablePointer<T> { rowBuffer.pointer }
    var rowSum: UnsafeMutablePointer<T> { rowBuffer.pointer + queryBlock }
}

/// Scratch of one backward thread: the probability block and the score-gradient block.
private final class BackwardScratch<T: TensorScalar> {
    let pBuffer = AlignedBuffer<T>(count: queryBlock * keyBlock)
    let dpBuffer = AlignedBuffer<T>(count: queryBlock * keyBlock)
    var p: UnsafeMutablePointer<T> { pBuffer.pointer }
    var dp: UnsafeMutablePointer<T> { dpBuffer.pointer }
}

/// Floating-point operations of one attention forward and backward pass: the GEMM work on the (query, key) pairs
/// the mask leaves visible (L (L + 1) / 2 per head when causal), 4 E per pair forward and 10 E backward (S
/// recomputed, dP, dV, dQ, dK), the usual flash-attention count. Masked work inside diagonal blocks is not counted.
public func attentionFlops(batch: Int, length: Int, heads: Int, headDim: Int, causal: Bool = true) -> (forward: Double, backward: Double) {
    let pairs = causal ? Double(length) * Double(length + 1) / 2 : Double(length) * Double(length)
    let perPair = 2.0 * Double(headDim) * Double(batch * heads)
    return (2 * perPair * pairs, 5 * perPair * pairs)
}

/// A dynamic work queue over `Parallel.threadCount` threads: each thread builds its scratch once, then takes units
/// in increasing order from a shared counter until none are left (OpenBLAS single-threaded inside, as in `Parallel`).
/// Subnormals are flushed to zero on each thread while it works (`sl_subnormals_flush`; the thread's state is
/// restored after): probabilities and their gradients near e^-87 would otherwise slow the block products ~3x.
public enum AttentionWorkQueue {
    /// Runs `body(unit, scratch)` for every unit in 0..<count.
    public static func run<Scratch>(_ count: Int, scratch makeScratch: () -> Scratch, _ body: (Int, Scratch) -> Void) {
        let threads = min(Parallel.threadCount, count)
        if threads <= 1 {
            let state = sl_subnormals_flush()
            defer { sl_subnormals_restore(state) }
            let s = makeScratch()
            for unit in 0..<count { body(unit, s) }
            return
        }
        let counter = UnitCounter()
        BLASThreads.singleThreaded {
            DispatchQueue.concurrentPerform(iterations: threads) { _ in
                let state = sl_subnormals_flush()
                defer { sl_subnormals_restore(state) }
                let s = makeScratch()
                while let unit = counter.next(below: count) { body(unit, s) }
            }
        }
    }
}

/// A lock-protected counter handing out 0, 1, 2, ...
private final class UnitCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}
