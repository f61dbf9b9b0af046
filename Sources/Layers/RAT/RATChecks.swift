import Tensors

/// The op-level checks of RAT's fused nodes (and of the token-blocked projections RAT and GAM share), for
/// `seqlab check --op NAME` and `--all`: Float64 finite differences, and fast form == reference form on outputs and
/// every input gradient, at lengths that are not a multiple of the chunk.
public enum RATChecks {
    /// Finite-difference checks and form checks, by name.
    public static let checks: [OpCheck] = [
        OpCheck("rat_chunk_attention", shapes: [[2, 7, 2, 4], [2, 7, 4, 4], [2, 7, 4, 4]]) { x in
            chunkAttention(q: x[0], k: x[1], v: x[2], chunkSize: 3)
        },
        OpCheck("rat_chunked_recurrence", shapes: [[2, 7, 6], [2, 7, 3], [2, 7, 6], [6]]) { x in
            let (vt, kt) = chunkedGatedRecurrence(values: x[0], keys: x[1], gateLogits: x[2], gateBias: x[3], chunkSize: 3)
            return Tensor.concatenate([vt, kt], axis: 2)
        },
        OpCheck("token_blocked_linear", shapes: [[2, 150, 3], [5, 3], [5]]) { x in
            let parts = tokenBlockedLinear(x[0], weight: x[1], bias: x[2], splits: [2, 3])
            return Tensor.concatenate([parts[0].square(), parts[1]], axis: 2)
        },
        OpCheck("token_blocked_gated_linear", shapes: [[2, 150, 3], [2, 150, 3], [4, 3]]) { x in
            tokenBlockedGatedLinear(x[0], gateLogits: x[1], weight: x[2])
        },
        OpCheck.formCheck("rat_chunk_attention==masked_dense", shapes: [[2, 11, 2, 4], [2, 11, 4, 4], [2, 11, 4, 4]]) { x, fast in
            (fast ? chunkAttention : referenceChunkAttention)(x[0], x[1], x[2], 3, nil, 10_000)
        },
        OpCheck.formCheck("rat_chunk_attention==masked_dense_long", shapes: [[1, 150, 1, 6], [1, 150, 2, 6], [1, 150, 2, 6]]) { x, fast in
            (fast ? chunkAttention : referenceChunkAttention)(x[0], x[1], x[2], 2, nil, 100)
        },
        OpCheck.formCheck("rat_chunk_attention==causal_attention", shapes: [[2, 70, 2, 3], [2, 70, 2, 3], [2, 70, 2, 3]]) { x, fast in
            fast ? chunkAttention(q: x[0], k: x[1], v: x[2], chunkSize: 1, ropeBase: nil) : scaledDotProductAttention(q: x[0], k: x[1], v: x[2])
        },
        OpCheck.formCheck("rat_chunk_attention==one_chunk", shapes: [[2, 9, 1, 4], [2, 9, 2, 4], [2, 9, 2, 4]]) { x, fast in
            (fast ? chunkAttention : referenceChunkAttention)(x[0], x[1], x[2], 16, nil, 10_000)
        },
        OpCheck.formCheck("rat_chunked_recurrence==stepwise", shapes: [[2, 11, 6], [2, 11, 2], [2, 11, 6], [6]]) { x, fast in
            let (vt, kt) = (fast ? chunkedGatedRecurrence : referenceChunkedGatedRecurrence)(x[0], x[1], x[2], x[3], 4)
            return Tensor.concatenate([vt, kt], axis: 2)
        },
    ]
}
