import Tensors

// The recurrent form of gated linear attention (fla's `naive_recurrent_gla`), on basic tape ops: obviously right,
// the reference the chunked kernel is tested against, and the layer's step mode.
//     S_t = diag(exp g_t) S_{t-1} + k_t^T v_t,    o_t = s q_t S_t.

/// One token of the GLA recurrence: q, k, g [B, H, K], v [B, H, V], state S [B, H, K, V] ->
/// (o [B, H, V], the new state). Differentiable (tape ops).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func gatedLinearAttentionStep<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, logGates g: Tensor<T>, state: Tensor<T>, scale: T
) -> (output: Tensor<T>, state: Tensor<T>) {
    let (b, h, kd, vd) = (q.shape[0], q.shape[1], q.shape[2], v.shape[2])
    let decayed = state * g.exp().reshaped([b, h, kd, 1])                      // [B, H, K, V]
    let S = decayed + k.reshaped([b, h, kd, 1]) * v.reshaped([b, h, 1, vd])  // [B, H, K, V]
    let o = (q * scale).reshaped([b, h, 1, kd]).matmul(S).reshaped([b, h, vd])  // [B, H, V]
    return (o, S)
}

/// Gated linear attention, recurrent form, token by token: the slow reference of `gatedLinearAttention`.
/// Same signature and shapes: q, k, g [B, L, H, K], v [B, L, H, V], h0 [B, H, K, V] -> (o [B, L, H, V], hT).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func gatedLinearAttentionRecurrent<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, logGates g: Tensor<T>, initialState h0: Tensor<T>? = nil, scale: T? = nil
) -> (output: Tensor<T>, finalState: Tensor<T>) {
    let geo = validatedGeometry(q: q, k: k, v: v, g: g, h0: h0)
    let s = scale ?? 1 / T(geo.keyDim).squareRoot()
    var S = h0 ?? Tensor.zeros([geo.batch, geo.heads, geo.keyDim, geo.valueDim])
    let (qs, ks, vs, gs) = (q.timeSteps(), k.timeSteps(), v.timeSteps(), g.timeSteps())  // L x [B, H, *]
    var outputs: [Tensor<T>] = []
    for t in 0..<geo.length {
        let (o, next) = gatedLinearAttentionStep(q: qs[t], k: ks[t], v: vs[t], logGates: gs[t], state: S, scale: s)
        outputs.append(o.reshaped([geo.batch, 1, geo.heads, geo.valueDim]))
        S = next
    }
    let o = geo.length == 0 ? Tensor.zeros([geo.batch, 0, geo.heads, geo.valueDim]) : Tensor.concatenate(outputs, axis: 1)
    return (o, S)
}
