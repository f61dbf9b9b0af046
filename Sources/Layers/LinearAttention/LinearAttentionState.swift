import Tensors

/// The step-mode state of the matrix-memory layers (GLA, DeltaNet / DeltaProduct): the memory S [B, H, K, V] and,
/// with short causal convolutions on q, k, v, the last conv_size - 1 inputs of each ([B, conv_size - 1, channels]).
public struct LinearAttentionState<T: TensorScalar> {
    public var memory: Tensor<T>
    public var convolutionWindows: [Tensor<T>]

    /// Zero memory and, for each short convolution's weight [channels, 1, conv_size] (q, k, v; none without them), a
    /// zero window.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(batchSize: Int, heads: Int, keyDim: Int, valueDim: Int,
                convolutions: (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>)?) {
        memory = Tensor.zeros([batchSize, heads, keyDim, valueDim])
        let weights = convolutions.map { [$0.q, $0.k, $0.v] } ?? []
        convolutionWindows = weights.map { Tensor<T>.zeros([batchSize, $0.shape[$0.rank - 1] - 1, $0.shape[0]]) }
    }

    /// One token of the short causal convolutions on q, k, v ([B, channels] each, weights [channels, 1, conv_size]):
    /// their convolved values, advancing the three windows.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public mutating func convolutionStep(
        q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, weights: (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>)
    ) -> (q: Tensor<T>, k: Tensor<T>, v: Tensor<T>) {
        (q.causalConvolutionStep(weight: weights.q, window: &convolutionWindows[0]),
         k.causalConvolutionStep(weight: weights.k, window: &convolutionWindows[1]),
         v.causalConvolutionStep(weight: weights.v, window: &convolutionWindows[2]))
    }
}
