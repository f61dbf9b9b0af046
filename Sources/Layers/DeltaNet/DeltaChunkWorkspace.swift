import COpenBLAS
import Tensors

// The per-chunk work of the chunked (gated) delta rule / DeltaProduct (see DeltaChunked.swift for the math): gates
// and pairwise decays, the UT system (I + A) V' = R, outputs, and the chunk's input gradients. One workspace per
// work item (a batch member and head); sub-step rows are those of the interleaved length-L NH sequence, read in place
// from k [B, L, NH, H, K] (leading dimension H K), v (H V) and beta (H).

/// Pointers to one chunk: `tokens` tokens of q (leading dimension H K), g (H) and `rows` = tokens NH sub-steps of
/// k (H K), v (H V), beta (H).
struct DeltaChunk<T> {
    let q, k, v, beta: UnsafePointer<T>
    let g: UnsafePointer<T>?
    let tokens, rows: Int
}

/// X <- (I + A)^-1 X, or (I + A)^-T X when `transposed`, for A strictly lower triangular [n, n] (its diagonal and
/// upper part are not read) and X [n, m]: BLAS trsm with a unit diagonal.
@inline(__always)
func unitLowerSolve<T: TensorScalar>(transposed: Bool, n: Int, columns m: Int, a: UnsafePointer<T>, lda: Int,
                                     x: UnsafeMutablePointer<T>, ldx: Int) {
    guard n > 1, m > 0 else { return }
    let trans = transposed ? CblasTrans : CblasNoTrans
    if T.self == Float.self {
        cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, trans, CblasUnit, Int32(n), Int32(m), 1,
                    UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), Int32(lda),
                    UnsafeMutableRawPointer(x).assumingMemoryBound(to: Float.self), Int32(ldx))
    } else {
        cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, trans, CblasUnit, Int32(n), Int32(m), 1,
                    UnsafeRawPointer(a).assumingMemoryBound(to: Double.self), Int32(lda),
                    UnsafeMutableRawPointer(x).assumingMemoryBound(to: Double.self), Int32(ldx))
    }
}

/// Scratch buffers and the per-chunk steps of the chunked delta-rule kernel. Row-major: n x n buffers have leading
/// dimension C (the chunk's maximum number of sub-steps), key-like rows K, value-like rows V.
final class DeltaChunkWorkspace<T: TensorScalar> {
    let keyDim, valueDim, householder, chunkRows, keyStride, valueStride, heads: Int
    let scale: T
    /// Cumulative log-gate G per sub-step (constant over a token's sub-steps), e^G, e^{G_last - G} [C].
    let cumulative, expCumulative, decayToEnd: AlignedBuffer<T>
    /// D_rj = e^{G_r - G_j} for j <= r, zero above [C, C].
    let decays: AlignedBuffer<T>
    /// K K^T [C, C].
    let gram: AlignedBuffer<T>
    /// A = strict_lower(diag(beta) K K^T * D) [C, C]; the backward overwrites it with dA, then with dKK + dKK^T.
    let system, systemGrad: AlignedBuffer<T>
    /// Scores s (Q K^T * D) for each token's last sub-step, masked to j <= r(t) [C/NH, C], and their gradients.
    let scores, scoreGrads: AlignedBuffer<T>
    /// e^G K, e^{G_last - G} K [C, K]; s e^G Q [C/NH, K]; GEMM results [C, K].
    let kDecayed, kToEnd, qDecayed, product: AlignedBuffer<T>
    /// Value-like scratch [C, V]: V' (when not saved), dV' / dR / dP, and P = e^G K S.
    let values, valueGrads, projected: AlignedBuffer<T>
    /// dLoss/dG per sub-step [C]; e^{G_t - G_u} for one token t against the chunk's tokens u <= t, and e^{-G_u}
    /// [2 C / NH].
    let gateGrads, tokenDecays: AlignedBuffer<T>
    /// e^{G_last}: the chunk's decay of the state.
    private(set) var chunkDecay: T = 1

    init(keyDim: Int, valueDim: Int, householder: Int, heads: Int, chunkRows: Int, scale: T) {
        (self.keyDim, self.valueDim, self.householder, self.heads, self.chunkRows) = (keyDim, valueDim, householder, heads, chunkRows)
        (keyStride, valueStride, self.scale) = (heads * keyDim, heads * valueDim, scale)
        let (C, tokens) = (chunkRows, max(1, chunkRows / householder))
        cumulative = AlignedBuffer(count: C); expCumulative = AlignedBuffer(count: C); decayToEnd = AlignedBuffer(count: C)
        decays = AlignedBuffer(count: C * C); gram = AlignedBuffer(count: C * C)
        system = AlignedBuffer(count: C * C); systemGrad = AlignedBuffer(count: C * C)
        scores = AlignedBuffer(count: tokens * C); scoreGrads = AlignedBuffer(count: tokens * C)
        kDecayed = AlignedBuffer(count: C * keyDim); kToEnd = AlignedBuffer(count: C * keyDim)
        qDecayed = AlignedBuffer(count: tokens * keyDim); product = AlignedBuffer(count: C * keyDim)
        values = AlignedBuffer(count: C * valueDim); valueGrads = AlignedBuffer(count: C * valueDim)
        projected = AlignedBuffer(count: C * valueDim); gateGrads = AlignedBuffer(count: C)
        tokenDecays = AlignedBuffer(count: 2 * tokens)
    }

    /// Sub-step row of token t's last sub-step (where its query reads the state).
    @inline(__always) func readRow(_ t: Int) -> Int { t * householder + householder - 1 }

    /// The chunk-local products every pass needs: G, e^G, e^{G_last - G}, e^{G_last}, D, K K^T, A, s e^G Q,
    /// e^G K, e^{G_last - G} K, and the masked scores.
    func prepare(_ at: DeltaChunk<T>) {
        let (K, C, NH, n) = (keyDim, chunkRows, householder, at.rows)
        let (G, e, toEnd, D) = (cumulative.pointer, expCumulative.pointer, decayToEnd.pointer, decays.pointer)
        // G per token (inclusive cumsum within the chunk), spread over its sub-steps.
        var running: T = 0
        for t in 0..<at.tokens {
            if let g = at.g { running += g[t * heads] }
            for j in 0..<NH { G[t * NH + j] = running }
        }
        for t in 0..<at.tokens {
            let (et, toEndT) = (T.exp(G[t * NH]), T.exp(running - G[t * NH]))
            for j in 0..<NH { e[t * NH + j] = et; toEnd[t * NH + j] = toEndT }
        }
        chunkDecay = T.exp(running)
        // D_rj = e^{G_r - G_j}, j <= r (all <= 1 for log-gates <= 0), per pair of tokens (G is constant over a
        // token's sub-steps), spread over their NH x NH sub-steps. Without gates D = 1; when the chunk decays by less
        // than e^-60, D = e^{G_r} / e^{G_j} (no exp per pair, nothing near underflow); else one exp per pair.
        let (pair, inverse) = (tokenDecays.pointer, tokenDecays.pointer + at.tokens)
        let ratios = at.g != nil && running > -60
        if ratios { for u in 0..<at.tokens { inverse[u] = 1 / e[u * NH] } }
        for t in 0..<at.tokens {
            if ratios {
                let et = e[t * NH]
                for u in 0...t { pair[u] = et * inverse[u] }
            } else if at.g != nil {
                for u in 0...t { pair[u] = -G[u * NH] }
                _ = VectorMath.exponentiate(pair, count: t + 1, minus: -G[t * NH])
            } else {
                for u in 0...t { pair[u] = 1 }
            }
            for j in 0..<NH {
                let r = t * NH + j, row = D + r * C
                for u in 0..<t { let d = pair[u]; for i in 0..<NH { row[u * NH + i] = d } }
                for i in 0...j { row[t * NH + i] = 1 }
                for i in (r + 1)..<max(n, r + 1) { row[i] = 0 }
            }
        }
        // K K^T   [n, n];  A = strict_lower(diag(beta) K K^T * D)   [n, n]
        T.gemm(transA: false, transB: true, m: n, n: n, k: K, alpha: 1, a: at.k, lda: keyStride, b: at.k, ldb: keyStride,
               beta: 0, c: gram.pointer, ldc: C)
        let A = system.pointer
        for r in 0..<n {
            let br = at.beta[r * heads], kk = gram.pointer + r * C, d = D + r * C, a = A + r * C
            for j in 0..<r { a[j] = br * kk[j] * d[j] }
        }
        // e^G K, e^{G_last - G} K   [n, K];  s e^G Q   [tokens, K]
        for r in 0..<n {
            let (kr, kd, ke, er, tr) = (at.k + r * keyStride, kDecayed.pointer + r * K, kToEnd.pointer + r * K, e[r], toEnd[r])
            for c in 0..<K { kd[c] = er * kr[c] }
            for c in 0..<K { ke[c] = tr * kr[c] }
        }
        for t in 0..<at.tokens {
            let (qt, qd, w) = (at.q + t * keyStride, qDecayed.pointer + t * K, scale * e[readRow(t)])
            for c in 0..<K { qd[c] = w * qt[c] }
        }
        // Scores s (Q K^T * D) masked to j <= r(t)   [tokens, n]
        let Sc = scores.pointer
        T.gemm(transA: false, transB: true, m: at.tokens, n: n, k: K, alpha: scale, a: at.q, lda: keyStride, b: at.k, ldb: keyStride,
               beta: 0, c: Sc, ldc: C)
        for t in 0..<at.tokens {
            let r = readRow(t), row = Sc + t * C, d = D + r * C
            for j in 0...r { row[j] *= d[j] }
            for j in (r + 1)..<max(n, r + 1) { row[j] = 0 }
        }
    }

    /// Forward over one chunk (after `prepare`): V' = (I + A)^-1 diag(beta) (V - e^G K S) into `vNew` (leading
    /// dimension ldn), o = (s e^G Q) S + Sc V' into `o` (leading dimension H V), then S <- e^{G_last} S + (e^{G_last - G} K)^T V'.
    func forward(_ at: DeltaChunk<T>, state S: UnsafeMutablePointer<T>, vNew: UnsafeMutablePointer<T>, ldn: Int, o: UnsafeMutablePointer<T>) {
        let (K, V, C, n) = (keyDim, valueDim, chunkRows, at.rows)
        // P = (e^G K) S   [n, V]; R = diag(beta) (V - P)
        T.gemm(transA: false, transB: false, m: n, n: V, k: K, alpha: 1, a: kDecayed.pointer, lda: K, b: S, ldb: V, beta: 0, c: vNew, ldc: ldn)
        for r in 0..<n {
            let br = at.beta[r * heads], vr = at.v + r * valueStride, x = vNew + r * ldn
            for c in 0..<V { x[c] = br * (vr[c] - x[c]) }
        }
        unitLowerSolve(transposed: false, n: n, columns: V, a: system.pointer, lda: C, x: vNew, ldx: ldn)   // V' [n, V]
        // o = (s e^G Q) S + Sc V'   [tokens, V]
        T.gemm(transA: false, transB: false, m: at.tokens, n: V, k: K, alpha: 1, a: qDecayed.pointer, lda: K, b: S, ldb: V, beta: 0, c: o, ldc: valueStride)
        T.gemm(transA: false, transB: false, m: at.tokens, n: V, k: n, alpha: 1, a: scores.pointer, lda: C, b: vNew, ldb: ldn, beta: 1, c: o, ldc: valueStride)
        ChunkState.decayAndAccumulate(S, keyDim: K, valueDim: V, scalarDecay: chunkDecay, a: kToEnd.pointer, lda: K, b: vNew, ldb: ldn, rows: n)
    }

    /// Backward over one chunk (after `prepare`). `S` is the state entering the chunk, `vNew` its saved V', `dS` the
    /// gradient of the state leaving it (replaced by the gradient of the state entering it), `dO` the output
    /// gradient rows (leading dimension H V). Writes the chunk's rows of dq, dk (H K), dv (H V), dbeta (H) and dg (H).
    func backward(_ at: DeltaChunk<T>, state S: UnsafePointer<T>, vNew: UnsafePointer<T>, ldn: Int, dState dS: UnsafeMutablePointer<T>,
                  dO: UnsafePointer<T>, dq: UnsafeMutablePointer<T>, dk: UnsafeMutablePointer<T>, dv: UnsafeMutablePointer<T>,
                  dbeta: UnsafeMutablePointer<T>, dg: UnsafeMutablePointer<T>?) {
        let (K, V, C, NH, n, tokens) = (keyDim, valueDim, chunkRows, householder, at.rows, at.tokens)
        let (ldk, ldv) = (keyStride, valueStride)
        let (e, toEnd, D, dG) = (expCumulative.pointer, decayToEnd.pointer, decays.pointer, gateGrads.pointer)
        let (Sc, dSc, A, dA, tmp, dX) = (scores.pointer, scoreGrads.pointer, system.pointer, systemGrad.pointer, product.pointer, valueGrads.pointer)
        for r in 0..<n { dG[r] = 0 }
        let last = n - 1
        // dV' = (e^{G_last - G} K) dS + Sc^T dO   [n, V]
        T.gemm(transA: false, transB: false, m: n, n: V, k: K, alpha: 1, a: kToEnd.pointer, lda: K, b: dS, ldb: V, beta: 0, c: dX, ldc: V)
        T.gemm(transA: true, transB: false, m: n, n: V, k: tokens, alpha: 1, a: Sc, lda: C, b: dO, ldb: ldv, beta: 1, c: dX, ldc: V)
        // dSc = dO V'^T on j <= r(t); gate weight dSc * Sc; then dSc <- s dSc * D (the gradient of Q K^T)   [tokens, n]
        T.gemm(transA: false, transB: true, m: tokens, n: n, k: V, alpha: 1, a: dO, lda: ldv, b: vNew, ldb: ldn, beta: 0, c: dSc, ldc: C)
        for t in 0..<tokens {
            let r = readRow(t), row = dSc + t * C, sc = Sc + t * C, d = D + r * C
            var rowWeight: T = 0
            for j in 0...r {
                let w = row[j] * sc[j]
                rowWeight += w; dG[j] -= w
                row[j] *= scale * d[j]
            }
            dG[r] += rowWeight
            for j in (r + 1)..<max(n, r + 1) { row[j] = 0 }
        }
        // dq = s e^G (dO S^T) + dSc K   [tokens, K]
        T.gemm(transA: false, transB: true, m: tokens, n: K, k: V, alpha: 1, a: dO, lda: ldv, b: S, ldb: V, beta: 0, c: tmp, ldc: K)
        for t in 0..<tokens {
            let r = readRow(t), w = scale * e[r], qt = at.q + t * ldk, dqt = dq + t * ldk, x = tmp + t * K
            for c in 0..<K { dqt[c] = w * x[c] }
            let acc = rowDot(qt, x, K)
            dG[r] += w * acc
        }
        T.gemm(transA: false, transB: false, m: tokens, n: K, k: n, alpha: 1, a: dSc, lda: C, b: at.k, ldb: ldk, beta: 1, c: dq, ldc: ldk)
        // dk = dSc^T Q + e^{G_last - G} (V' dS^T)   [n, K]
        T.gemm(transA: true, transB: false, m: n, n: K, k: tokens, alpha: 1, a: dSc, lda: C, b: at.q, ldb: ldk, beta: 0, c: dk, ldc: ldk)
        T.gemm(transA: false, transB: true, m: n, n: K, k: V, alpha: 1, a: vNew, lda: ldn, b: dS, ldb: V, beta: 0, c: tmp, ldc: K)
        for r in 0..<n {
            let kr = at.k + r * ldk, dkr = dk + r * ldk, x = tmp + r * K, tr = toEnd[r]
            for c in 0..<K { dkr[c] += tr * x[c] }
            let acc = rowDot(kr, x, K)
            let w = tr * acc
            dG[last] += w; dG[r] -= w
        }
        // dR = (I + A)^-T dV';  dA = -strict_lower(dR V'^T)
        unitLowerSolve(transposed: true, n: n, columns: V, a: A, lda: C, x: dX, ldx: V)
        T.gemm(transA: false, transB: true, m: n, n: n, k: V, alpha: -1, a: dX, lda: V, b: vNew, ldb: ldn, beta: 0, c: dA, ldc: C)
        // Through A = beta_r (K K^T)_rj D_rj: dbeta, the gate weight dA * A, and F = dKK + dKK^T (in dA's place).
        for r in 0..<n {
            let br = at.beta[r * heads], a = A + r * C, da = dA + r * C, kk = gram.pointer + r * C, d = D + r * C
            var db: T = 0, rowWeight: T = 0
            for j in 0..<r {
                let x = da[j], w = x * a[j]
                rowWeight += w; dG[j] -= w
                db += x * kk[j] * d[j]
                let f = br * d[j] * x
                da[j] = f; dA[j * C + r] = f
            }
            da[r] = 0
            dG[r] += rowWeight
            dbeta[r * heads] = db
        }
        T.gemm(transA: false, transB: false, m: n, n: K, k: n, alpha: 1, a: dA, lda: C, b: at.k, ldb: ldk, beta: 1, c: dk, ldc: ldk)
        // Through R = diag(beta) (V - P): dbeta += <V - P, dR>, dv = beta dR, dP = -beta dR (in dR's place).
        let P = projected.pointer
        T.gemm(transA: false, transB: false, m: n, n: V, k: K, alpha: 1, a: kDecayed.pointer, lda: K, b: S, ldb: V, beta: 0, c: P, ldc: V)
        for r in 0..<n {
            let br = at.beta[r * heads], vr = at.v + r * ldv, dvr = dv + r * ldv, x = dX + r * V, p = P + r * V
            let db = rowDot(vr, x, V) - rowDot(p, x, V)
            for c in 0..<V { dvr[c] = br * x[c] }
            for c in 0..<V { x[c] = -br * x[c] }
            dbeta[r * heads] += db
        }
        // Through P = e^G K S: dk += e^G (dP S^T), dG_r += e_r <k_r, (dP S^T)_r>.
        T.gemm(transA: false, transB: true, m: n, n: K, k: V, alpha: 1, a: dX, lda: V, b: S, ldb: V, beta: 0, c: tmp, ldc: K)
        for r in 0..<n {
            let kr = at.k + r * ldk, dkr = dk + r * ldk, x = tmp + r * K, er = e[r]
            for c in 0..<K { dkr[c] += er * x[c] }
            let acc = rowDot(kr, x, K)
            dG[r] += er * acc
        }
        // The state decay e^{G_last}: dG_last += e^{G_last} <S, dS>; then dS <- e^{G_last} dS + (s e^G Q)^T dO + (e^G K)^T dP.
        let stateDot = rowDot(S, dS, K * V)
        dG[last] += chunkDecay * stateDot
        ChunkState.decayAndAccumulate(dS, keyDim: K, valueDim: V, scalarDecay: chunkDecay, a: qDecayed.pointer, lda: K, b: dO, ldb: ldv, rows: tokens)
        ChunkState.accumulate(dS, keyDim: K, valueDim: V, a: kDecayed.pointer, lda: K, b: dX, ldb: V, rows: n)
        // Gates: dG per token (sum over its sub-steps), then dg_t = sum_{t' >= t in the chunk} dG_t'.
        guard let dg else { return }
        for t in 0..<tokens {
            var s: T = 0
            for j in 0..<NH { s += dG[t * NH + j] }
            dg[t * heads] = s
        }
        reverseCumulativeSum(dg, ld: heads, rows: tokens, width: 1, tail: nil)
    }
}
