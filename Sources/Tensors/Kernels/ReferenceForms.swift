// Slow, obviously right forms of the fused kernels, composed from basic tape ops: the fast forms are tested
// against these (outputs and gradients), as the Annotated S4 and fla test theirs.

/// Direct causal convolution, O(L^2): y[b, t, h] = sum_{s <= t} K[h, t - s] u[b, s, h] + D[h] u[b, t, h].
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceCausalConvolution<T: TensorScalar>(_ u: Tensor<T>, kernel K: Tensor<T>, skip D: Tensor<T>?) -> Tensor<T> {
    let (length, channels) = (u.shape[1], u.shape[2])
    // Toeplitz matrix per channel: M[h, t, s] = K[h, t - s] for s <= t, built by gathering K with an index map.
    var index = [Int](repeating: 0, count: length * length), mask = [Bool](repeating: true, count: length * length)
    for t in 0..<length { for s in 0...t { index[t * length + s] = t - s; mask[t * length + s] = false } }
    let rows = (0..<channels).map { h in
        K.slice(axis: 0, h..<(h + 1)).reshaped([length, 1])
            .embedding(index, indexShape: [length, length]).reshaped([1, length, length])
            .maskedFill(mask, maskShape: [1, length, length], with: 0)
    }
    let toeplitz = Tensor.concatenate(rows, axis: 0)  // [H, L, L]
    let uHeads = u.permuted([2, 1, 0])                // [H, L(s), B]
    var y = toeplitz.matmul(uHeads).permuted([2, 1, 0])  // [B, L, H]
    if let D { y = y + u * D }
    return y
}

/// Naive softmax attention on [B, L, H, E]: the full score matrix, masked, softmaxed, times V.
/// q [B, Lq, H, E], k, v [B, Lk, H, E], Lk >= Lq; causal: query i sees keys j <= Lk - Lq + i. With log forget gates
/// g [B, Lk, H], forgetting attention: the scores get F_i - F_j, F = cumsum of g over the keys (a product with an
/// upper-triangular matrix of ones), query i at key position Lk - Lq + i.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func referenceAttention<T: TensorScalar>(q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, scale: T? = nil, causal: Bool = true,
                                                logForgetGates gates: Tensor<T>? = nil) -> Tensor<T> {
    let (queries, keys, e) = (q.shape[1], k.shape[1], q.shape[3])
    let s = scale ?? 1 / T(e).squareRoot()
    let qh = q.permuted([0, 2, 1, 3]), kh = k.permuted([0, 2, 1, 3]), vh = v.permuted([0, 2, 1, 3])  // [B, H, L, E]
    let b = q.shape[0] * q.shape[2]
    var scores = qh.reshaped([b, queries, e]).matmul(kh.reshaped([b, keys, e]), transposeOther: true) * s  // [B H, Lq, Lk]
    if let gates {
        var upper = [T](repeating: 0, count: keys * keys)
        for t in 0..<keys { for j in t..<keys { upper[t * keys + j] = 1 } }
        let cumulative = gates.permuted([0, 2, 1]).reshaped([b, keys]).matmul(Tensor(shape: [keys, keys], data: upper))  // F [B H, Lk]
        let atQueries = cumulative.slice(axis: 1, (keys - queries)..<keys)                                               // [B H, Lq]
        scores = scores + (atQueries.reshaped([b, queries, 1]) - cumulative.reshaped([b, 1, keys]))
    }
    if causal {
        var mask = [Bool](repeating: false, count: queries * keys)
        for i in 0..<queries { for j in 0..<keys where j > keys - queries + i { mask[i * keys + j] = true } }
        scores = scores.maskedFill(mask, maskShape: [queries, keys], with: -T.infinity)
    }
    let o = scores.softmax().matmul(vh.reshaped([b, keys, e]))  // [B H, Lq, E]
    return o.reshaped([q.shape[0], q.shape[2], queries, e]).permuted([0, 2, 1, 3])
}
