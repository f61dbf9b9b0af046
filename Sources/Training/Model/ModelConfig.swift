import Layers
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

    /// The model's settings: the keys of a config file's `model` object beside `layer` and `layer_options`.
    public static let settings: [OptionSpec] = [
        .int("d_model", 64, "model width D (at most 8192: a d x d Float32 matrix is then 256 MB)", min: 1, max: LayerLimits.maximumWidth),
        .int("n_layers", 2, "residual blocks (the mixer's factory is told the depth)", min: 1, max: 1024),
        .choice("norm", NormKind.layerNorm.rawValue, NormKind.allCases.map(\.rawValue), "normalisation of the blocks"),
        .bool("prenorm", true, "pre-norm blocks (false: post-norm)"),
        .choice("feed_forward", FeedForwardKind.mlp.rawValue, FeedForwardKind.allCases.map(\.rawValue),
                "channel mixer after the sequence mixer"),
        .int("feed_forward_expand", 2, "feed-forward width / d_model", min: 1, max: 64),
        .dropout("dropout", "dropout after the mixer and the feed-forward (training only)"),
        .optionalChoice("pooling", ClassificationPooling.allCases.map(\.rawValue),
                        "classification pooling (none: the task's own)"),
        .bool("bidirectional", false, "a second mixer on the reversed sequence (classification tasks)"),
        .number("embedding_init_std", 0.02,
                "std of the embedding's initial normal draw (0.02: Zoology, mamba_ssm, fla; 1: PyTorch's nn.Embedding)", min: 0),
    ]

    /// Every model setting at its declared default.
    public static let defaultSettings = try! Options().resolved(against: settings, owner: "model")

    /// A model with mixer `layer`, every setting at `settings` (the declared defaults unless given).
    public init(layer: String, layerOptions: Options = Options(), settings v: OptionValues) {
        self.layer = layer
        self.layerOptions = layerOptions
        dModel = v.int("d_model")
        nLayers = v.int("n_layers")
        norm = NormKind(rawValue: v.string("norm"))!
        prenorm = v.bool("prenorm")
        feedForward = FeedForwardKind(rawValue: v.string("feed_forward"))!
        feedForwardExpand = v.int("feed_forward_expand")
        dropout = v.double("dropout")
        pooling = v.optionalString("pooling").map { ClassificationPooling(rawValue: $0)! }
        bidirectional = v.bool("bidirectional")
        embeddingInitStd = v.double("embedding_init_std")
    }

    /// A model with mixer `layer` and the declared defaults, except the values given here.
    public init(layer: String, layerOptions: Options = Options(), dModel: Int? = nil, nLayers: Int? = nil,
                feedForward: FeedForwardKind? = nil) {
        self.init(layer: layer, layerOptions: layerOptions, settings: Self.defaultSettings)
        if let dModel { self.dModel = dModel }
        if let nLayers { self.nLayers = nLayers }
        if let feedForward { self.feedForward = feedForward }
    }
}

extension ModelConfig {
    enum CodingKeys: String, CodingKey {
        case layer, norm, prenorm, dropout, pooling, bidirectional
        case layerOptions = "layer_options", dModel = "d_model", nLayers = "n_layers", feedForward = "feed_forward"
        case feedForwardExpand = "feed_forward_expand", embeddingInitStd = "embedding_init_std"
    }

    /// Decodes a model config (through `init(object:source:)`).
    public init(from decoder: Decoder) throws {
        try self.init(object: decoder.singleValueContainer().decode([String: JSONValue].self), source: "model config")
    }

    /// A model config from the `model` object of a config file: `layer` must be there, every other key may be absent
    /// (its declared default), every key present must be declared and hold a value of its type and range.
    public init(object: [String: JSONValue], source: String) throws {
        guard case .string(let layer)? = object["layer"] else {
            throw SequenceLabError("\(source): " + (object["layer"] == nil ? "missing key 'model.layer'" : "model.layer must be a name (text)"))
        }
        var settings = object.filter { $0.key != "layer" && $0.key != "layer_options" }
        // A config without the key predates it (the trainer always writes it): what such runs used.
        if settings["embedding_init_std"] == nil { settings["embedding_init_std"] = .number(Self.legacyEmbeddingInitStd) }
        let values = try JSONValue.settings(settings, against: Self.settings, source: source, keyPath: "model.",
                                            extraKeys: ["layer", "layer_options"])
        self.init(layer: layer, layerOptions: try JSONValue.options(object["layer_options"], source: source, key: "model.layer_options"),
                  settings: values)
    }
}
