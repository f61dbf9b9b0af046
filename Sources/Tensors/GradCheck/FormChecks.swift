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

    /// Compares `f(x, fast: true)` with `f(x, fast: false)`: outputs, and input gradients under a random cotangent.
    static func formCheck(
        _ name: String, shapes: [[Int]], tolerance: Double = 1e-10,
        _ f: @escaping @Sendable ([Tensor<Double>], _ fast: Bool) -> Tensor<Double>
    ) -> OpCheck {
        OpCheck(name) { _ in
            var rng = RandomGenerator(seed: 77)
            let base = shapes.map { Tensor<Double>.randn($0, using: &rng) }
            var outputs: [[Double]] = [], grads: [[[Double]]] = []
            var cotangent: [Double]? = nil
            for fast in [true, false] {
                let x = base.map { $0.detached().requiringGrad() }
                let y = f(x, fast)
                if cotangent == nil { cotangent = Tensor<Double>.randn(y.shape, using: &rng).data }
                y.backward(seed: cotangent)
                outputs.append(y.data)
                grads.append(x.map { $0.grad ?? [] })
            }
            var worst = GradientCheck.relativeError(outputs[0], outputs[1]), at = "output"
            for i in 0..<shapes.count {
                let e = GradientCheck.relativeError(grads[0][i], grads[1][i])
                if e > worst { worst = e; at = "gradient of input \(i)" }
            }
            return CheckResult(name: name, passed: worst <= tolerance, error: worst, tolerance: tolerance,
                               detail: "fast vs reference; worst: \(at)")
        }
    }
}
