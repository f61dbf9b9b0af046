/// What a parameter is, for the optimiser's groups: which roles take weight decay is a training setting
/// (`TrainConfig.noDecay`, config key `no_decay`), the role is the layer's to declare.
public enum ParameterRole: String, Codable, CaseIterable, Sendable {
    /// A weight matrix or filter (Linear, convolution, memory bank, S4's C and D).
    case weight
    /// A bias (a `state_dict` key ending in "bias", unless the layer says otherwise).
    case bias
    /// The token embedding.
    case embedding
    /// A norm's gain or bias (LayerNorm, RMSNorm, BatchNorm, the layers' own output norms).
    case norm
    /// The recurrence's own parameters: S4's Lambda, P, B, dt; Mamba's A_log and D; a gated decay's A_log and dt_bias;
    /// RAT's forget-gate bias (mamba_ssm and fla exempt these from decay with `_no_weight_decay`).
    case ssm
}

/// Optimiser tags a layer puts on a parameter: its role and its own learning rate (S4's SSM parameters).
///
/// The effective learning rate of a tagged parameter is `(learningRate ?? optimiser's base lr) * schedule factor`;
/// decoupled weight decay (AdamW) or L2 decay (SGD) applies only when `weightDecay` is true, which the trainer sets
/// from the role and the run's `no_decay` roles (`ParameterTags.defaultNoDecay` when none are given).
public struct ParameterTags: Hashable, Codable, Sendable {
    /// What the parameter is.
    public var role: ParameterRole
    /// Whether the optimiser's weight decay applies to this parameter.
    public var weightDecay: Bool
    /// The parameter's own base learning rate: overrides the optimiser's base lr (the schedule's factor still applies).
    public var learningRate: Double?

    /// The roles that take no weight decay unless a run says otherwise: everything but the weight matrices and
    /// filters. The grouping of the S4 codebase's trainer (state-spaces/s4 `add_optimizer_hooks`: biases, norms,
    /// nn.Embedding and `_no_weight_decay` parameters exempt; also H3, Hyena, safari), of Hugging Face's Trainer (biases
    /// and norms) and of mamba_ssm's and fla's `_no_weight_decay` marks (A_log, D, dt_bias); Zoology decays every
    /// parameter. Measured on MQAR with Mamba: Results/protocol.
    public static let defaultNoDecay: [ParameterRole] = [.embedding, .bias, .norm, .ssm]

    /// What a run's config.json without a `no_decay` key used: it was written before the key existed (2026-12-06),
    /// when norms and the recurrence's own parameters were the only roles without decay.
    public static let legacyNoDecay: [ParameterRole] = [.norm, .ssm]

    /// Tags from their values; `weightDecay` defaults to the role's default (decayed unless in `defaultNoDecay`).
    public init(role: ParameterRole = .weight, weightDecay: Bool? = nil, learningRate: Double? = nil) {
        self.role = role
        self.weightDecay = weightDecay ?? !Self.defaultNoDecay.contains(role)
        self.learningRate = learningRate
    }

    /// A norm's gain or bias.
    public static let norm = ParameterTags(role: .norm)
    /// A parameter of the recurrence itself (A_log, D, dt_bias ...).
    public static let ssm = ParameterTags(role: .ssm)
    /// The token embedding.
    public static let embedding = ParameterTags(role: .embedding)

    /// These tags with weight decay set from `noDecay`, the roles that take none.
    public func decaying(unless noDecay: [ParameterRole]) -> ParameterTags {
        var t = self
        t.weightDecay = !noDecay.contains(role)
        return t
    }
}

/// A named parameter: a dotted name path like `"blocks.3.mixer.A_log"`, the leaf tensor, and its optimiser tags.
public struct NamedParameter<T: TensorScalar> {
    /// The dotted path, unique within a model: the key of checkpoints and optimiser state.
    public let name: String
    /// The leaf tensor (`requiresGrad: true`); optimisers update its `data` in place.
    public let tensor: Tensor<T>
    /// Role, weight decay and learning-rate override.
    public var tags: ParameterTags

    /// A parameter from its name, its leaf tensor and its tags (by default: a bias if the name ends in "bias", else a
    /// weight).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(_ name: String, _ tensor: Tensor<T>, tags: ParameterTags? = nil) {
        self.name = name
        self.tensor = tensor
        self.tags = tags ?? ParameterTags(role: name.hasSuffix("bias") ? .bias : .weight)
    }

    /// The same parameter one level down: `prefixed("blocks.0")` turns `"A_log"` into `"blocks.0.A_log"`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func prefixed(_ prefix: String) -> NamedParameter {
        if prefix.isEmpty { return self }
        return NamedParameter(name.isEmpty ? prefix : prefix + "." + name, tensor, tags: tags)
    }
}

/// What the `[NamedParameter<T>]` helpers need (Swift has no parameterised extensions); only `NamedParameter`
/// conforms.
public protocol NamedParameterProtocol {
    associatedtype Scalar: TensorScalar
    /// The dotted name path.
    var name: String { get }
    /// The leaf tensor.
    var tensor: Tensor<Scalar> { get }
    /// The parameter with `prefix + "."` in front of its name.
    func prefixed(_ prefix: String) -> Self
}

extension NamedParameter: NamedParameterProtocol {}

extension Array where Element: NamedParameterProtocol {
    /// Every parameter one level down (`layer.parameters.prefixed("blocks.\(i)")`).
    public func prefixed(_ prefix: String) -> [Element] { map { $0.prefixed(prefix) } }

    /// The total number of scalars, sum over parameters of `tensor.count`.
    public var scalarCount: Int { reduce(0) { $0 + $1.tensor.count } }

    /// The parameter with this exact name, if any.
    public func parameter(named name: String) -> Element? { first { $0.name == name } }

    /// Stops with a precondition failure naming the first duplicated name (checkpoints and optimiser state are keyed
    /// by name, so names must be unique).
    public func checkUniqueNames() {
        var seen = Set<String>()
        for p in self {
            precondition(seen.insert(p.name).inserted, "parameters: duplicate name '\(p.name)'")
        }
    }
}
