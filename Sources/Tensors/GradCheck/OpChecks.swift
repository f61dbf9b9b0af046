/// A named Float64 gradient check of one op, with random inputs in the op's valid domain.
/// `seqlab check --op NAME` runs one; `--all` runs every entry of `OpCheck.catalog` (and of the layer modules).
public struct OpCheck: Sendable {
    /// The op's name as `seqlab check --op` takes it.
    public let name: String
    /// Runs the check; `quick` probes fewer entries per input.
    public let run: @Sendable (_ quick: Bool) -> CheckResult

    public init(_ name: String, run: @escaping @Sendable (_ quick: Bool) -> CheckResult) {
        self.name = name
        self.run = run
    }

    /// A check of `f` over random inputs of the given shapes, drawn from `domain` (a closure mapping a standard
    /// normal sample into the op's valid domain).
    public init(
        _ name: String, shapes: [[Int]], tolerance: Double = 1e-6,
        domain: @escaping @Sendable (Double) -> Double = { $0 },
        _ f: @escaping @Sendable ([Tensor<Double>]) -> Tensor<Double>
    ) {
        self.init(name) { quick in
            var rng = RandomGenerator(seed: 1234)
            let inputs = shapes.map { shape in
                Tensor<Double>(shape: shape, data: (0..<elementCount(shape)).map { _ in domain(rng.normal()) })
            }
            let leaves = inputs.enumerated().map { ("x\($0.offset)", $0.element) }
            return GradientCheck.check(name, leaves: leaves, tolerance: tolerance, maxProbes: quick ? 12 : 64) {
                [f(inputs)]
            }
        }
    }
}

/// Keeps inputs away from a kink at zero (relu, abs, max): |x| >= 0.1.
private let awayFromZero: @Sendable (Double) -> Double = { $0 >= 0 ? $0 + 0.1 : $0 - 0.1 }
/// Strictly positive inputs in [0.5, ~3] (log, sqrt, rsqrt, pow, division).
private let positive: @Sendable (Double) -> Double = { 0.5 + Swift.abs($0) }

extension OpCheck {
    /// The gradient checks of every op of the Tensors module.
    public static let catalog: [OpCheck] = [
        OpCheck("reshape", shapes: [[2, 3, 4]]) { $0[0].reshaped([4, -1]).square() },
        OpCheck("permute", shapes: [[2, 3, 4]]) { $0[0].permuted([2, 0, 1]).square() },
        OpCheck("transpose", shapes: [[3, 5]]) { $0[0].transposed().matmul(Tensor(shape: [3, 2], data: [1, 2, 3, 4, 5, 6])) },
        OpCheck("slice", shapes: [[3, 6, 2]]) { $0[0].slice(axis: 1, 2..<5).square() },
        OpCheck("split", shapes: [[4, 5]]) { x in let p = x[0].split(axis: 1, sizes: [2, 3]); return p[0].square().sum() + p[1].exp().sum() },
        OpCheck("concatenate", shapes: [[2, 3], [2, 1], [2, 2]]) { Tensor.concatenate($0, axis: 1).square() },
        OpCheck("broadcast", shapes: [[3, 1]]) { $0[0].broadcast(to: [2, 3, 4]).square() },
        OpCheck("add_broadcast", shapes: [[2, 3, 4], [4]]) { ($0[0] + $0[1]).square() },
        OpCheck("sub_broadcast", shapes: [[2, 3, 1], [3, 4]]) { ($0[0] - $0[1]).square() },
        OpCheck("mul_broadcast", shapes: [[2, 3, 4], [2, 1, 4]]) { $0[0] * $0[1] },
        OpCheck("div_broadcast", shapes: [[2, 3], [3]], domain: positive) { $0[0] / $0[1] },
        OpCheck("scalar_ops", shapes: [[5]], domain: positive) { (2.0 - $0[0] * 3.0 + 1.5) / 2.0 + 4.0 / $0[0] },
        OpCheck("exp", shapes: [[7]]) { $0[0].exp() },
        OpCheck("log", shapes: [[7]], domain: positive) { $0[0].log() },
        OpCheck("sqrt", shapes: [[7]], domain: positive) { $0[0].sqrt() },
        OpCheck("rsqrt", shapes: [[7]], domain: positive) { $0[0].rsqrt() },
        OpCheck("square", shapes: [[7]]) { $0[0].square() },
        OpCheck("pow", shapes: [[7]], domain: positive) { $0[0].pow(1.7) },
        OpCheck("tanh", shapes: [[7]]) { $0[0].tanh() },
        OpCheck("sigmoid", shapes: [[7]], domain: { 4 * $0 }) { $0[0].sigmoid() },
        OpCheck("logsigmoid", shapes: [[7]], domain: { 6 * $0 }) { $0[0].logSigmoid() },
        OpCheck("softplus", shapes: [[7]], domain: { 6 * $0 }) { $0[0].softplus() },
        OpCheck("silu", shapes: [[7]], domain: { 3 * $0 }) { $0[0].silu() },
        OpCheck("gelu", shapes: [[7]], domain: { 3 * $0 }) { $0[0].gelu() },
        OpCheck("relu", shapes: [[7]], domain: awayFromZero) { $0[0].relu() },
        OpCheck("abs", shapes: [[7]], domain: awayFromZero) { $0[0].abs() },
        OpCheck("maximum", shapes: [[6], [6]]) { $0[0].maximum($0[1]) },
        OpCheck("sum_axes", shapes: [[2, 3, 4]]) { $0[0].sum(axes: [0, 2]).square() },
        OpCheck("mean_axis", shapes: [[2, 3, 4]]) { $0[0].mean(axis: 1, keepDims: true).square() },
        OpCheck("max_axis", shapes: [[3, 5]]) { $0[0].max(axis: 1) },
        OpCheck("matmul", shapes: [[3, 4], [4, 5]]) { $0[0].matmul($0[1]) },
        OpCheck("matmul_transposed", shapes: [[4, 3], [5, 4]]) { $0[0].matmul($0[1], transposeSelf: true, transposeOther: true) },
        OpCheck("matmul_shared_weight", shapes: [[2, 3, 4], [4, 5]]) { $0[0].matmul($0[1]) },
        OpCheck("matmul_shared_weight_transposed", shapes: [[2, 3, 4], [5, 4]]) { $0[0].matmul($0[1], transposeOther: true) },
        OpCheck("matmul_shared_weight_transposed_self", shapes: [[2, 4, 3], [4, 5]]) { $0[0].matmul($0[1], transposeSelf: true) },
        OpCheck("batched_matmul", shapes: [[2, 3, 4], [2, 4, 5]]) { $0[0].matmul($0[1]) },
        OpCheck("batched_matmul_transposed", shapes: [[2, 4, 3], [2, 5, 4]]) { $0[0].matmul($0[1], transposeSelf: true, transposeOther: true) },
        OpCheck("softmax", shapes: [[3, 5]]) { $0[0].softmax() },
        OpCheck("log_softmax", shapes: [[3, 5]]) { $0[0].logSoftmax() },
        OpCheck("cross_entropy", shapes: [[2, 3, 5]]) { x in
            x[0].crossEntropy(targets: [1, 4, -100, 0, 2, 3], ignoreIndex: -100, weights: [1, 0.5, 1, 2, 0, 1])
        },
        OpCheck("layer_norm", shapes: [[3, 6], [6], [6]]) { $0[0].layerNorm(gamma: $0[1], beta: $0[2]) },
        OpCheck("rms_norm", shapes: [[3, 6], [6]]) { $0[0].rmsNorm(gamma: $0[1]) },
        // enough rows (4100 of width 2: 2048 rows per worker minimum) that rows and the gain gradients split over workers
        OpCheck("layer_norm_many_rows", shapes: [[4100, 2], [2], [2]]) { ($0[0].layerNorm(gamma: $0[1], beta: $0[2]) * 0.1).square() },
        OpCheck("embedding", shapes: [[5, 3]]) { $0[0].embedding([4, 0, 4, 2], indexShape: [2, 2]).square() },
        OpCheck("causal_depthwise_conv1d", shapes: [[2, 7, 3], [3, 4], [3]]) { $0[0].causalDepthwiseConv1d(weight: $0[1], bias: $0[2]) },
        OpCheck("dropout", shapes: [[4, 5]]) { x in
            var rng = RandomGenerator(seed: 99)  // the same mask at every evaluation
            return x[0].dropout(0.3, training: true, using: &rng).square()
        },
        OpCheck("where", shapes: [[2, 3], [3]]) { x in
            x[0].selecting(where: [true, false, true, false, false, true], maskShape: [2, 3], else: x[1]).square()
        },
        OpCheck("masked_fill", shapes: [[2, 3]]) { x in
            x[0].maskedFill([false, true, false], maskShape: [3], with: -1).square()
        },
        OpCheck("fft_conv", shapes: [[2, 9, 3], [3, 9], [3]]) { fftConvolution($0[0], kernel: $0[1], skip: $0[2]) },
        OpCheck("attention_causal", shapes: [[2, 70, 2, 3], [2, 70, 2, 3], [2, 70, 2, 3]]) {
            scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], causal: true)
        },
        OpCheck("attention_bidirectional", shapes: [[1, 9, 2, 4], [1, 9, 2, 4], [1, 9, 2, 4]]) {
            scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], scale: 0.7, causal: false)
        },
    ]
}
