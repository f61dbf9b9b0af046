import Tensors

extension LayerFactory {
    /// Option sets the layer check runs (override to exercise chunking, gates, modes at small sizes).
    public static var checkOptions: [LayerOptions] { [LayerOptions()] }
    /// The width the layer check uses.
    public static var checkDModel: Int { 16 }
}

/// The generic layer check every registered layer gets: `seqlab check --layer NAME`.
///
/// For each of the factory's `checkOptions`:
/// 1. a Float64 finite-difference check of d sum(<y, W>) with respect to the input and every parameter;
/// 2. step == parallel: the recurrent form run token by token reproduces the parallel form, in Float64 (1e-9)
///    and Float32 (1e-4), at several lengths including a one-token sequence.
public enum LayerCheck {
    /// Runs all checks of the layer registered as `name`.
    public static func run(_ name: String, quick: Bool = false) throws -> [CheckResult] {
        let factory = try LayerRegistry.factory(named: name)
        var results: [CheckResult] = []
        for (k, options) in factory.checkOptions.enumerated() {
            let label = factory.checkOptions.count > 1 ? "\(name)[\(k)]" : name
            results += try check(factory: factory, label: label, options: options, quick: quick)
        }
        return results
    }

    /// The checks of one layer: `layer` in Float64 and, if given, `single` (the same layer in Float32).
    /// Also used directly by tests with layers outside the registry.
    public static func check(
        _ layer: any SequenceLayer<Double>, single: (any SequenceLayer<Float>)?, label: String, quick: Bool
    ) -> [CheckResult] {
        var results: [CheckResult] = []
        let d = layer.dModel
        var rng = RandomGenerator(seed: 5)
        let x = Tensor<Double>.randn([2, quick ? 5 : 9, d], using: &rng)
        let leaves = [("x", x)] + layer.parameters.map { ($0.name, $0.tensor) }
        results.append(GradientCheck.check("\(label): gradients (Float64)", leaves: leaves, maxProbes: quick ? 8 : 32) {
            [layer(x)]
        })
        guard layer.supportsStep else { return results }
        for length in quick ? [1, 7] : [1, 7, 33] {
            let input = Tensor<Double>.randn([2, length, d], using: &rng)
            let (parallel, stepped) = Tape.withoutGradients { (layer(input), layer.stepThrough(input)) }
            results.append(GradientCheck.compare(
                "\(label): step == parallel, L=\(length) (Float64)", stepped.data, parallel.data, tolerance: 1e-9))
        }
        if let single {
            let input = Tensor<Float>.randn([2, 17, d], using: &rng)
            let (parallel, stepped) = Tape.withoutGradients { (single(input), single.stepThrough(input)) }
            results.append(GradientCheck.compare(
                "\(label): step == parallel, L=17 (Float32)", stepped.data, parallel.data, tolerance: 1e-4))
        }
        return results
    }

    private static func check(factory: LayerFactory.Type, label: String, options: LayerOptions, quick: Bool) throws -> [CheckResult] {
        let d = factory.checkDModel
        let layer: any SequenceLayer<Double> = try LayerRegistry.make(factory.name, dModel: d, options: options, seed: 0)
        let single: any SequenceLayer<Float> = try LayerRegistry.make(factory.name, dModel: d, options: options, seed: 0)
        return check(layer, single: single, label: label, quick: quick)
    }
}
