import Tensors

/// Op-level checks of the linear-attention kernels: Float64 finite differences of the fused chunked GLA node and
/// chunked == recurrent (outputs, final state and all input gradients) at sizes that cross chunk and sub-chunk edges.
public enum LinearAttentionChecks {
    /// GLA on leaves (q, k, v, gate logits, h0), with log-gates logsigmoid(logits) / normalizer: [o, hT].
    static func gla(_ x: [Tensor<Double>], fast: Bool, normalizer: Double = 1, chunk: Int = 4, subChunk: Int = 2) -> [Tensor<Double>] {
        let g = x[3].logSigmoid() / normalizer
        let h0 = x.count > 4 ? x[4] : nil
        let (o, hT) = fast
            ? gatedLinearAttention(q: x[0], k: x[1], v: x[2], logGates: g, initialState: h0, chunkSize: chunk, subChunkSize: subChunk)
            : gatedLinearAttentionRecurrent(q: x[0], k: x[1], v: x[2], logGates: g, initialState: h0)
        return [o, hT]
    }

    /// The scalar-gate kernel on leaves (q, k, v, gate logits [B, L, H], h0), log-gates logsigmoid(logits) / normalizer:
    /// [o, hT]; the slow form is the recurrent GLA with the gate broadcast over the K channels.
    static func scalarGLA(_ x: [Tensor<Double>], fast: Bool, normalizer: Double = 1, chunk: Int = 4) -> [Tensor<Double>] {
        let g = x[3].logSigmoid() / normalizer
        let h0 = x.count > 4 ? x[4] : nil
        let (o, hT) = fast
            ? scalarGatedLinearAttention(q: x[0], k: x[1], v: x[2], logGates: g, initialState: h0, chunkSize: chunk)
            : gatedLinearAttentionRecurrent(q: x[0], k: x[1], v: x[2], logGates: g.reshaped(g.shape + [1]).broadcast(to: x[0].shape), initialState: h0)
        return [o, hT]
    }

    /// Shapes (q, k, v, gate logits [B, L, H], h0) for B, L, H, K, V.
    static func scalarShapes(_ b: Int, _ l: Int, _ h: Int, _ k: Int, _ v: Int, initialState: Bool = true) -> [[Int]] {
        [[b, l, h, k], [b, l, h, k], [b, l, h, v], [b, l, h]] + (initialState ? [[b, h, k, v]] : [])
    }

    static func scalarGradientCheck(_ name: String, shapes: [[Int]], normalizer: Double, chunk: Int = 4) -> OpCheck {
        OpCheck(name) { quick in
            var rng = RandomGenerator(seed: 2026)
            let leaves = shapes.enumerated().map { ("x\($0.offset)", Tensor<Double>.randn($0.element, using: &rng)) }
            return GradientCheck.check(name, leaves: leaves, maxProbes: quick ? 12 : 48) {
                scalarGLA(leaves.map(\.1), fast: true, normalizer: normalizer, chunk: chunk)
            }
        }
    }

    /// Shapes (q, k, v, gate logits, h0) for B, L, H, K, V.
    static func glaShapes(_ b: Int, _ l: Int, _ h: Int, _ k: Int, _ v: Int, initialState: Bool = true) -> [[Int]] {
        [[b, l, h, k], [b, l, h, k], [b, l, h, v], [b, l, h, k]] + (initialState ? [[b, h, k, v]] : [])
    }

    /// Finite-difference check of the chunked node on leaves of `shapes`.
    static func gradientCheck(_ name: String, shapes: [[Int]], normalizer: Double, chunk: Int = 4, subChunk: Int = 2) -> OpCheck {
        OpCheck(name) { quick in
            var rng = RandomGenerator(seed: 2024)
            let leaves = shapes.enumerated().map { ("x\($0.offset)", Tensor<Double>.randn($0.element, using: &rng)) }
            return GradientCheck.check(name, leaves: leaves, maxProbes: quick ? 12 : 48) {
                gla(leaves.map(\.1), fast: true, normalizer: normalizer, chunk: chunk, subChunk: subChunk)
            }
        }
    }

    /// The checks `seqlab check --op gla` runs (appended to `CheckCatalog.opChecks`).
    public static let all: [OpCheck] = [
        gradientCheck("gla_chunked", shapes: glaShapes(2, 11, 2, 3, 4), normalizer: 1),
        gradientCheck("gla_chunked_strong_gates", shapes: glaShapes(1, 9, 2, 3, 2), normalizer: 0.1),
        gradientCheck("gla_chunked_one_token", shapes: glaShapes(2, 1, 1, 3, 2), normalizer: 1),
        gradientCheck("gla_chunked_no_initial_state", shapes: glaShapes(1, 7, 1, 5, 3, initialState: false), normalizer: 10, chunk: 64, subChunk: 16),
        OpCheck("gla==recurrent") { _ in
            OpCheck.compareForms("gla==recurrent", shapes: glaShapes(2, 37, 2, 5, 3), floor: 1e-4) { x, fast in gla(x, fast: fast, chunk: 8, subChunk: 3) }
        },
        scalarGradientCheck("scalar_gla_chunked", shapes: scalarShapes(2, 11, 2, 3, 4), normalizer: 1),
        scalarGradientCheck("scalar_gla_chunked_strong_gates", shapes: scalarShapes(1, 9, 2, 3, 2), normalizer: 0.05),
        scalarGradientCheck("scalar_gla_chunked_one_token", shapes: scalarShapes(2, 1, 1, 3, 2), normalizer: 1),
        scalarGradientCheck("scalar_gla_chunked_no_initial_state", shapes: scalarShapes(1, 7, 1, 5, 3, initialState: false), normalizer: 10, chunk: 64),
        OpCheck("scalar_gla==recurrent") { _ in
            OpCheck.compareForms("scalar_gla==recurrent", shapes: scalarShapes(2, 37, 2, 5, 3), floor: 1e-4) { x, fast in scalarGLA(x, fast: fast, chunk: 8) }
        },
        OpCheck("scalar_gla==recurrent_strong_gates") { _ in
            OpCheck.compareForms("scalar_gla==recurrent_strong_gates", shapes: scalarShapes(1, 70, 2, 6, 7, initialState: false), floor: 1e-4) { x, fast in
                scalarGLA(x, fast: fast, normalizer: 0.05, chunk: 64)
            }
        },
        OpCheck("gla==recurrent_strong_gates") { _ in
            OpCheck.compareForms("gla==recurrent_strong_gates", shapes: glaShapes(1, 70, 1, 6, 7), floor: 1e-4) { x, fast in
                gla(x, fast: fast, normalizer: 0.1, chunk: 64, subChunk: 16)
            }
        },
    ]
}
