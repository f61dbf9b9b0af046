import Tensors

/// Fast form == slow form for kernels with several outputs (o and a final state): outputs and the gradients of
/// every input under one random cotangent per output, compared as max |fast - ref| / max(max |ref|, floor) per
/// quantity (the floor keeps a gradient that is zero in exact arithmetic, such as dq of a one-key softmax, from
/// turning round-off into a huge ratio).
public enum FormComparison {
    /// Runs `f(inputs, fast: true)` and `f(inputs, fast: false)` on the same standard-normal inputs of `shapes`
    /// (Float64) and reports the worst relative difference over outputs and input gradients.
    public static func check(
        _ name: String, shapes: [[Int]], tolerance: Double = 1e-10, floor: Double = 1e-4, seed: UInt64 = 77,
        _ f: ([Tensor<Double>], _ fast: Bool) -> [Tensor<Double>]
    ) -> CheckResult {
        var rng = RandomGenerator(seed: seed)
        let base = shapes.map { Tensor<Double>.randn($0, using: &rng) }
        var outputs: [[[Double]]] = [], grads: [[[Double]]] = []
        var cotangents: [Tensor<Double>] = []
        for fast in [true, false] {
            let x = base.map { $0.detached().requiringGrad() }
            let ys = f(x, fast)
            if cotangents.isEmpty { cotangents = ys.map { Tensor<Double>.randn($0.shape, using: &rng) } }
            let loss = zip(ys, cotangents).map { ($0 * $1).sum() }.reduce(nil as Tensor<Double>?) { acc, t in acc.map { $0 + t } ?? t }!
            loss.backward()
            outputs.append(ys.map(\.data))
            grads.append(x.map { $0.grad ?? [Double](repeating: 0, count: $0.count) })
        }
        var worst = 0.0, at = "output 0"
        for i in 0..<outputs[0].count {
            let e = relativeError(outputs[0][i], outputs[1][i], floor: floor)
            if e > worst || e.isNaN { worst = e.isNaN ? .infinity : e; at = "output \(i)" }
        }
        for i in 0..<shapes.count {
            let e = relativeError(grads[0][i], grads[1][i], floor: floor)
            if e > worst || e.isNaN { worst = e.isNaN ? .infinity : e; at = "gradient of input \(i)" }
        }
        return CheckResult(name: name, passed: worst <= tolerance, error: worst, tolerance: tolerance, detail: "fast vs reference; worst: \(at)")
    }

    /// max |a - b| / max(max |b|, floor); infinite if anything is not finite.
    static func relativeError(_ a: [Double], _ b: [Double], floor: Double) -> Double {
        var diff = 0.0, scale = floor
        for (x, y) in zip(a, b) {
            if !x.isFinite || !y.isFinite { return .infinity }
            diff = max(diff, Swift.abs(x - y))
            scale = max(scale, Swift.abs(y))
        }
        return diff / scale
    }
}
