import Tensors

/// Op-level checks of the attention layer's pieces: RoPE's gradient, and the flash kernel against naive attention
/// across its query and key block edges and with a KV cache (fewer queries than keys).
public enum AttentionChecks {
    /// RoPE gradient checks and kernel == naive comparisons (appended to `CheckCatalog.opChecks`).
    public static let all: [OpCheck] = [
        OpCheck("rotary_embedding", shapes: [[2, 5, 2, 6]]) { $0[0].rotaryEmbedding(positionOffset: 3) },
        OpCheck("rotary_embedding_odd_dim", shapes: [[1, 4, 1, 5]]) { $0[0].rotaryEmbedding(positionOffset: 0, base: 100) },
        OpCheck("attention==naive_blocks") { _ in
            OpCheck.compareForms("attention==naive_blocks", shapes: [[1, 300, 1, 3], [1, 300, 1, 3], [1, 300, 1, 3]], floor: 1e-4) { x, fast in
                [fast ? scaledDotProductAttention(q: x[0], k: x[1], v: x[2]) : referenceAttention(q: x[0], k: x[1], v: x[2])]
            }
        },
        OpCheck("forgetting_attention==naive") { _ in  // block edges, strong and weak gates (logsigmoid of N(0, 1) x 3)
            OpCheck.compareForms("forgetting_attention==naive", shapes: [[2, 300, 2, 3], [2, 300, 2, 3], [2, 300, 2, 3], [2, 300, 2]],
                                 floor: 1e-4) { x, fast in
                let g = (x[3] * 3).logSigmoid()
                return [fast ? scaledDotProductAttention(q: x[0], k: x[1], v: x[2], logForgetGates: g)
                             : referenceAttention(q: x[0], k: x[1], v: x[2], logForgetGates: g)]
            }
        },
        OpCheck("forgetting_attention==naive_kv_cache") { _ in
            OpCheck.compareForms("forgetting_attention==naive_kv_cache", shapes: [[1, 7, 2, 4], [1, 40, 2, 4], [1, 40, 2, 4], [1, 40, 2]],
                                 floor: 1e-4) { x, fast in
                let g = x[3].logSigmoid()
                return [fast ? scaledDotProductAttention(q: x[0], k: x[1], v: x[2], scale: 0.3, logForgetGates: g)
                             : referenceAttention(q: x[0], k: x[1], v: x[2], scale: 0.3, logForgetGates: g)]
            }
        },
        OpCheck("attention==naive_kv_cache") { _ in
            OpCheck.compareForms("attention==naive_kv_cache", shapes: [[2, 37, 2, 4], [2, 290, 2, 4], [2, 290, 2, 4]], floor: 1e-4) { x, fast in
                [fast ? scaledDotProductAttention(q: x[0], k: x[1], v: x[2], scale: 0.3)
                      : referenceAttention(q: x[0], k: x[1], v: x[2], scale: 0.3)]
            }
        },
    ]
}
