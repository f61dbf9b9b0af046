import Tensors

/// How to build one kind of layer by name: its registry name, options and constructor.
public protocol LayerFactory {
    /// The registry name (`attention`, `s4`, `s4d`, `mamba`, `gla`, `deltanet`, `deltaproduct`, `rat`, `gam`, ...).
    static var name: String { get }
    /// A one-line description with the paper.
    static var summary: String { get }
    /// The options: name, type, range, default and help of each (the only place they are written).
    static var options: [LayerOptionSpec] { get }
    /// A layer of width `dModel` in precision T, initialised from `rng`: `options` are checked against `options`
    /// with their defaults filled in; `context` says where in the model the layer sits (its depth).
    static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                      rng: inout RandomGenerator) throws -> any SequenceLayer<T>
    /// Option sets `seqlab check --layer` runs (default in LayerCheck.swift). A requirement, so that a factory's
    /// own value is found through `LayerFactory.Type` (an extension member alone would always give the default).
    static var checkOptions: [LayerOptions] { get }
    /// The width the layer check uses (default 16).
    static var checkDModel: Int { get }
    /// The `seqlab op` kernels the layer brings (KERNELS.md contracts; none by default).
    static var kernels: [FunctionalKernel.Type] { get }
    /// The op-level checks `seqlab check` runs for the layer's kernels (none by default).
    static var opChecks: [OpCheck] { get }
    /// The layer's colour in every plot (a hex RGB string); registered layers must not share one.
    static var plotColor: String { get }
}

extension LayerFactory {
    public static var kernels: [FunctionalKernel.Type] { [] }
    public static var opChecks: [OpCheck] { [] }
}

/// The layers `seqlab` knows by name: the built-in `factories` below (a layer's folder plus one line here), and any a
/// package that depends on SequenceLab adds with `register`.
public enum LayerRegistry {
    /// Every registered layer, in the order `seqlab list` shows them: the built-in ones, then the registered ones.
    public static var factories: [LayerFactory.Type] { builtIn + registered.withLock { $0 } }

    /// Adds a layer defined outside this package (a downstream package's own mixer): from then on it is built,
    /// checked, benchmarked, trained and plotted by name like the built-in ones. Its name must be new.
    public static func register(_ factory: LayerFactory.Type) throws {
        try registered.withLock { list in
            guard !(builtIn + list).contains(where: { $0.name == factory.name }) else {
                throw SequenceLabError("layer \(factory.name) is registered already")
            }
            list.append(factory)
        }
    }

    /// Removes a layer `register` added (a test's own layer, say); built-in layers stay.
    public static func unregister(_ name: String) {
        registered.withLock { list in list.removeAll { $0.name == name } }
    }

    private static let registered = Locked<[LayerFactory.Type]>([])

    /// The layers of this package.
    static let builtIn: [LayerFactory.Type] = [
        DiagonalRecurrenceFactory.self,
        MambaFactory.self,
        Mamba2Factory.self,
        CausalSelfAttentionFactory.self,
        ForgettingAttentionFactory.self,
        GatedLinearAttentionFactory.self,
        S4Factory.self,
        S4DFactory.self,
        DeltaProductFactory.self,
        DeltaNetFactory.self,
        GatedDeltaNetFactory.self,
        MultiScaleRetentionFactory.self,
        HGRN2Factory.self,
        MLSTMFactory.self,
        RATFactory.self,
        GAMFactory.self,
    ]

    /// The registered names.
    public static var names: [String] { factories.map { $0.name } }

    /// The factory registered under `name`, or a one-line error listing the known names.
    public static func factory(named name: String) throws -> LayerFactory.Type {
        guard let f = factories.first(where: { $0.name == name }) else {
            throw SequenceLabError("unknown layer '\(name)'" + suggestion(name, among: names) + " (known: \(names.joined(separator: ", ")))")
        }
        return f
    }

    /// The options of layer `name` checked against its declarations, defaults filled in.
    public static func resolvedOptions(_ name: String, _ options: LayerOptions) throws -> OptionValues {
        try options.resolved(against: factory(named: name).options, owner: "layer \(name)")
    }

    /// Builds the layer `name` with `options` (checked against its declarations) at `context`'s place in a model.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func make<T: TensorScalar>(
        _ name: String, dModel: Int, options: LayerOptions = LayerOptions(), context: LayerContext = LayerContext(),
        seed: UInt64 = 0, as _: T.Type = T.self
    ) throws -> any SequenceLayer<T> {
        let factory = try factory(named: name)
        let values = try options.resolved(against: factory.options, owner: "layer \(name)")
        guard dModel > 0, dModel <= LayerLimits.maximumWidth else {
            throw SequenceLabError("layer \(name): d_model must be in 1...\(LayerLimits.maximumWidth), got \(dModel)")
        }
        var rng = RandomGenerator(seed: seed)
        return try factory.make(dModel: dModel, options: values, context: context, rng: &rng)
    }
}

/// What a layer's factory is told about the model it is built into (never a user option): the model's depth, for
/// inits that scale with it (mamba_ssm's and GPT-2's 1/sqrt(n_layers) on the residual branch's output projection).
public struct LayerContext: Sendable, Equatable {
    /// The number of residual blocks in the model (1 for a layer on its own).
    public var depth: Int
    public init(depth: Int = 1) {
        precondition(depth >= 1, "LayerContext: depth must be at least 1")
        self.depth = depth
    }
}

/// Bounds shared by the layers' size options (docs/limits.md): every integer size option of a layer declares one of
/// these as its maximum, so that an absurd value is a one-line error where the options are read, not a failed
/// allocation (a crash) while the layer is built. They are far beyond any model a CPU trains; a combination of
/// in-bound values can still exceed the machine's memory, as the model's own limits can (d_model x n_layers).
public enum LayerLimits {
    /// The largest width multiplier (expand, expand_k, expand_v, proj_factor, ffn_expand, DeltaProduct's n_h): as the
    /// model's feed_forward_expand. Larger values only make allocations fail (or overflow the width's integer conversion).
    public static let maximumExpansion = 64
    /// The largest model width d_model (a d x d Float32 matrix is then 256 MB), and of every width-like count (heads,
    /// groups, head sizes, ranks, block sizes, memory slots).
    public static let maximumWidth = 8192
    /// The largest state size per channel or head (d_state): 16-256 in the papers.
    public static let maximumStateSize = 4096
    /// The largest convolution width (d_conv, conv_size, kernel_size): 3-4 in the papers.
    public static let maximumConvolutionWidth = 1024
    /// The largest chunk, sub-chunk or checkpoint interval in tokens: the tasks' longest sequence (2^20); the layers
    /// use min(chunk, L).
    public static let maximumChunk = 1 << 20
}
