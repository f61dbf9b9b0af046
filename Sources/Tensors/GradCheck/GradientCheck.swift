import Foundation

/// The outcome of one check: a gradient check of an op or layer, or a forward-form comparison.
public struct CheckResult: Sendable {
    /// What was checked, e.g. "softmax" or "s4d: step == parallel (Float32)".
    public let name: String
    /// Whether every compared quantity is within tolerance.
    public let passed: Bool
    /// The worst error found (relative to the scale of the compared quantity).
    public let error: Double
    /// The tolerance it was held to.
    public let tolerance: Double
    /// Where the worst error sits, or why the check failed.
    public let detail: String

    public init(name: String, passed: Bool, error: Double, tolerance: Double, detail: String) {
        self.name = name
        self.passed = passed
        self.error = error
        self.tolerance = tolerance
        self.detail = detail
    }

    /// One printed row: PASS/FAIL, name, error against tolerance, detail.
    public var row: String {
        let status = passed ? "PASS" : "FAIL"
        return "\(status)  \(name.padding(toLength: 44, withPad: " ", startingAt: 0))  "
            + String(format: "err %.2e (tol %.0e)  ", error, tolerance) + detail
    }
}

/// Finite-difference gradient checking in Float64: the gold standard every op and layer is held to.
///
/// The scalar probed is L = sum_i <f_i(x), W_i> with fixed random cotangents W_i, so every output (and every
/// entry of it) takes part. For each leaf x and each probed entry j, the central difference
/// (L(x + eps e_j) - L(x - eps e_j)) / (2 eps) is compared with the tape's dL/dx_j. The error of a leaf is
/// max_j |analytic_j - numeric_j| / max(max_j |numeric_j|, max_j |analytic_j|, floor): relative to the gradient's
/// own scale, so that entries near zero neither hide nor fake an error.
public enum GradientCheck {
    /// Checks the gradients of `f` with respect to the named leaves (perturbed in place, restored afterwards).
    /// - Parameters:
    ///   - leaves: the tensors to differentiate with respect to; they are marked `requiringGrad`.
    ///   - maxProbes: entries probed per leaf (all when the leaf is smaller; else a seeded random sample).
    ///   - f: recomputes the outputs from the current leaf values.
    public static func check(
        _ name: String, leaves: [(String, Tensor<Double>)], tolerance: Double = 1e-6, eps: Double = 1e-6,
        maxProbes: Int = 64, seed: UInt64 = 17, floor: Double = 1e-2, _ f: () -> [Tensor<Double>]
    ) -> CheckResult {
        var rng = RandomGenerator(seed: seed)
        for (_, t) in leaves {
            t.zeroGrad()
            t.requiringGrad()
        }
        let outputs = f()
        let cotangents = outputs.map { Tensor<Double>.randn($0.shape, using: &rng) }
        var loss: Tensor<Double>? = nil
        for (y, w) in zip(outputs, cotangents) {
            let term = (y * w).sum()
            loss = loss.map { $0 + term } ?? term
        }
        guard let loss, loss.requiresGrad else {
            return CheckResult(name: name, passed: false, error: .infinity, tolerance: tolerance,
                               detail: "the outputs do not depend on any leaf")
        }
        loss.backward()

        func probeLoss() -> Double {
            Tape.withoutGradients {
                zip(f(), cotangents).reduce(0.0) { acc, pair in
                    var s = 0.0
                    for i in 0..<pair.0.count { s += pair.0.data[i] * pair.1.data[i] }
                    return acc + s
                }
            }
        }

        var worst = 0.0, worstDetail = "", nonFinite = false
        for (leafName, t) in leaves {
            let analytic = t.grad ?? [Double](repeating: 0, count: t.count)
            let probes = t.count <= maxProbes
                ? Array(0..<t.count) : (0..<maxProbes).map { _ in rng.int(below: t.count) }
            var numeric = [Double](), picked = [Double]()
            for j in probes {
                let original = t.data[j]
                t.data[j] = original + eps
                let plus = probeLoss()
                t.data[j] = original - eps
                let minus = probeLoss()
                t.data[j] = original
                numeric.append((plus - minus) / (2 * eps))
                picked.append(analytic[j])
            }
            if !(numeric + picked).allSatisfy({ $0.isFinite }) { nonFinite = true }
            let scale = max(floor, numeric.map(Swift.abs).max() ?? 0, picked.map(Swift.abs).max() ?? 0)
            for (k, j) in probes.enumerated() {
                let err = Swift.abs(picked[k] - numeric[k]) / scale
                if err > worst || err.isNaN {
                    worst = err.isNaN ? .infinity : err
                    worstDetail = "worst at \(leafName)[\(j)]: tape \(fmt(picked[k])) vs finite difference \(fmt(numeric[k]))"
                }
            }
        }
        for (_, t) in leaves { t.zeroGrad() }
        if nonFinite { worst = .infinity; worstDetail = "non-finite gradient; " + worstDetail }
        return CheckResult(name: name, passed: worst <= tolerance, error: worst, tolerance: tolerance, detail: worstDetail)
    }

    /// fla's comparison metric: sqrt(mean (got - reference)^2) / sqrt(mean reference^2), or 0 when
    /// max |got - reference| <= `floor` (so that a reference that is exactly zero, such as a gate gradient at one
    /// token, is matched by values within the floor); infinity for a non-finite value.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func relativeRMS<T: TensorScalar>(_ got: [T], _ reference: [Double], floor: Double = 0) -> Double {
        precondition(got.count == reference.count, "relativeRMS: \(got.count) vs \(reference.count) scalars")
        var (diff, norm, maxDiff) = (0.0, 0.0, 0.0)
        for (g, b) in zip(got, reference) {
            let a = Double(g)
            guard a.isFinite else { return .infinity }
            diff += (a - b) * (a - b); norm += b * b; maxDiff = max(maxDiff, abs(a - b))
        }
        return maxDiff <= floor ? 0 : (diff / max(norm, 1e-300)).squareRoot()
    }

    /// Compares two arrays: max |a - b| / max(max |b|, floor). Used for fast form == slow form checks; a floor keeps
    /// a quantity that is zero in exact arithmetic from turning round-off into a huge ratio.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func relativeError<T: TensorScalar>(_ a: [T], _ b: [T], floor: Double = 1e-300) -> Double {
        precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) scalars")
        var diff = 0.0, scale = floor
        for i in 0..<a.count {
            let (x, y) = (Double(a[i]), Double(b[i]))
            if !x.isFinite || !y.isFinite { return .infinity }
            diff = max(diff, Swift.abs(x - y))
            scale = max(scale, Swift.abs(y))
        }
        return diff / scale
    }

    /// A comparison as a check result.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func compare<T: TensorScalar>(_ name: String, _ a: [T], _ reference: [T], tolerance: Double) -> CheckResult {
        let err = relativeError(a, reference)
        return CheckResult(name: name, passed: err <= tolerance, error: err, tolerance: tolerance,
                           detail: "max |a - ref| / max |ref| over \(a.count) values")
    }
}

private func fmt(_ x: Double) -> String { String(format: "%.6e", x) }
