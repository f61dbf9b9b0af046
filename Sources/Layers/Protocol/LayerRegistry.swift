import Tensors

/// How to build one kind of layer by name: its registry name, options and constructor.
public protocol LayerFactory {
    /// The registry name (`attention`, `s4`, `s4d`, `mamba`, `gla`, `deltanet`, `deltaproduct`, `rat`, `gam`, ...).
    static var name: String { get }
    /// A one-line description with the paper.
    static var summary: String { get }
    /// The options with their defaults.
    static var options: [LayerOptionSpec] { get }
    /// A layer of width `dModel` in precision T, initialised from `rng`.
    static func make<T: TensorScalar>(dModel: Int, options: LayerOptions, rng: inout RandomGenerator) throws -> any SequenceLayer<T>
    /// Option sets `seqlab check --layer` runs (default in LayerCheck.swift). A requirement, so that a factory's
    /// own value is found through `LayerFactory.Type` (an extension member alone would always give the default).
    static var checkOptions: [LayerOptions] { get }
    /// The width the layer check uses (default 16).
    static var checkDModel: Int { get }
}

/// The layers `seqlab` knows by name. Each layer issue adds its factory to `factories`.
public enum LayerRegistry {
    /// Every registered layer, in the order `seqlab list` shows them.
    public static let factories: [LayerFactory.Type] = [
        DiagonalRecurrenceFactory.self,
        MambaFactory.self,
        CausalSelfAttentionFactory.self,
        GatedLinearAttentionFactory.self,
        S4Factory.self,
        S4DFactory.self,
        DeltaProductFactory.self,
        DeltaNetFactory.self,
        RATFactory.self,
        GAMFactory.self,
    ]

    /// The registered names.
    public static var names: [String] { factories.map { $0.name } }

    /// The factory registered under `name`, or a one-line error listing the known names.
    public static func factory(named name: String) throws -> LayerFactory.Type {
        guard let f = factories.first(where: { $0.name == name }) else {
            throw SequenceLabError("unknown layer '\(name)' (known: \(names.joined(separator: ", ")))")
        }
        return f
    }

    /// Builds the layer `name` with `options` (validated against its option list).
    public static func make<T: TensorScalar>(
        _ name: String, dModel: Int, options: LayerOptions = LayerOptions(), seed: UInt64 = 0, as _: T.Type = T.self
    ) throws -> any SequenceLayer<T> {
        let factory = try factory(named: name)
        try options.validate(against: factory.options, owner: "layer \(name)")
        guard dModel > 0 else { throw SequenceLabError("layer \(name): d_model must be positive, got \(dModel)") }
        var rng = RandomGenerator(seed: seed)
        return try factory.make(dModel: dModel, options: options, rng: &rng)
    }
}
