// Inverted dropout: y = x m / (1 - p) with m ~ Bernoulli(1 - p), drawn from a seeded generator so that a run is
// reproducible; the identity when not training or p = 0.

extension Tensor {
    /// Dropout with drop probability `p` in [0, 1); the identity unless `training`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func dropout(_ p: Double, training: Bool, using rng: inout RandomGenerator) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout: probability \(p) is outside [0, 1)")
        guard training && p > 0 else { return self }
        let scale = T(1 / (1 - p))
        var mask = [T](repeating: 0, count: count)
        for i in 0..<count where rng.uniform() >= p { mask[i] = scale }
        return self * Tensor(shape: shape, data: mask)
    }
}
