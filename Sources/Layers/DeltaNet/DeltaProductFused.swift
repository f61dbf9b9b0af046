import Tensors

// The (gated) delta rule and DeltaProduct (Schlag et al. 2021; Yang et al. 2024, "Parallelizing Linear Transformers
// with the Delta Rule over Sequence Length"; Siems et al. 2025, "DeltaProduct"), as ONE fused tape node in the
// recurrent form with a hand-written backward. Per batch member and head, state S in R^{K x V}; per token t:
//     P_0 = e^{g_t} S_{t-1}                                         (gate once, at the first sub-step)
//     for j = 0..NH-1:  u_j = P_j^T k_j,  v'_j = beta_j (v_j - u_j),  P_{j+1} = P_j + k_j v'_j^T
//     S_t = P_NH,   o_t = S_t^T (s q_t)
// i.e. S_t = prod_j (I - beta_j k_j k_j^T) e^{g_t} S_{t-1} + (rank NH); NH = 1 is DeltaNet.
//
// Forward keeps a checkpoint of S every `segment` tokens. Backward walks the segments in reverse: it recomputes the
// segment's sub-step states P_j (and v'_j, v_j - u_j) from its checkpoint, then sweeps its tokens in reverse carrying
// dS = dLoss/dS_t:
//     dS += s q_t do_t^T,  dq_t = s S_t do_t  (S_t = P_{NH-1} + k v'^T, not stored)
//     per sub-step j (reverse): dk_j = dS v'_j,  dv'_j = dS^T k_j,  dv_j = beta_j dv'_j,  dbeta_j = <dv'_j, v_j - u_j>,
//                               du = -beta_j dv'_j,  dS += k_j du^T,  dk_j += P_j du
//     dg_t = <P_0, dS>,  dS <- e^{g_t} dS;   dh0 = dS at the start.
// Work per token and head: forward 2 NH + 1 multiply-add passes over K x V; backward 2 NH (recompute) + 4 NH + 3; all
// inner loops run over contiguous rows of V (vectorised; row dot products on SIMD16 lanes for Float).

/// Strides of the `delta_product` signature: q [B, L, H, K], k [B, L, NH, H, K], v [B, L, NH, H, V],
/// beta [B, L, NH, H], g [B, L, H], o [B, L, H, V], states [B, H, K, V].
public struct DeltaProductGeometry: Sendable {
    public let batch, length, householder, heads, keyDim, valueDim: Int
    public var items: Int { batch * heads }
    var stateSize: Int { keyDim * valueDim }
}

/// The gated delta rule with NH Householder sub-steps per token, fused recurrent form (one tape node, hand-written
/// backward with checkpointed recomputation every `segment` tokens).
///
/// - Parameters: q [B, L, H, K]; k [B, L, NH, H, K]; v [B, L, NH, H, V]; beta [B, L, NH, H] (any real; the layer
///   uses [0, 1] or [0, 2]); g [B, L, H] log-decay (optional, <= 0 in practice); h0 [B, H, K, V] (optional);
///   scale s (default K^-1/2); segment = tokens between state checkpoints (default 64).
/// - Returns: o [B, L, H, V] and hT [B, H, K, V].
@_specialize(where T == Float)
@_specialize(where T == Double)
public func deltaProductRecurrentFused<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, beta: Tensor<T>, logDecay g: Tensor<T>? = nil,
    initialState h0: Tensor<T>? = nil, scale: T? = nil, segment: Int = 64
) -> (output: Tensor<T>, finalState: Tensor<T>) {
    let geo = validatedDeltaGeometry(q: q, k: k, v: v, beta: beta, g: g, h0: h0)
    let (B, L, H, K, V) = (geo.batch, geo.length, geo.heads, geo.keyDim, geo.valueDim)
    precondition(segment >= 1, "delta_product: segment must be >= 1")
    // Nothing to scan: o is empty and the state passes through unchanged.
    if L == 0 || B * H * K * V == 0 { return (Tensor.zeros([B, L, H, V]), h0 ?? Tensor.zeros([B, H, K, V])) }
    let s = scale ?? 1 / T(K).squareRoot()
    var inputs = [q, k, v, beta]
    if let g { inputs.append(g) }
    if let h0 { inputs.append(h0) }
    let saving = Tape.needsGrad(inputs)
    let segments = (L + segment - 1) / segment
    let (qD, kD, vD, bD, gD) = (q.data, k.data, v.data, beta.data, g?.data)
    var out = [T](repeating: 0, count: B * L * H * V)
    var state = h0?.data ?? [T](repeating: 0, count: geo.items * geo.stateSize)
    var checkpoints = [T](repeating: 0, count: saving ? geo.items * segments * geo.stateSize : 0)
    let kernel = DeltaProductKernel<T>(geo: geo, scale: s, segment: segment)
    qD.withUnsafeBufferPointer { qp in kD.withUnsafeBufferPointer { kp in vD.withUnsafeBufferPointer { vp in
    bD.withUnsafeBufferPointer { bp in out.withUnsafeMutableBufferPointer { op in state.withUnsafeMutableBufferPointer { sp in
    checkpoints.withUnsafeMutableBufferPointer { cp in
        let io = DeltaProductKernel<T>.Pointers(q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, beta: bp.baseAddress!, g: nil)
        let (ob, sb, cb) = (op.baseAddress!, sp.baseAddress!, cp.baseAddress)
        let run = { (io: DeltaProductKernel<T>.Pointers) in
            Parallel.forEach(geo.items) { item in
                kernel.forward(item: item, io: io, o: ob, S: sb + item * geo.stateSize,
                               checkpoints: saving ? cb! + item * segments * geo.stateSize : nil)
            }
        }
        if let gD { gD.withUnsafeBufferPointer { gp in run(io.with(g: gp.baseAddress!)) } } else { run(io) }
    }}}}}}}
    let o = Tensor(shape: [B, L, H, V], data: out)                 // [B, L, H, V]
    let hT = Tensor(shape: [B, H, K, V], data: state)               // [B, H, K, V]
    let hasG = g != nil, hasH0 = h0 != nil
    Tape.record("delta_product", inputs: inputs, outputs: [o, hT]) { grads in
        var r = kernel.backward(q: qD, k: kD, v: vD, beta: bD, g: gD, checkpoints: checkpoints, dO: grads[0], dhT: grads[1])
        if !hasG { r.remove(at: 4) }
        if !hasH0 { r.removeLast() }
        return r
    }
    return (o, hT)
}

/// The gated delta rule with NH Householder sub-steps per token (DeltaProduct, Siems et al. 2025; NH = 1 is the
/// gated delta rule): q [B, L, H, K], k [B, L, NH, H, K], v [B, L, NH, H, V], beta [B, L, NH, H], g [B, L, H]
/// (optional log-decay <= 0), h0 [B, H, K, V] (optional) -> o [B, L, H, V], hT [B, H, K, V]. One tape node in the
/// chosen `form`: `.chunked` (default; `deltaProductChunked`, chunkSize sub-steps per chunk) or `.recurrent`
/// (`deltaProductRecurrentFused`, chunkSize tokens between the backward's state checkpoints).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func deltaProduct<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, beta: Tensor<T>, logDecay g: Tensor<T>? = nil,
    initialState h0: Tensor<T>? = nil, scale: T? = nil, form: DeltaForm = .chunked, chunkSize: Int = 64
) -> (output: Tensor<T>, finalState: Tensor<T>) {
    switch form {
    case .chunked:
        return deltaProductChunked(q: q, k: k, v: v, beta: beta, logDecay: g, initialState: h0, scale: scale, chunkSize: chunkSize)
    case .recurrent:
        return deltaProductRecurrentFused(q: q, k: k, v: v, beta: beta, logDecay: g, initialState: h0, scale: scale, segment: chunkSize)
    }
}

/// The delta rule (DeltaNet, NH = 1): q, k [B, L, H, K], v [B, L, H, V], beta [B, L, H], g [B, L, H] (optional),
/// h0 [B, H, K, V] (optional) -> o [B, L, H, V], hT. `deltaProduct` with one sub-step per token.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func deltaRule<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, beta: Tensor<T>, logDecay g: Tensor<T>? = nil,
    initialState h0: Tensor<T>? = nil, scale: T? = nil, form: DeltaForm = .chunked, chunkSize: Int = 64
) -> (output: Tensor<T>, finalState: Tensor<T>) {
    precondition(q.rank == 4 && k.shape == q.shape && v.rank == 4 && beta.rank == 3, "delta_rule: q, k [B, L, H, K], v [B, L, H, V], beta [B, L, H]")
    let (B, L, H) = (q.shape[0], q.shape[1], q.shape[2])
    return deltaProduct(q: q, k: k.reshaped([B, L, 1, H, q.shape[3]]), v: v.reshaped([B, L, 1, H, v.shape[3]]),
                        beta: beta.reshaped([B, L, 1, H]), logDecay: g, initialState: h0, scale: scale, form: form, chunkSize: chunkSize)
}
