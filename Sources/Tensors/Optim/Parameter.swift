/// Optimiser tags a layer puts on a parameter (S4's SSM parameters and Mamba's `A_log`, `D` need them).
///
/// The effective learning rate of a tagged parameter is `(learningRate ?? optimiser's base lr) * schedule factor`;
/// decoupled weight decay (AdamW) or L2 decay (SGD) applies only when `weightDecay` is true.
public struct ParameterTags: Hashable, Codable, Sendable {
    /// Whether the optimiser's weight decay applies to this parameter.
    public var weightDecay: Bool
    /// The parameter's own base learning rate: overrides the optimiser's base lr (the schedule's factor still applies).
    public var learningRate: Double?

    /// Tags from their values (the defaults: decayed, the optimiser's learning rate).
    public init(weightDecay: Bool = true, learningRate: Double? = nil) {
        self.weightDecay = weightDecay
        self.learningRate = learningRate
    }

    /// No weight decay, the optimiser's learning rate (norm gains, biases, SSM parameters).
    public static let noWeightDecay = ParameterTags(weightDecay: false)
}

/// A named parameter: a dotted name path like `"blocks.3.mixer.A_log"`, the leaf tensor, and its optimiser tags.
public struct NamedParameter<T: TensorScalar> {
    /// The dotted path, unique within a model: the key of checkpoints and optimiser state.
    public let name: String
    /// The leaf tensor (`requiresGrad: true`); optimisers update its `data` in place.
    public let tensor: Tensor<T>
    /// Weight decay and learning-rate overrides.
    public var tags: ParameterTags

    /// A parameter from its name, its leaf tensor and its tags.
    public init(_ name: String, _ tensor: Tensor<T>, tags: ParameterTags = .init()) {
        self.name = name
        self.tensor = tensor
        self.tags = tags
    }

    /// The same parameter one level down: `prefixed("blocks.0")` turns `"A_log"` into `"blocks.0.A_log"`.
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
