import Tensors

/// Op-level checks of the shared modules every layer builds on (appended to `CheckCatalog.opChecks`):
/// `linearGroup` against finite differences and against one `Linear` per map.
public enum ModuleChecks {
    /// Maps of x [2, 5, 7] with 3 (bias), 1 (no bias), 6 (bias) and 4 (no bias) outputs: leaves x, then each map's
    /// weight and bias.
    static let groupShapes: [[Int]] = [[2, 5, 7], [3, 7], [3], [1, 7], [6, 7], [6], [4, 7]]

    /// The maps over the leaves of `groupShapes` (x is leaf 0).
    static func maps(_ p: [Tensor<Double>]) -> [Linear<Double>] {
        [Linear(weight: p[1], bias: p[2]), Linear(weight: p[3], bias: nil), Linear(weight: p[4], bias: p[5]),
         Linear(weight: p[6], bias: nil)]
    }

    public static let all: [OpCheck] = [
        OpCheck("linear_group") { quick in
            var rng = RandomGenerator(seed: 611)
            let leaves = groupShapes.enumerated().map { ("x\($0.offset)", Tensor<Double>.randn($0.element, using: &rng)) }
            return GradientCheck.check("linear_group", leaves: leaves, maxProbes: quick ? 12 : 48) {
                linearGroup(leaves[0].1, maps(leaves.map(\.1)))
            }
        },
        OpCheck.formCheck("linear_group==separate_linears", shapes: groupShapes, tolerance: 1e-12) { x, fast in
            fast ? linearGroup(x[0], maps(x)) : maps(x).map { $0(x[0]) }
        },
        // Only some outputs used (the others get no gradient) and x of rank 2 (a step's [B, D]).
        OpCheck.formCheck("linear_group==separate_linears_partial", shapes: [[3, 7]] + groupShapes.dropFirst(), tolerance: 1e-12) { x, fast in
            let y = fast ? linearGroup(x[0], maps(x)) : maps(x).map { $0(x[0]) }
            return [y[0], y[2]]
        },
    ]
}
