import Foundation
import Tensors

/// Mamba's time-step init (Gu & Dao 2023; mamba_ssm, Mamba-2, fla's GatedDeltaNet / GatedDeltaProduct): dt drawn
/// log-uniform on [dt_min, dt_max] and floored at dt_init_floor, stored as the bias softplus^-1(dt) =
/// dt + log(-expm1(-dt)), so that softplus(bias) = dt at init.
public enum TimeStepInit {
    /// `count` biases, one uniform draw each from `rng`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func biases<T: TensorScalar>(_ count: Int, min dtMin: Double = 0.001, max dtMax: Double = 0.1,
                                               floor: Double = 1e-4, rng: inout RandomGenerator) -> [T] {
        let (logMin, logMax) = (Foundation.log(dtMin), Foundation.log(dtMax))
        return (0..<count).map { _ in
            let dt = Swift.max(floor, Foundation.exp(logMin + rng.uniform() * (logMax - logMin)))
            return T(dt + Foundation.log(-Foundation.expm1(-dt)))
        }
    }
}
