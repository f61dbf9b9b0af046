import Tensors

/// The op-level checks of GAM's fused nodes: Float64 finite differences, and fast form == reference form (outputs
/// and every input gradient) at sizes that cross the 256-token blocks and the sequence boundaries of the convolution.
public enum GAMChecks {
    /// Finite-difference checks and form checks, by name.
    public static let checks: [OpCheck] = [
        OpCheck("gam_memory_mixer", shapes: [[2, 6, 4], [4], [4], [4, 1, 3], [4], [5, 4], [8, 4], [8]]) { x in
            gatedAssociativeMemory(x[0], normWeight: x[1], normBias: x[2], convWeight: x[3], convBias: x[4], memory: x[5],
                                   gateWeight: x[6], gateBias: x[7])
        },
        OpCheck("residual_feed_forward", shapes: [[2, 5, 4], [4], [4], [6, 4], [6], [4, 6], [4]]) { x in
            residualFeedForward(x[0], normWeight: x[1], normBias: x[2], upWeight: x[3], upBias: x[4], downWeight: x[5], downBias: x[6])
        },
        OpCheck.formCheck("gam_memory_mixer==basic_ops", shapes: [[3, 101, 4], [4], [4], [4, 1, 3], [4], [7, 4], [8, 4], [8]]) { x, fast in
            (fast ? gatedAssociativeMemory : referenceGatedAssociativeMemory)(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7])
        },
        OpCheck.formCheck("residual_feed_forward==basic_ops", shapes: [[2, 150, 4], [4], [4], [6, 4], [6], [4, 6], [4]]) { x, fast in
            var rng = RandomGenerator(seed: 3)
            let mask = (0..<(2 * 150 * 4)).map { _ in rng.uniform() < 0.2 ? 0.0 : 1.25 }
            return (fast ? residualFeedForward : referenceResidualFeedForward)(x[0], x[1], x[2], x[3], x[4], x[5], x[6], mask)
        },
    ]
}
