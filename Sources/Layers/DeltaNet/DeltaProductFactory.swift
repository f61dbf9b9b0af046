import Tensors

/// Options shared by the `deltaproduct` and `deltanet` registry entries.
enum DeltaLayerOptions {
    static func specs(householder: String, gates: String, headDim: String) -> [LayerOptionSpec] {
        [
            LayerOptionSpec("heads", "4", "heads"),
            LayerOptionSpec("head_dim", headDim, "key size per head K (auto = d_model / heads, fla's expand_k = 1)"),
            LayerOptionSpec("expand_v", "1", "value size per head = expand_v head_dim"),
            LayerOptionSpec("n_h", householder, "Householder (delta) steps per token"),
            LayerOptionSpec("allow_neg_eigval", "false", "beta = 2 sigmoid(.) (eigenvalues of I - beta k k^T in [-1, 1])"),
            LayerOptionSpec("use_forget_gate", gates, "gate g = -exp(A_log) softplus(x W_a + dt_bias)"),
            LayerOptionSpec("use_gate", gates, "output gate: RMSNorm(o) * swish(x W_g)"),
            LayerOptionSpec("use_short_conv", "true", "causal depthwise convolution (+ SiLU) on q, k, v"),
            LayerOptionSpec("conv_size", "4", "short convolution width"),
            LayerOptionSpec("form", "chunked", "delta-rule kernel: chunked (WY / UT form) or recurrent (fused token recurrence)"),
            LayerOptionSpec("chunk_size", "auto",
                            "sub-steps per chunk (chunked; auto = max(K, V) in [16, 64]), tokens per checkpoint (recurrent)"),
        ]
    }

    static func make<T: TensorScalar>(_ name: String, dModel: Int, options: LayerOptions, householder: Int, gates: Bool,
                                      headDim defaultHeadDim: String, rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        let heads = try options.int("heads", 4)
        guard heads >= 1 else { throw SequenceLabError("layer \(name): heads must be >= 1, got \(heads)") }
        let headDim: Int
        if options.string("head_dim", defaultHeadDim) == "auto" {
            guard dModel % heads == 0 else { throw SequenceLabError("layer \(name): head_dim auto needs heads \(heads) to divide d_model \(dModel)") }
            headDim = dModel / heads
        } else {
            headDim = try options.int("head_dim", 32)
        }
        let expandV = try options.double("expand_v", 1), nh = try options.int("n_h", householder)
        let conv = try options.int("conv_size", 4)
        let valueDim = Double(headDim) * expandV
        guard headDim >= 1, valueDim >= 1, valueDim == valueDim.rounded() else {
            throw SequenceLabError("layer \(name): head_dim and expand_v head_dim must be positive integers, got \(headDim) and \(valueDim)")
        }
        guard nh >= 1 else { throw SequenceLabError("layer \(name): n_h must be >= 1, got \(nh)") }
        guard conv >= 2 else { throw SequenceLabError("layer \(name): conv_size must be >= 2, got \(conv)") }
        var chunk: Int?
        if options.string("chunk_size", "auto") != "auto" {
            chunk = try options.int("chunk_size", 64)
            guard chunk! >= 1 else { throw SequenceLabError("layer \(name): chunk_size must be >= 1 or auto, got \(chunk!)") }
        }
        let formName = options.string("form", DeltaForm.chunked.rawValue)
        guard let form = DeltaForm(rawValue: formName) else {
            throw SequenceLabError("layer \(name): form must be chunked or recurrent, got '\(formName)'")
        }
        return DeltaProductLayer<T>(
            dModel: dModel, heads: heads, headDim: headDim, expandV: expandV, householder: nh,
            allowNegativeEigenvalues: try options.bool("allow_neg_eigval", false),
            useForgetGate: try options.bool("use_forget_gate", gates), useOutputGate: try options.bool("use_gate", gates),
            shortConvolution: try options.bool("use_short_conv", true) ? conv : nil, form: form, chunkSize: chunk, rng: &rng)
    }

    static let checkOptions = [
        LayerOptions(["heads": "2", "head_dim": "4", "n_h": "2", "allow_neg_eigval": "true", "chunk_size": "6"]),
        LayerOptions(["heads": "1", "head_dim": "3", "n_h": "3", "use_short_conv": "false", "use_forget_gate": "false", "expand_v": "2"]),
    ]
}

/// Registry entry for `deltaproduct`: fla's gated DeltaProduct layer (Siems et al. 2025), n_h = 2 by default.
public enum DeltaProductFactory: LayerFactory {
    public static let name = "deltaproduct"
    public static let summary = "gated DeltaProduct: n_h Householder delta steps per token, chunked WY kernel (Siems et al. 2025)"
    public static let options = DeltaLayerOptions.specs(householder: "2", gates: "true", headDim: "32")
    public static var checkOptions: [LayerOptions] { DeltaLayerOptions.checkOptions }
    public static var checkDModel: Int { 8 }
    public static func make<T: TensorScalar>(dModel: Int, options: LayerOptions, rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        try DeltaLayerOptions.make(name, dModel: dModel, options: options, householder: 2, gates: true, headDim: "32", rng: &rng)
    }
}

/// Registry entry for `deltanet`: DeltaNet (Schlag et al. 2021; Yang et al. 2024) = DeltaProduct with n_h = 1,
/// fla's DeltaNet defaults (no forget gate, no output gate, short convolutions, key size d_model / heads).
public enum DeltaNetFactory: LayerFactory {
    public static let name = "deltanet"
    public static let summary = "DeltaNet: the delta rule, chunked WY kernel (Schlag et al. 2021; Yang et al. 2024)"
    public static let options = DeltaLayerOptions.specs(householder: "1", gates: "false", headDim: "auto")
    public static var checkOptions: [LayerOptions] {
        [LayerOptions(["heads": "2", "head_dim": "4"]),
         LayerOptions(["heads": "2", "head_dim": "4", "use_forget_gate": "true", "use_gate": "true", "allow_neg_eigval": "true",
                       "form": "recurrent"])]
    }
    public static var checkDModel: Int { 8 }
    public static func make<T: TensorScalar>(dModel: Int, options: LayerOptions, rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        try DeltaLayerOptions.make(name, dModel: dModel, options: options, householder: 1, gates: false, headDim: "auto", rng: &rng)
    }
}
