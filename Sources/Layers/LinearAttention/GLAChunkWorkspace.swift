import Tensors

// The per-chunk work of the chunked GLA kernel (see GatedLinearAttentionChunked.swift for the math): decays,
// intra-chunk scores with secondary chunking, and the chunk's input gradients. One workspace per work item (a batch
// member and head); every buffer is contiguous with row length K (key-like) or C (scores).

/// Pointers to one chunk's rows of q, k, g (leading dimension H K) and v (leading dimension H V).
struct GLAChunk<T> {
    let q, k, v, g: UnsafePointer<T>
    /// Index of the chunk's first token in the sequence.
    let first: Int
    /// The number of tokens in the chunk (C, or fewer for the last chunk).
    let rows: Int
}

/// Scratch buffers and the per-chunk steps of the chunked GLA kernel.
final class GLAChunkWorkspace<T: TensorScalar> {
    let keyDim, valueDim, chunkSize, subChunkSize, keyStride, valueStride: Int
    let scale: T
    /// G: cumulative log-gates within the chunk [C, K].
    let cumulative: AlignedBuffer<T>
    /// e^G [C, K].
    let expCumulative: AlignedBuffer<T>
    /// e^{Gamma - G} [C, K]: each row's decay to the chunk end.
    let decayToEnd: AlignedBuffer<T>
    /// s Q e^G [C, K] (inter-chunk queries).
    let qDecayed: AlignedBuffer<T>
    /// K e^{Gamma - G} [C, K] (keys decayed to the chunk end).
    let kDecayed: AlignedBuffer<T>
    /// e^Gamma [K]: the chunk's total decay.
    let chunkDecay: AlignedBuffer<T>
    /// A [C, C] (lower triangular) and dA [C, C].
    let scores, scoreGrads: AlignedBuffer<T>
    /// Off-diagonal sub-block operands: e^{G_I - r}, s Q_I e^{G_I - r} [c, K]; e^{r - G_<I}, K_<I e^{r - G_<I} [C, K].
    let ratioQ, qScaled, ratioK, kScaled: AlignedBuffer<T>
    /// e^{G_i - G_j} for the rows j of a diagonal sub-block [c, K].
    let pairExp: AlignedBuffer<T>
    /// GEMM results [C, K].
    let product: AlignedBuffer<T>
    /// A running state or state gradient [K, V].
    let state: AlignedBuffer<T>
    private let zeros: AlignedBuffer<T>

    init(geo: LinearAttentionGeometry, grid: ChunkGrid, scale: T) {
        (keyDim, valueDim, chunkSize, subChunkSize) = (geo.keyDim, geo.valueDim, grid.chunkSize, grid.subChunkSize)
        (keyStride, valueStride, self.scale) = (geo.keyStride, geo.valueStride, scale)
        let ck = chunkSize * keyDim
        cumulative = AlignedBuffer(count: ck); expCumulative = AlignedBuffer(count: ck); decayToEnd = AlignedBuffer(count: ck)
        qDecayed = AlignedBuffer(count: ck); kDecayed = AlignedBuffer(count: ck); chunkDecay = AlignedBuffer(count: keyDim)
        scores = AlignedBuffer(count: chunkSize * chunkSize); scoreGrads = AlignedBuffer(count: chunkSize * chunkSize)
        ratioQ = AlignedBuffer(count: subChunkSize * keyDim); qScaled = AlignedBuffer(count: subChunkSize * keyDim)
        ratioK = AlignedBuffer(count: ck); kScaled = AlignedBuffer(count: ck)
        pairExp = AlignedBuffer(count: subChunkSize * keyDim); product = AlignedBuffer(count: ck)
        state = AlignedBuffer(count: keyDim * valueDim); zeros = AlignedBuffer(count: ck)
    }

    /// The chunk of `rows` tokens starting at token `first` of the item whose row 0 the pointers address.
    @inline(__always)
    func bind(q: UnsafePointer<T>, k: UnsafePointer<T>, v: UnsafePointer<T>, g: UnsafePointer<T>, first: Int, rows: Int) -> GLAChunk<T> {
        GLAChunk(q: q + first * keyStride, k: k + first * keyStride, v: v + first * valueStride, g: g + first * keyStride,
                 first: first, rows: rows)
    }

    /// G, e^G, e^{Gamma - G}, e^Gamma, s Q e^G and K e^{Gamma - G} for the chunk.
    func prepareDecays(_ at: GLAChunk<T>) {
        let (K, n) = (keyDim, at.rows)
        let G = cumulative.pointer
        chunkCumulativeSum(at.g, ld: keyStride, rows: n, width: K, into: G)  // [n, K]
        VectorMath.expDifference(G, zeros.pointer, into: expCumulative.pointer, count: n * K)
        let gamma = G + (n - 1) * K
        for d in 0..<K { chunkDecay.pointer[d] = expCumulative.pointer[(n - 1) * K + d] }
        let toEnd = decayToEnd.pointer
        for i in 0..<n { for d in 0..<K { toEnd[i * K + d] = gamma[d] - G[i * K + d] } }
        _ = VectorMath.exponentiate(toEnd, count: n * K, minus: 0)
        for i in 0..<n {
            let (qRow, kRow) = (at.q + i * keyStride, at.k + i * keyStride)
            for d in 0..<K {
                qDecayed.pointer[i * K + d] = scale * qRow[d] * expCumulative.pointer[i * K + d]
                kDecayed.pointer[i * K + d] = kRow[d] * toEnd[i * K + d]
            }
        }
    }

    /// Off-diagonal operands for sub-chunk [i0, i1) against rows [0, i0), with r = G[i0]:
    /// ratioQ = e^{G_I - r}, qScaled = s Q_I ratioQ, ratioK = e^{r - G_<I}, kScaled = K_<I ratioK.
    private func prepareOffDiagonal(_ at: GLAChunk<T>, _ i0: Int, _ i1: Int) {
        let K = keyDim, G = cumulative.pointer, r = cumulative.pointer + i0 * K
        for i in i0..<i1 { for d in 0..<K { ratioQ.pointer[(i - i0) * K + d] = G[i * K + d] - r[d] } }
        _ = VectorMath.exponentiate(ratioQ.pointer, count: (i1 - i0) * K, minus: 0)
        for j in 0..<i0 { for d in 0..<K { ratioK.pointer[j * K + d] = r[d] - G[j * K + d] } }
        _ = VectorMath.exponentiate(ratioK.pointer, count: i0 * K, minus: 0)
        for i in i0..<i1 {
            let qRow = at.q + i * keyStride
            for d in 0..<K { qScaled.pointer[(i - i0) * K + d] = scale * qRow[d] * ratioQ.pointer[(i - i0) * K + d] }
        }
        for j in 0..<i0 {
            let kRow = at.k + j * keyStride
            for d in 0..<K { kScaled.pointer[j * K + d] = kRow[d] * ratioK.pointer[j * K + d] }
        }
    }

    /// pairExp[jj] = e^{G_i - G_{i0 + jj}} for jj = 0...(i - i0).
    @inline(__always)
    private func preparePairDecays(row i: Int, from i0: Int) {
        let K = keyDim, G = cumulative.pointer, p = pairExp.pointer
        for jj in 0...(i - i0) { for d in 0..<K { p[jj * K + d] = G[i * K + d] - G[(i0 + jj) * K + d] } }
        _ = VectorMath.exponentiate(p, count: (i - i0 + 1) * K, minus: 0)
    }

    /// A [rows, rows] (leading dimension C): s sum_d Q_id K_jd e^{G_id - G_jd} for j <= i, zero above.
    func intraChunkScores(_ at: GLAChunk<T>) {
        let (K, C, n) = (keyDim, chunkSize, at.rows)
        let A = scores.pointer
        for i in 0..<n { for j in 0..<n { A[i * C + j] = 0 } }
        for i0 in stride(from: 0, to: n, by: subChunkSize) {
            let i1 = min(i0 + subChunkSize, n)
            if i0 > 0 {  // A[I, <I] = (s Q_I e^{G_I - r}) (K_<I e^{r - G_<I})^T
                prepareOffDiagonal(at, i0, i1)
                T.gemm(transA: false, transB: true, m: i1 - i0, n: i0, k: K, alpha: 1, a: qScaled.pointer, lda: K,
                       b: kScaled.pointer, ldb: K, beta: 0, c: A + i0 * C, ldc: C)
            }
            for i in i0..<i1 {  // diagonal sub-block, elementwise decays
                preparePairDecays(row: i, from: i0)
                let qRow = at.q + i * keyStride
                for jj in 0...(i - i0) {
                    let kRow = at.k + (i0 + jj) * keyStride, e = pairExp.pointer + jj * K
                    var acc: T = 0
                    for d in 0..<K { acc += qRow[d] * kRow[d] * e[d] }
                    A[i * C + i0 + jj] = scale * acc
                }
            }
        }
    }

    /// The chunk's gradients, with A (`intraChunkScores`) and the decays (`prepareDecays`) in place:
    /// writes dq, dk, dv rows (leading dimensions H K, H K, H V). `statePrev` is the state entering the chunk,
    /// `dState` the gradient of the state leaving it; `dO` the output gradient rows.
    func chunkGradients(
        _ at: GLAChunk<T>, statePrev S: UnsafePointer<T>, dState dS: UnsafePointer<T>, dO: UnsafePointer<T>,
        dq: UnsafeMutablePointer<T>, dk: UnsafeMutablePointer<T>, dv: UnsafeMutablePointer<T>
    ) {
        let (K, V, C, n) = (keyDim, valueDim, chunkSize, at.rows)
        let (ldk, ldv) = (keyStride, valueStride)
        let (dA, tmp) = (scoreGrads.pointer, product.pointer)
        // dA = tril(dO V^T)   [n, n]
        T.gemm(transA: false, transB: true, m: n, n: n, k: V, alpha: 1, a: dO, lda: ldv, b: at.v, ldb: ldv, beta: 0, c: dA, ldc: C)
        for i in 0..<n { for j in (i + 1)..<max(n, i + 1) { dA[i * C + j] = 0 } }
        // dV = A^T dO + (K e^{Gamma - G}) dS   [n, V]
        T.gemm(transA: true, transB: false, m: n, n: V, k: n, alpha: 1, a: scores.pointer, lda: C, b: dO, ldb: ldv, beta: 0, c: dv, ldc: ldv)
        T.gemm(transA: false, transB: false, m: n, n: V, k: K, alpha: 1, a: kDecayed.pointer, lda: K, b: dS, ldb: V, beta: 1, c: dv, ldc: ldv)
        // dQ = s e^G (dO S_prev^T);  dK = e^{Gamma - G} (V dS^T)   [n, K]
        T.gemm(transA: false, transB: true, m: n, n: K, k: V, alpha: 1, a: dO, lda: ldv, b: S, ldb: V, beta: 0, c: tmp, ldc: K)
        for i in 0..<n { for d in 0..<K { dq[i * ldk + d] = scale * expCumulative.pointer[i * K + d] * tmp[i * K + d] } }
        T.gemm(transA: false, transB: true, m: n, n: K, k: V, alpha: 1, a: at.v, lda: ldv, b: dS, ldb: V, beta: 0, c: tmp, ldc: K)
        for i in 0..<n { for d in 0..<K { dk[i * ldk + d] = decayToEnd.pointer[i * K + d] * tmp[i * K + d] } }
        // Intra-chunk terms, sub-chunk by sub-chunk.
        for i0 in stride(from: 0, to: n, by: subChunkSize) {
            let i1 = min(i0 + subChunkSize, n)
            if i0 > 0 {
                prepareOffDiagonal(at, i0, i1)
                // dQ_I += s e^{G_I - r} (dA_{I,<I} (K e^{r - G})_<I)
                T.gemm(transA: false, transB: false, m: i1 - i0, n: K, k: i0, alpha: 1, a: dA + i0 * C, lda: C,
                       b: kScaled.pointer, ldb: K, beta: 0, c: tmp, ldc: K)
                for i in i0..<i1 {
                    for d in 0..<K { dq[i * ldk + d] += scale * ratioQ.pointer[(i - i0) * K + d] * tmp[(i - i0) * K + d] }
                }
                // dK_<I += e^{r - G} (dA_{I,<I}^T (s Q_I e^{G_I - r}))
                T.gemm(transA: true, transB: false, m: i0, n: K, k: i1 - i0, alpha: 1, a: dA + i0 * C, lda: C,
                       b: qScaled.pointer, ldb: K, beta: 0, c: tmp, ldc: K)
                for j in 0..<i0 { for d in 0..<K { dk[j * ldk + d] += ratioK.pointer[j * K + d] * tmp[j * K + d] } }
            }
            for i in i0..<i1 {  // diagonal sub-block
                preparePairDecays(row: i, from: i0)
                let qRow = at.q + i * ldk
                for jj in 0...(i - i0) {
                    let j = i0 + jj
                    let w = scale * dA[i * C + j]
                    let kRow = at.k + j * ldk, e = pairExp.pointer + jj * K
                    for d in 0..<K {
                        dq[i * ldk + d] += w * kRow[d] * e[d]
                        dk[j * ldk + d] += w * qRow[d] * e[d]
                    }
                }
            }
        }
    }
}
