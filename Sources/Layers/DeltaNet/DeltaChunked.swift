import Tensors

// The (gated) delta rule and DeltaProduct in the chunkwise WY / UT form (Yang, Wang, Zhang, Shen, Kim 2024,
// "Parallelizing Linear Transformers with the Delta Rule over Sequence Length", section 3; gated: Yang, Kautz,
// Hatamizadeh 2025, "Gated Delta Networks"; DeltaProduct: Siems et al. 2025), as ONE fused tape node with a
// hand-written backward. DeltaProduct runs on the interleaved sequence of L NH sub-steps (token t, sub-step j at row
// t NH + j; gate at j = 0, query read after j = NH - 1), read in place: k [B, L, NH, H, K] IS that sequence with
// leading dimension H K. Chunks hold whole tokens: C_t = max(1, C / NH) tokens, n = C_t NH sub-steps.
// Per chunk with G = within-chunk cumsum of the log-gates (per sub-step), D_rj = e^{G_r - G_j} (j <= r), S the state
// entering the chunk:
//     A  = strict_lower(diag(beta) (K K^T) * D),   T = (I + A)^-1   (unit lower triangular: BLAS trsm)
//     V' = T diag(beta) (V - e^G K S) = U - W S    (U = T diag(beta) V, W = T diag(beta e^G) K: REFERENCE.md 4, steps 2-4)
//     O  = (s e^G Q) S + Sc V',   Sc_tj = s q_t . k_j D_{r(t) j} for j <= r(t) = t NH + NH - 1
//     S <- e^{G_last} S + (e^{G_last - G} K)^T V'  (the shared inter-chunk state pass, `ChunkState`)
// V' is solved directly from S (one trsm per chunk) rather than as U - W S (two trsm and a GEMM): the same numbers,
// less work on a CPU, where the chunks run in sequence anyway. Every exponent is <= 0 for log-gates <= 0.
//
// Backward keeps the state entering every chunk and V' from the forward pass, then sweeps the chunks in reverse
// carrying dS (the gradient of the state leaving the chunk):
//     dV' = (e^{G_last - G} K) dS + Sc^T dO;   dSc = dO V'^T (masked);  dq = s e^G (dO S^T) + (s dSc * D) K
//     dk  = (s dSc * D)^T Q + e^{G_last - G} (V' dS^T) + (dKK + dKK^T) K + e^G (dP S^T)
//     dR  = T^T dV',  dA = -strict_lower(dR V'^T),  dKK = diag(beta) dA * D,  dbeta = rowsum(dA * KK * D) + <V - P, dR>
//     dv  = beta dR,  dP = -beta dR,   dS <- e^{G_last} dS + (s e^G Q)^T dO + (e^G K)^T dP
// and the gates through G: every pairwise factor D_rj (weights dSc * Sc and dA * A) adds its weight to dG_r and
// subtracts it from dG_j; e^G, e^{G_last - G} and e^{G_last} add theirs; dg = the within-chunk reverse cumsum of dG
// summed over each token's sub-steps (a gate's effect on later chunks travels through dS).

/// How `deltaProduct` / `deltaRule` evaluate the recurrence: the chunkwise WY form (default) or the fused token
/// recurrence (both one tape node with a hand-written backward; the recurrent form is the test reference).
public enum DeltaForm: String, Sendable, CaseIterable {
    case chunked, recurrent
}

/// The gated delta rule with NH Householder sub-steps per token, chunkwise WY / UT form: one tape node.
///
/// - Parameters: q [B, L, H, K]; k [B, L, NH, H, K]; v [B, L, NH, H, V]; beta [B, L, NH, H]; g [B, L, H] log-decay
///   (optional, every entry <= 0); h0 [B, H, K, V] (optional); scale s (default K^-1/2); chunkSize = sub-steps per
///   chunk C (default 64; a chunk holds max(1, C / NH) whole tokens).
/// - Returns: o [B, L, H, V] and hT [B, H, K, V].
@_specialize(where T == Float)
@_specialize(where T == Double)
public func deltaProductChunked<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, beta: Tensor<T>, logDecay g: Tensor<T>? = nil,
    initialState h0: Tensor<T>? = nil, scale: T? = nil, chunkSize: Int = 64
) -> (output: Tensor<T>, finalState: Tensor<T>) {
    let geo = validatedDeltaGeometry(q: q, k: k, v: v, beta: beta, g: g, h0: h0)
    precondition(chunkSize >= 1, "delta_product: chunk_size must be >= 1")
    // A positive log-decay is a caller's bug; NaN or -inf (a diverged model's gates) propagate as NaN outputs for the
    // trainer's divergence stop to report (`seqlab op` refuses non-finite decays before reaching here).
    if let g { precondition(!g.data.contains { $0 > 0 }, "delta_product: log-decays g must be <= 0") }
    let (B, L, NH, H, K, V) = (geo.batch, geo.length, geo.householder, geo.heads, geo.keyDim, geo.valueDim)
    if L == 0 || geo.items * K * V == 0 { return (Tensor.zeros([B, L, H, V]), h0 ?? Tensor.zeros([B, H, K, V])) }
    let plan = DeltaChunkPlan(geo: geo, chunkSize: chunkSize, scale: scale ?? 1 / T(K).squareRoot())
    var inputs = [q, k, v, beta]
    if let g { inputs.append(g) }
    if let h0 { inputs.append(h0) }
    let saving = Tape.needsGrad(inputs)
    let (qD, kD, vD, bD, gD) = (q.data, k.data, v.data, beta.data, g?.data)
    var out = uninitializedScalars(T.self, count: B * L * H * V)    // every row written by its chunk
    var state = h0?.data ?? [T](repeating: 0, count: geo.items * K * V)
    // Saved for the backward: the state entering every chunk and V' [B, L NH, H, V].
    var states = uninitializedScalars(T.self, count: saving ? geo.items * plan.grid.count * K * V : 0)
    var corrected = uninitializedScalars(T.self, count: saving ? B * L * NH * H * V : 0)
    withDeltaPointers(qD, kD, vD, bD, gD) { io in
        out.withUnsafeMutableBufferPointer { op in state.withUnsafeMutableBufferPointer { sp in
        states.withUnsafeMutableBufferPointer { cp in corrected.withUnsafeMutableBufferPointer { vnp in
            let (ob, sb, cb, vnb) = (op.baseAddress!, sp.baseAddress!, cp.baseAddress, vnp.baseAddress)
            Parallel.forEach(geo.items) { item in
                let w = plan.workspace()
                let S = sb + item * K * V                                  // [K, V]: h0 on entry, hT on exit
                for n in 0..<plan.grid.count {
                    let at = plan.chunk(n, item: item, io)
                    if saving { (cb! + (item * plan.grid.count + n) * K * V).update(from: S, count: K * V) }
                    let (vNew, ldn) = saving ? (vnb! + plan.subValueOffset(n, item: item), H * V) : (w.values.pointer, V)
                    w.prepare(at)
                    w.forward(at, state: S, vNew: vNew, ldn: ldn, o: ob + plan.tokenValueOffset(n, item: item))
                }
            }
        } } } }
    }
    let o = Tensor(shape: [B, L, H, V], data: out)                 // [B, L, H, V]
    let hT = Tensor(shape: [B, H, K, V], data: state)               // [B, H, K, V]
    let (hasG, hasH0) = (g != nil, h0 != nil)
    Tape.record("delta_product_chunked", inputs: inputs, outputs: [o, hT]) { grads in
        var r = deltaChunkedBackward(plan: plan, q: qD, k: kD, v: vD, beta: bD, g: gD, states: states, corrected: corrected,
                                     dO: grads[0], dhT: grads[1])
        if !hasG { r.remove(at: 4) }
        if !hasH0 { r.removeLast() }
        return r
    }
    return (o, hT)
}

/// Shapes of the `delta_product` signature, or a precondition failure naming the offending tensor.
func validatedDeltaGeometry<T>(q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, beta: Tensor<T>, g: Tensor<T>?, h0: Tensor<T>?) -> DeltaProductGeometry {
    precondition(q.rank == 4 && k.rank == 5, "delta_product: q must be [B, L, H, K] and k [B, L, NH, H, K], got \(q.shape), \(k.shape)")
    let (B, L, H, K) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let NH = k.shape[2]
    precondition(k.shape == [B, L, NH, H, K], "delta_product: k \(k.shape) must be [B, L, NH, H, K] for q \(q.shape)")
    precondition(v.rank == 5 && Array(v.shape.prefix(4)) == [B, L, NH, H], "delta_product: v \(v.shape) must be [B, L, NH, H, V]")
    let V = v.shape[4]
    precondition(beta.shape == [B, L, NH, H], "delta_product: beta \(beta.shape) must be [B, L, NH, H]")
    if let g { precondition(g.shape == [B, L, H], "delta_product: g \(g.shape) must be [B, L, H]") }
    if let h0 { precondition(h0.shape == [B, H, K, V], "delta_product: h0 \(h0.shape) must be [B, H, K, V]") }
    return DeltaProductGeometry(batch: B, length: L, householder: NH, heads: H, keyDim: K, valueDim: V)
}

/// Base pointers of the kernel inputs (g optional).
struct DeltaPointers<T>: @unchecked Sendable {
    let q, k, v, beta: UnsafePointer<T>
    let g: UnsafePointer<T>?
}

/// Runs `body` with the base pointers of q, k, v, beta and (if given) g.
@inline(__always)
func withDeltaPointers<T, R>(_ q: [T], _ k: [T], _ v: [T], _ beta: [T], _ g: [T]?, _ body: (DeltaPointers<T>) -> R) -> R {
    q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
    beta.withUnsafeBufferPointer { bp in
        let io = DeltaPointers(q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, beta: bp.baseAddress!, g: nil)
        guard let g else { return body(io) }
        return g.withUnsafeBufferPointer { gp in
            body(DeltaPointers(q: io.q, k: io.k, v: io.v, beta: io.beta, g: gp.baseAddress!))
        }
    } } } }
}

/// The chunk layout of one call: the token grid (whole tokens per chunk), the interleaved sub-step geometry of k, v
/// (and V', dk, dv) and the token geometry of q, o (and dq, dO), both from the shared `LinearAttentionGeometry`.
struct DeltaChunkPlan<T: TensorScalar>: @unchecked Sendable {
    let geo: DeltaProductGeometry
    let grid: ChunkGrid
    let tokens, subSteps: LinearAttentionGeometry
    let scale: T

    init(geo: DeltaProductGeometry, chunkSize: Int, scale: T) {
        self.geo = geo
        let perChunk = max(1, chunkSize / geo.householder)
        grid = ChunkGrid(length: geo.length, chunkSize: perChunk, subChunkSize: perChunk)
        tokens = LinearAttentionGeometry(batch: geo.batch, length: geo.length, heads: geo.heads, keyDim: geo.keyDim, valueDim: geo.valueDim)
        subSteps = LinearAttentionGeometry(batch: geo.batch, length: geo.length * geo.householder, heads: geo.heads,
                                           keyDim: geo.keyDim, valueDim: geo.valueDim)
        self.scale = scale
    }

    func workspace() -> DeltaChunkWorkspace<T> {
        DeltaChunkWorkspace(keyDim: geo.keyDim, valueDim: geo.valueDim, householder: geo.householder, heads: geo.heads,
                            chunkRows: grid.chunkSize * geo.householder, scale: scale)
    }

    /// Offset of chunk n's first row in a [B, L NH, H, V] tensor (V', v, dv) for item (b, h).
    @inline(__always) func subValueOffset(_ n: Int, item: Int) -> Int {
        subSteps.valueOffset(item) + grid.chunk(n).lowerBound * geo.householder * subSteps.valueStride
    }
    /// Offset of chunk n's first row in a [B, L NH, H, K] tensor (k, dk).
    @inline(__always) func subKeyOffset(_ n: Int, item: Int) -> Int {
        subSteps.keyOffset(item) + grid.chunk(n).lowerBound * geo.householder * subSteps.keyStride
    }
    /// Offsets of chunk n's first token in [B, L, H, V] (o, dO) and [B, L, H, K] (q, dq).
    @inline(__always) func tokenValueOffset(_ n: Int, item: Int) -> Int { tokens.valueOffset(item) + grid.chunk(n).lowerBound * tokens.valueStride }
    @inline(__always) func tokenKeyOffset(_ n: Int, item: Int) -> Int { tokens.keyOffset(item) + grid.chunk(n).lowerBound * tokens.keyStride }
    /// Offsets of chunk n's first sub-step in beta [B, L NH, H] and first token in g [B, L, H].
    @inline(__always) func betaOffset(_ n: Int, item: Int) -> Int {
        let (b, h) = (item / geo.heads, item % geo.heads)
        return (b * geo.length * geo.householder + grid.chunk(n).lowerBound * geo.householder) * geo.heads + h
    }
    @inline(__always) func gateOffset(_ n: Int, item: Int) -> Int {
        let (b, h) = (item / geo.heads, item % geo.heads)
        return (b * geo.length + grid.chunk(n).lowerBound) * geo.heads + h
    }

    /// Chunk n of item (b, h).
    @inline(__always) func chunk(_ n: Int, item: Int, _ io: DeltaPointers<T>) -> DeltaChunk<T> {
        let count = grid.chunk(n).count
        return DeltaChunk(q: io.q + tokenKeyOffset(n, item: item), k: io.k + subKeyOffset(n, item: item),
                          v: io.v + subValueOffset(n, item: item), beta: io.beta + betaOffset(n, item: item),
                          g: io.g.map { $0 + gateOffset(n, item: item) }, tokens: count, rows: count * geo.householder)
    }
}

/// Backward of the chunked form: [dq, dk, dv, dbeta, dg (empty without g), dh0].
private func deltaChunkedBackward<T: TensorScalar>(
    plan: DeltaChunkPlan<T>, q: [T], k: [T], v: [T], beta: [T], g: [T]?, states: [T], corrected: [T], dO: [T]?, dhT: [T]?
) -> [[T]?] {
    let geo = plan.geo
    let (K, V) = (geo.keyDim, geo.valueDim)
    // Every row of these is written (not accumulated) by its chunk.
    var dq = uninitializedScalars(T.self, count: q.count), dk = uninitializedScalars(T.self, count: k.count)
    var dv = uninitializedScalars(T.self, count: v.count), db = uninitializedScalars(T.self, count: beta.count)
    var dg = uninitializedScalars(T.self, count: g?.count ?? 0)
    var dS = dhT ?? [T](repeating: 0, count: geo.items * K * V)       // becomes dh0
    let dOut = dO ?? [T](repeating: 0, count: geo.batch * geo.length * geo.heads * V)
    let hasG = g != nil
    withDeltaPointers(q, k, v, beta, g) { io in
    states.withUnsafeBufferPointer { cp in corrected.withUnsafeBufferPointer { vnp in dOut.withUnsafeBufferPointer { dop in
    dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in dv.withUnsafeMutableBufferPointer { dvp in
    db.withUnsafeMutableBufferPointer { dbp in dg.withUnsafeMutableBufferPointer { dgp in dS.withUnsafeMutableBufferPointer { dsp in
        let (cb, vnb, dob, dsb) = (cp.baseAddress!, vnp.baseAddress!, dop.baseAddress!, dsp.baseAddress!)
        let (dqb, dkb, dvb, dbb, dgb) = (dqp.baseAddress!, dkp.baseAddress!, dvp.baseAddress!, dbp.baseAddress!, dgp.baseAddress)
        Parallel.forEach(geo.items) { item in
            let w = plan.workspace()
            let dState = dsb + item * K * V
            for n in stride(from: plan.grid.count - 1, through: 0, by: -1) {
                let at = plan.chunk(n, item: item, io)
                w.prepare(at)
                w.backward(at, state: cb + (item * plan.grid.count + n) * K * V, vNew: vnb + plan.subValueOffset(n, item: item),
                           ldn: geo.heads * V, dState: dState, dO: dob + plan.tokenValueOffset(n, item: item),
                           dq: dqb + plan.tokenKeyOffset(n, item: item), dk: dkb + plan.subKeyOffset(n, item: item),
                           dv: dvb + plan.subValueOffset(n, item: item), dbeta: dbb + plan.betaOffset(n, item: item),
                           dg: hasG ? dgb! + plan.gateOffset(n, item: item) : nil)
            }
        }
    } } }
    } } }
    } } }
    }
    return [dq, dk, dv, db, hasG ? dg : nil, dS]
}
