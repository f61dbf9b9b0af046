import Tensors

/// Options shared by the `deltaproduct` and `deltanet` registry entries, which differ only in their defaults.
@usableFromInline
enum DeltaLayerOptions {
    /// `headDim`: nil for auto (d_model / heads, fla's expand_k = 1).
    static func specs(householder: Int, gates: Bool, headDim: Int?, expandV: Double = 1) -> [LayerOptionSpec] {
        let headDimHelp = "key size per head K (auto = d_model / heads, fla's expand_k = 1)"
        return [
            .int("heads", 4, "heads", min: 1, max: LayerLimits.maximumWidth),
            headDim.map { .int("head_dim", $0, headDimHelp, min: 1, max: LayerLimits.maximumWidth, orAuto: true) }
                ?? .intOrAuto("head_dim", headDimHelp, min: 1, max: LayerLimits.maximumWidth),
            .number("expand_v", expandV, "value size per head = expand_v head_dim (a whole number)", above: 0, max: Double(LayerLimits.maximumExpansion)),
            .int("n_h", householder, "Householder (delta) steps per token", min: 1, max: LayerLimits.maximumExpansion),
            .bool("allow_neg_eigval", false, "beta = 2 sigmoid(.) (eigenvalues of I - beta k k^T in [-1, 1])"),
            .bool("use_forget_gate", gates, "gate g = -exp(A_log) softplus(x W_a + dt_bias)"),
            .bool("use_gate", gates, "output gate: RMSNorm(o) * swish(x W_g)"),
            .bool("use_short_conv", true, "causal depthwise convolution (+ SiLU) on q, k, v"),
            .int("conv_size", 4, "short convolution width", min: 2, max: LayerLimits.maximumConvolutionWidth),
            .choice("form", DeltaForm.chunked.rawValue, DeltaForm.allCases.map(\.rawValue),
                    "delta-rule kernel: chunked (WY / UT form) or recurrent (fused token recurrence)"),
            .intOrAuto("chunk_size", "sub-steps per chunk (chunked; auto = max(K, V) in [16, 64]), tokens per checkpoint (recurrent)",
                       min: 1, max: LayerLimits.maximumChunk),
        ]
    }

    @usableFromInline
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    static func make<T: TensorScalar>(dModel: Int, options: OptionValues, rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let heads = options.int("heads")
        let headDim: Int
        if let given = options.optionalInt("head_dim") {
            headDim = given
        } else {
            guard dModel % heads == 0 else {
                throw SequenceLabError("\(options.owner): head_dim auto needs heads \(heads) to divide d_model \(dModel)")
            }
            headDim = dModel / heads
        }
        let expandV = options.double("expand_v")
        let valueDim = Double(headDim) * expandV
        guard valueDim >= 1, valueDim == valueDim.rounded() else {
            throw SequenceLabError("\(options.owner): expand_v head_dim must be a positive integer, got \(valueDim)")
        }
        return DeltaProductLayer<T>(
            dModel: dModel, heads: heads, headDim: headDim, expandV: expandV, householder: options.int("n_h"),
            allowNegativeEigenvalues: options.bool("allow_neg_eigval"),
            useForgetGate: options.bool("use_forget_gate"), useOutputGate: options.bool("use_gate"),
            shortConvolution: options.bool("use_short_conv") ? options.int("conv_size") : nil,
            form: DeltaForm(rawValue: options.string("form"))!, chunkSize: options.optionalInt("chunk_size"), rng: &rng)
    }

    static let checkOptions = [
        LayerOptions(["heads": "2", "head_dim": "4", "n_h": "2", "allow_neg_eigval": "true", "chunk_size": "6"]),
        LayerOptions(["heads": "1", "head_dim": "3", "n_h": "3", "use_short_conv": "false", "use_forget_gate": "false", "expand_v": "2"]),
    ]
}

/// The registry entries built on `DeltaProductLayer` (`deltaproduct`, `deltanet`, `gated_deltanet`): they differ only
/// in their option defaults (`DeltaLayerOptions.specs`), and build the layer the same way.
public protocol DeltaLayerFactory: LayerFactory {}

extension DeltaLayerFactory {
    public static var checkDModel: Int { 8 }
    /// Inlinable: a protocol extension cannot carry `@_specialize` (Self is a second generic parameter); the work is
    /// in the specialised `DeltaLayerOptions.make`.
    @inlinable
    public static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                             rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        try DeltaLayerOptions.make(dModel: dModel, options: options, rng: &rng)
    }
}

/// Registry entry for `deltaproduct`: fla's gated DeltaProduct layer (Siems et al. 2025), n_h = 2 by default.
public enum DeltaProductFactory: DeltaLayerFactory {
    public static let name = "deltaproduct"
    public static let plotColor = "#CC79A7"
    public static var kernels: [FunctionalKernel.Type] { [DeltaProductKernelOp.self] }
    public static var opChecks: [OpCheck] { DeltaRuleChecks.all }  // delta_rule and delta_product (deltanet too)
    public static let summary = "gated DeltaProduct: n_h Householder delta steps per token, chunked WY kernel (Siems et al. 2025)"
    public static let options = DeltaLayerOptions.specs(householder: 2, gates: true, headDim: 32)
    public static var checkOptions: [LayerOptions] { DeltaLayerOptions.checkOptions }
}

/// Registry entry for `deltanet`: DeltaNet (Schlag et al. 2021; Yang et al. 2024) = DeltaProduct with n_h = 1,
/// fla's DeltaNet defaults (no forget gate, no output gate, short convolutions, key size d_model / heads).
public enum DeltaNetFactory: DeltaLayerFactory {
    public static let name = "deltanet"
    public static let plotColor = "#000000"
    public static var kernels: [FunctionalKernel.Type] { [DeltaRuleKernel.self] }
    public static let summary = "DeltaNet: the delta rule, chunked WY kernel (Schlag et al. 2021; Yang et al. 2024)"
    public static let options = DeltaLayerOptions.specs(householder: 1, gates: false, headDim: nil)
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["heads": "2", "head_dim": "4"]),
         LayerOptions(["heads": "2", "head_dim": "4", "use_forget_gate": "true", "use_gate": "true", "allow_neg_eigval": "true",
                       "form": "recurrent"])]
    }
}

/// Registry entry for `gated_deltanet`: Gated DeltaNet (Yang, Kautz, Hatamizadeh 2025, "Gated Delta Networks:
/// Improving Mamba2 with Delta Rule"; fla `GatedDeltaNet`), the delta rule with Mamba-2's scalar forget gate:
///     S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   g_t = -exp(A_log) softplus(x_t W_a + dt_bias),
/// beta_t = sigmoid(x_t W_b) (2 sigmoid with allow_neg_eigval, the state-tracking option), q and k L2-normalised,
/// output RMSNorm(o) * swish(x W_g). It is DeltaProduct with n_h = 1 (same kernel, parameters and init) under fla's
/// GatedDeltaNet defaults: forget gate, output gate, short convolutions, expand_v 2. fla sizes heads absolutely
/// (6 heads of 256 at hidden 2048); here the key size per head is d_model / heads (4 heads) unless head_dim is set.
public enum GatedDeltaNetFactory: DeltaLayerFactory {
    public static let name = "gated_deltanet"
    public static let plotColor = "#AA4499"
    public static let summary = "Gated DeltaNet: the delta rule with a scalar forget gate, chunked WY kernel (Yang et al. 2025)"
    public static let options = DeltaLayerOptions.specs(householder: 1, gates: true, headDim: nil, expandV: 2)
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["heads": "2", "head_dim": "4", "chunk_size": "3"]),
         LayerOptions(["heads": "2", "head_dim": "4", "allow_neg_eigval": "true", "use_gate": "false", "form": "recurrent"])]
    }
}
