import Tensors

/// The weights of fla's ShortConvolution on q, k and v (GLA, DeltaNet / DeltaProduct, RetNet, HGRN2): depthwise
/// nn.Conv1d(C, C, k, groups = C, bias = False) per stream, [C, 1, k] each, drawn in the order q, k, v from PyTorch's
/// default U(+-1/sqrt(k)) (kaiming_uniform(a = sqrt 5) with fan_in = k for groups = C).
public enum ShortConvolutionWeights {
    /// The three weights for `q`, `k` and `v` channels and `width` taps (differentiable leaves).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func draw<T: TensorScalar>(_ q: Int, _ k: Int, _ v: Int, width: Int,
                                             rng: inout RandomGenerator) -> (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>) {
        let bound = T(1 / Double(width).squareRoot())
        func weight(_ channels: Int) -> Tensor<T> {
            Tensor.uniform([channels, 1, width], low: -bound, high: bound, using: &rng, requiresGrad: true)
        }
        let wq = weight(q), wk = weight(k)
        return (wq, wk, weight(v))
    }
}
