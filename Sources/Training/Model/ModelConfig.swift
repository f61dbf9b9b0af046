import Tasks
import Tensors

/// The normalisation a residual block uses.
public enum NormKind: String, Codable, CaseIterable, Sendable {
    case layerNorm = "layer_norm", rmsNorm = "rms_norm", batchNorm = "batch_norm"
}

/// The channel mixer after the sequence mixer in a block.
public enum FeedForwardKind: String, Codable, CaseIterable, Sendable {
    /// No feed-forward (Zoology's MQAR setting).
    case none
    /// Linear(D, e D) -> GELU -> Linear(e D, D).
    case mlp
    /// GLU: (Linear(D, e D) x) * sigmoid(Linear(D, e D) x) -> Linear(e D, D).
    case glu
}

/// A sequence model: encoder -> n_layers residual blocks around a `SequenceLayer` -> norm -> task head.
///
/// Pre-norm block: x + Dropout(mixer(norm(x))), then x + Dropout(ff(norm(x))) when `feedForward` is not none.
/// Post-norm block: norm(x + Dropout(mixer(x))), likewise. Bidirectional: mixer(x) + flip(mixer'(flip(x))) with a
/// second mixer on each sequence reversed within its valid length (S4's LRA models).
public struct ModelConfig: Codable, Equatable, Sendable {
    /// The mixer's registry name.
    public var layer: String
    /// The mixer's options (see `seqlab list`).
    public var layerOptions: Options
    public var dModel: Int
    public var nLayers: Int
    public var norm: NormKind
    public var prenorm: Bool
    public var feedForward: FeedForwardKind
    public var feedForwardExpand: Int
    public var dropout: Double
    /// Overrides the task's pooling (mean, or the last valid position).
    public var pooling: ClassificationPooling?
    public var bidirectional: Bool
    /// The standard deviation of the token embedding's initial N(0, std^2) draw. Default 0.02: Zoology's, mamba_ssm
    /// MixerModel's and fla's models' `initializer_range` (PyTorch's nn.Embedding alone draws N(0, 1)); measured on
    /// MQAR with Mamba in Results/protocol.
    public var embeddingInitStd: Double

    /// What a run's config.json without an `embedding_init_std` key used: it was written before the key existed
    /// (2026-12-06), when the embedding was drawn from N(0, 1).
    public static let legacyEmbeddingInitStd = 1.0

    public init(
        layer: String, layerOptions: Options = Options(), dModel: Int = 64, nLayers: Int = 2, norm: NormKind = .layerNorm,
        prenorm: Bool = true, feedForward: FeedForwardKind = .mlp, feedForwardExpand: Int = 2, dropout: Double = 0,
        pooling: ClassificationPooling? = nil, bidirectional: Bool = false, embeddingInitStd: Double = 0.02
    ) {
        self.layer = layer
        self.layerOptions = layerOptions
        self.dModel = dModel
        self.nLayers = nLayers
        self.norm = norm
        self.prenorm = prenorm
        self.feedForward = feedForward
        self.feedForwardExpand = feedForwardExpand
        self.dropout = dropout
        self.pooling = pooling
        self.bidirectional = bidirectional
        self.embeddingInitStd = embeddingInitStd
    }
}

extension ModelConfig {
    enum CodingKeys: String, CodingKey {
        case layer, norm, prenorm, dropout, pooling, bidirectional
        case layerOptions = "layer_options", dModel = "d_model", nLayers = "n_layers", feedForward = "feed_forward"
        case feedForwardExpand = "feed_forward_expand", embeddingInitStd = "embedding_init_std"
    }

    /// Decodes a model config; every key but `layer` may be absent (its default is used).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(layer: try c.decode(String.self, forKey: .layer))
        layerOptions = try c.decodeIfPresent(Options.self, forKey: .layerOptions) ?? layerOptions
        dModel = try c.decodeIfPresent(Int.self, forKey: .dModel) ?? dModel
        nLayers = try c.decodeIfPresent(Int.self, forKey: .nLayers) ?? nLayers
        norm = try c.decodeIfPresent(NormKind.self, forKey: .norm) ?? norm
        prenorm = try c.decodeIfPresent(Bool.self, forKey: .prenorm) ?? prenorm
        feedForward = try c.decodeIfPresent(FeedForwardKind.self, forKey: .feedForward) ?? feedForward
        feedForwardExpand = try c.decodeIfPresent(Int.self, forKey: .feedForwardExpand) ?? feedForwardExpand
        dropout = try c.decodeIfPresent(Double.self, forKey: .dropout) ?? dropout
        pooling = try c.decodeIfPresent(ClassificationPooling.self, forKey: .pooling)
        bidirectional = try c.decodeIfPresent(Bool.self, forKey: .bidirectional) ?? bidirectional
        // A config without the key predates it (TrainConfig.resolve always writes it): what such runs used.
        embeddingInitStd = try c.decodeIfPresent(Double.self, forKey: .embeddingInitStd) ?? Self.legacyEmbeddingInitStd
    }
}

