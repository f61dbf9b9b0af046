/// Fast form == slow form: a fused kernel and its obviously right reference agree on outputs and on the gradients
/// of every input (Float64), at sizes that cross the kernels' block boundaries.
extension OpCheck {
    public static let formChecks: [OpCheck] = [
        formCheck("fft_conv==direct", shapes: [[2, 37, 5], [5, 37], [5]]) { x, fast in
            fast ? fftConvolution(x[0], kernel: x[1], skip: x[2]) : referenceCausalConvolution(x[0], kernel: x[1], skip: x[2])
        },
        formCheck("fft_conv==direct_one_token", shapes: [[3, 1, 2], [2, 1], [2]]) { x, fast in
            fast ? fftConvolution(x[0], kernel: x[1], skip: x[2]) : referenceCausalConvolution(x[0], kernel: x[1], skip: x[2])
        },
        formCheck("attention==naive_causal", shapes: [[2, 131, 2, 5], [2, 131, 2, 5], [2, 131, 2, 5]]) { x, fast in
            fast ? scaledDotProductAttention(q: x[0], k: x[1], v: x[2]) : referenceAttention(q: x[0], k: x[1], v: x[2])
        },
        formCheck("attention==naive_bidirectional", shapes: [[1, 67, 3, 4], [1, 67, 3, 4], [1, 67, 3, 4]]) { x, fast in
            fast ? scaledDotProductAttention(q: x[0], k: x[1], v: x[2], causal: false)
                : referenceAttention(q: x[0], k: x[1], v: x[2], causal: false)
        },
    ]

    /// Compares `f(x, fast: true)` with `f(x, fast: false)` in Float64: every output, and every input gradient under
    /// random cotangents of all outputs (an input the tape leaves without a gradient counts as zero). The error is
    /// relative to the largest reference magnitude. The one mechanism behind every fast-form == slow-form check.
    public static func formCheck(
        _ name: String, shapes: [[Int]], tolerance: Double = 1e-10, floor: Double = 1e-300, seed: UInt64 = 77,
        outputs f: @escaping @Sendable ([Tensor<Double>], _ fast: Bool) -> [Tensor<Double>]
    ) -> OpCheck {
        OpCheck(name) { _ in compareForms(name, shapes: shapes, tolerance: tolerance, floor: floor, seed: seed, f) }
    }

    /// The comparison behind `formCheck`, run now (tests call it directly): the worst relative difference over
    /// outputs and input gradients, max |fast - ref| / max(max |ref|, floor) per quantity.
    public static func compareForms(
        _ name: String, shapes: [[Int]], tolerance: Double = 1e-10, floor: Double = 1e-300, seed: UInt64 = 77,
        _ f: ([Tensor<Double>], _ fast: Bool) -> [Tensor<Double>]
    ) -> CheckResult {
        var rng = RandomGenerator(seed: seed)
        let base = shapes.map { Tensor<Double>.randn($0, using: &rng) }
        var results: [[[Double]]] = [], cotangents: [Tensor<Double>] = []
        for fast in [true, false] {
            let x = base.map { $0.detached().requiringGrad() }
            let outputs = f(x, fast)
            if cotangents.isEmpty { cotangents = outputs.map { Tensor<Double>.randn($0.shape, using: &rng) } }
            var loss = (outputs[0] * cotangents[0]).sum()
            for i in 1..<outputs.count { loss = loss + (outputs[i] * cotangents[i]).sum() }
            loss.backward()
            results.append(outputs.map(\.data) + x.map { $0.grad ?? [Double](repeating: 0, count: $0.count) })
        }
        var worst = 0.0, at = "output 0"
        for i in 0..<results[0].count {
            let e = GradientCheck.relativeError(results[0][i], results[1][i], floor: floor)
            if e > worst || e.isNaN {
                worst = e.isNaN ? .infinity : e
                at = i < cotangents.count ? "output \(i)" : "gradient of input \(i - cotangents.count)"
            }
        }
        return CheckResult(name: name, passed: worst <= tolerance, error: worst, tolerance: tolerance,
                           detail: "fast vs reference; worst: \(at)")
    }

    /// `formCheck` for a single-output kernel.
    public static func formCheck(
        _ name: String, shapes: [[Int]], tolerance: Double = 1e-10, seed: UInt64 = 77,
        _ f: @escaping @Sendable ([Tensor<Double>], _ fast: Bool) -> Tensor<Double>
    ) -> OpCheck {
        formCheck(name, shapes: shapes, tolerance: tolerance, seed: seed, outputs: { [f($0, $1)] })
    }
}
