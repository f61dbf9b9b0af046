import Tensors

/// The op-level checks of the Mamba module (`seqlab check --op NAME`, and `--all`): Float64 finite differences of
/// each fused node, and fused == reference comparisons of outputs and every input gradient.
public enum MambaChecks {
    public static var opChecks: [OpCheck] {
        var negative = SelectiveScanProblem()
        negative.negativeEigenvalues = true
        var bare = SelectiveScanProblem()
        (bare.withSkip, bare.withGate, bare.withBias, bare.deltaSoftplus) = (false, false, false, false)
        var oneToken = SelectiveScanProblem()
        oneToken.length = 1
        let gradients: [(String, SelectiveScanProblem)] = [
            ("selective_scan", SelectiveScanProblem()), ("selective_scan_negative_eigenvalues", negative),
            ("selective_scan_bare", bare),
        ]
        let forms: [(String, SelectiveScanProblem)] = [
            ("selective_scan==reference", SelectiveScanProblem()), ("selective_scan==reference_negative", negative),
            ("selective_scan==reference_bare", bare), ("selective_scan==reference_one_token", oneToken),
        ]
        let convSiLU: @Sendable ([Tensor<Double>], Bool) -> [Tensor<Double>] = { x, fused in
            [fused ? shortConvolutionSiLU(x[0], weight: x[1], bias: x[2])
                : x[0].causalDepthwiseConv1d(weight: x[1], bias: x[2]).silu()]
        }
        let split: @Sendable ([Tensor<Double>], Bool) -> [Tensor<Double>] = { x, fused in
            fused ? splitLastAxis(x[0], sizes: [2, 0, 5, 1]) : x[0].split(axis: 2, sizes: [2, 0, 5, 1])
        }
        return gradients.map { name, p in OpCheck(name) { quick in p.gradientCheck(name, quick: quick) } }
            + forms.map { name, p in
                OpCheck(name) { _ in
                    let (error, at) = p.compareForms()
                    return CheckResult(name: name, passed: error <= 1e-10, error: error, tolerance: 1e-10,
                                       detail: "fused vs reference; worst: \(at)")
                }
            }
            + [
                finiteDifferences("short_conv_silu_bias", shapes: [[2, 7, 70], [70, 4], [70]]) { convSiLU($0, true) },
                finiteDifferences("split_last_axis", shapes: [[2, 3, 8]]) { split($0, true) },
                OpCheck.formCheck("short_conv_silu_bias==conv1d_silu", shapes: [[3, 11, 131], [131, 4], [131]], tolerance: 1e-12, seed: 23, outputs: convSiLU),
                OpCheck.formCheck("short_conv_silu_bias==conv1d_silu_wide_kernel", shapes: [[1, 3, 5], [5, 6], [5]], tolerance: 1e-12, seed: 23, outputs: convSiLU),
                OpCheck.formCheck("split_last_axis==split", shapes: [[2, 3, 8]], tolerance: 1e-12, seed: 23, outputs: split),
            ]
    }

    /// A Float64 finite-difference check of `f` over standard normal inputs of the given shapes.
    static func finiteDifferences(
        _ name: String, shapes: [[Int]], _ f: @escaping @Sendable ([Tensor<Double>]) -> [Tensor<Double>]
    ) -> OpCheck {
        OpCheck(name) { quick in
            var rng = RandomGenerator(seed: 21)
            let x = shapes.map { Tensor<Double>.randn($0, using: &rng) }
            return GradientCheck.check(name, leaves: x.enumerated().map { ("x\($0.offset)", $0.element) },
                                       maxProbes: quick ? 12 : 48) { f(x) }
        }
    }
}
