import Tensors

// The recurrent form of the gated delta rule / DeltaProduct on basic tape ops: obviously right, the reference the
// fused node is tested against, and the layer's step mode.
//     S <- e^{g_t} S;  for j: S <- S + k_j (beta_j (v_j - S^T k_j))^T;  o_t = S^T (s q_t).

/// One token of DeltaProduct: q [B, H, K], k [B, NH, H, K], v [B, NH, H, V], beta [B, NH, H], g [B, H] (optional),
/// state S [B, H, K, V] -> (o [B, H, V], the new state). Differentiable (tape ops).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func deltaProductStep<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, beta: Tensor<T>, logDecay g: Tensor<T>?, state: Tensor<T>, scale: T
) -> (output: Tensor<T>, state: Tensor<T>) {
    let (b, nh, h, kd, vd) = (k.shape[0], k.shape[1], k.shape[2], k.shape[3], v.shape[3])
    var S = state
    if let g { S = S * g.exp().reshaped([b, h, 1, 1]) }                          // [B, H, K, V]
    for j in 0..<nh {
        let kj = k.slice(axis: 1, j..<(j + 1)).reshaped([b, h, kd])              // [B, H, K]
        let vj = v.slice(axis: 1, j..<(j + 1)).reshaped([b, h, vd])              // [B, H, V]
        let bj = beta.slice(axis: 1, j..<(j + 1)).reshaped([b, h, 1])            // [B, H, 1]
        let u = kj.reshaped([b, h, 1, kd]).matmul(S).reshaped([b, h, vd])       // [B, H, V]
        let vNew = (vj - u) * bj                                                 // [B, H, V]
        S = S + kj.reshaped([b, h, kd, 1]) * vNew.reshaped([b, h, 1, vd])        // [B, H, K, V]
    }
    let o = (q * scale).reshaped([b, h, 1, kd]).matmul(S).reshaped([b, h, vd])  // [B, H, V]
    return (o, S)
}

/// DeltaProduct, recurrent form token by token: the slow reference of `deltaProduct` (same shapes).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func deltaProductRecurrent<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, beta: Tensor<T>, logDecay g: Tensor<T>? = nil,
    initialState h0: Tensor<T>? = nil, scale: T? = nil
) -> (output: Tensor<T>, finalState: Tensor<T>) {
    let (B, L, H, K, V) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3], v.shape[4])
    let s = scale ?? 1 / T(K).squareRoot()
    var S = h0 ?? Tensor.zeros([B, H, K, V])
    let (qs, ks, vs, bs) = (q.timeSteps(), k.timeSteps(), v.timeSteps(), beta.timeSteps())
    let gs = g?.timeSteps()
    var outputs: [Tensor<T>] = []
    for t in 0..<L {
        let (o, next) = deltaProductStep(q: qs[t], k: ks[t], v: vs[t], beta: bs[t], logDecay: gs?[t], state: S, scale: s)
        outputs.append(o.reshaped([B, 1, H, V]))
        S = next
    }
    let o = L == 0 ? Tensor.zeros([B, 0, H, V]) : Tensor.concatenate(outputs, axis: 1)
    return (o, S)
}

/// DeltaProduct as the plain delta rule on the interleaved length-L NH sequence (REFERENCE.md section 4): sub-step
/// (t, j) has key k[:, t, j], gate g_t at j = 0 and 0 otherwise; o_t is the output after sub-step NH - 1.
/// Recurrent (tape ops); used to test that DeltaProduct is the delta rule on the interleaved sequence.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func deltaProductInterleaved<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, beta: Tensor<T>, logDecay g: Tensor<T>? = nil,
    initialState h0: Tensor<T>? = nil, scale: T? = nil
) -> (output: Tensor<T>, finalState: Tensor<T>) {
    let (B, L, NH, H, K, V) = (k.shape[0], k.shape[1], k.shape[2], k.shape[3], k.shape[4], v.shape[4])
    let s = scale ?? 1 / T(K).squareRoot()
    let kk = k.reshaped([B, L * NH, 1, H, K]), vv = v.reshaped([B, L * NH, 1, H, V]), bb = beta.reshaped([B, L * NH, 1, H])
    // Queries at every sub-step (zero except the last), gates at the first.
    let qq = NH == 1 ? q : Tensor.concatenate([Tensor<T>.zeros([B, L, NH - 1, H, K]), q.reshaped([B, L, 1, H, K])], axis: 2)
        .reshaped([B, L * NH, H, K])                                                                     // [B, L NH, H, K]
    let gg = NH == 1 ? g : g.map {
        Tensor.concatenate([$0.reshaped([B, L, 1, H]), Tensor<T>.zeros([B, L, NH - 1, H])], axis: 2).reshaped([B, L * NH, H])
    }
    let (o, hT) = deltaProductRecurrent(q: qq, k: kk, v: vv, beta: bb, logDecay: gg, initialState: h0, scale: s)
    return (o.reshaped([B, L, NH, H, V]).slice(axis: 2, (NH - 1)..<NH).reshaped([B, L, H, V]), hT)
}
