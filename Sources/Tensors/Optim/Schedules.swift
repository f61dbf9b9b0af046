import RealModule

/// A learning-rate schedule: the factor `step(scheduleFactor:)` multiplies every parameter's base learning rate by.
/// `step` is the 0-based index of the update about to be made (`optimizer.stepCount` before the call).
public enum LearningRateSchedule: Codable, Equatable, Sendable {
    /// factor = 1.
    case constant
    /// Linear warmup, then constant: factor = min(1, (step + 1) / warmupSteps).
    case linearWarmup(warmupSteps: Int)
    /// Linear warmup then cosine decay (SGDR without restarts: Loshchilov & Hutter, "SGDR: Stochastic Gradient
    /// Descent with Warm Restarts", ICLR 2017). With W = warmupSteps, S = totalSteps, f = minFactor:
    ///
    ///     step < W:       (step + 1) / W                         (1/W at step 0, 1 at step W − 1)
    ///     W ≤ step ≤ S:   f + (1 − f) · ½ (1 + cos(π (step − W) / (S − W)))   (1 at W, f at S)
    ///     step > S:       f
    case warmupCosine(warmupSteps: Int, totalSteps: Int, minFactor: Double)

    /// The learning-rate factor for the update with 0-based index `step` (formulas on each case).
    public func factor(step: Int) -> Double {
        switch self {
        case .constant:
            return 1
        case .linearWarmup(let warmup):
            return Self.warmup(step, warmup) ?? 1
        case .warmupCosine(let warmup, let total, let minFactor):
            precondition(total >= warmup, "warmupCosine: totalSteps \(total) < warmupSteps \(warmup)")
            if let f = Self.warmup(step, warmup) { return f }
            if step >= total { return minFactor }
            let progress = Double(step - warmup) / Double(total - warmup)
            return minFactor + (1 - minFactor) * 0.5 * (1 + Double.cos(Double.pi * progress))
        }
    }

    /// (step + 1) / warmup during warmup, nil after it.
    private static func warmup(_ step: Int, _ warmup: Int) -> Double? {
        step < warmup ? Double(step + 1) / Double(warmup) : nil
    }
}
