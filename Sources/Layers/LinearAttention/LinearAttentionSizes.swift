import Tensors

/// fla's sizing of the linear-attention layers (GLA, RetNet): key_dim = expand_k D and value_dim = expand_v D, both
/// integers (fla asserts it) and split evenly over the heads.
public enum LinearAttentionSizes {
    /// (key_dim, value_dim), or a one-line error naming `owner` (e.g. "layer gla").
    public static func dimensions(dModel: Int, expandK: Double, expandV: Double, heads: Int, owner: String) throws -> (key: Int, value: Int) {
        let (keyWidth, valueWidth) = (Double(dModel) * expandK, Double(dModel) * expandV)
        guard keyWidth == keyWidth.rounded(), valueWidth == valueWidth.rounded() else {
            throw SequenceLabError("\(owner): expand_k d_model = \(keyWidth) and expand_v d_model = \(valueWidth) must be integers (as fla requires)")
        }
        let (keyDim, valueDim) = (Int(keyWidth), Int(valueWidth))
        guard keyDim > 0, valueDim > 0, keyDim % heads == 0, valueDim % heads == 0 else {
            throw SequenceLabError("\(owner): key_dim \(keyDim) and value_dim \(valueDim) must be positive multiples of heads \(heads)")
        }
        return (keyDim, valueDim)
    }
}

/// The options the fla linear-attention layers (GLA, RetNet) share, declared once: their sizes and short
/// convolutions (defaults per layer) and the chunked kernel's schedule.
public enum LinearAttentionOptions {
    /// heads, expand_k, expand_v, use_short_conv, conv_size with the layer's defaults.
    public static func shape(heads: Int, expandK: Double, expandV: Double, headsHelp: String = "heads") -> [LayerOptionSpec] {
        [.int("heads", heads, headsHelp, min: 1, max: LayerLimits.maximumWidth),
         .number("expand_k", expandK, "key_dim = expand_k d_model", above: 0, max: Double(LayerLimits.maximumExpansion)),
         .number("expand_v", expandV, "value_dim = expand_v d_model", above: 0, max: Double(LayerLimits.maximumExpansion)),
         .bool("use_short_conv", false, "causal depthwise convolution + SiLU on q, k, v"),
         .int("conv_size", 4, "short convolution width", min: 2, max: LayerLimits.maximumConvolutionWidth)]
    }

    /// chunk_size of a chunked kernel: an evaluation schedule only.
    public static let chunkSize: LayerOptionSpec = .int("chunk_size", 64, "tokens per chunk", min: 1, max: LayerLimits.maximumChunk)
    /// chunk_size, sub_chunk_size of the per-channel-gate chunked kernel (`gatedLinearAttention`): a schedule only.
    public static let schedule: [LayerOptionSpec] = [
        chunkSize,
        .int("sub_chunk_size", 16, "tokens per sub-chunk (secondary chunking)", min: 1, max: LayerLimits.maximumChunk),
    ]
}
