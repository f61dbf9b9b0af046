import Tensors

extension Tensor {
    /// One step of a causal depthwise convolution (the recurrent form of `causalDepthwiseConv1d`, no bias, no
    /// activation): this token u [B, C] with the previous w - 1 inputs `window` [B, w - 1, C] and `weight` [C, 1, w]
    /// (or [C, w]); returns y [B, C] = sum_j weight[c, j] [window, u][b, j, c] and advances the window by one token.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func causalConvolutionStep(weight: Tensor, window: inout Tensor) -> Tensor {
        let (batch, channels) = (shape[0], shape[1])
        guard let width = depthwiseTaps(weight, channels: channels) else {
            preconditionFailure("causalConvolutionStep: weight \(weight.shape) for \(channels) channels")
        }
        let full = Tensor.concatenate([window, reshaped([batch, 1, channels])], axis: 1)  // [B, w, C]
        window = full.slice(axis: 1, 1..<width)                                           // [B, w - 1, C]
        return (full * weight.reshaped([channels, width]).transposed()).sum(axis: 1)       // [B, C]
    }
}
