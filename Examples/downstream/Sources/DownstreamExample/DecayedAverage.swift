import Foundation
import Layers
import Tensors

// A layer defined in a downstream package: one file and one `LayerRegistry.register` call make it trainable,
// checkable and benchmarkable by name, like the built-in layers.

/// A learned per-channel exponential moving average: h_t = sigmoid(a) * h_{t-1} + x_t, y_t = W_out h_t.
/// (`@_specialize` on the hot methods: a plain release build has no cross-module optimisation, and this class is
/// created through SequenceLab's generic registry, so without it the methods would run unspecialised.)
final class DecayedAverage<T: TensorScalar>: SequenceLayer {
    typealias Scalar = T
    let dModel: Int
    let decayLogit: Tensor<T>
    let output: Linear<T>

    init(dModel: Int, initialDecay: Double, rng: inout RandomGenerator) {
        self.dModel = dModel
        let logit = T(Foundation.log(initialDecay / (1 - initialDecay)))
        decayLogit = Tensor(shape: [dModel], data: [T](repeating: logit, count: dModel)).requiringGrad()
        output = Linear(inputSize: dModel, outputSize: dModel, bias: false, rng: &rng)
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func callAsFunction(_ x: Tensor<T>) -> Tensor<T> { output(diagonalScan(x, decay: decayLogit.sigmoid())) }

    func initialState(batchSize: Int) -> Tensor<T> { Tensor.zeros([batchSize, dModel]) }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func step(_ x: Tensor<T>, state h: inout Tensor<T>) -> Tensor<T> {
        h = decayLogit.sigmoid() * h + x
        return output(h)
    }

    var parameters: [NamedParameter<T>] {
        [NamedParameter("decay_logit", decayLogit, tags: ParameterTags(role: .ssm))] + output.parameters("out_proj")
    }

    func stateSize(sequenceLength: Int) -> Int { dModel }
}

/// The registry entry.
enum DecayedAverageFactory: LayerFactory {
    static let name = "decayed_average"
    static let summary = "a learned per-channel moving average (the downstream example's own layer)"
    static let plotColor = "#882255"
    static let options: [LayerOptionSpec] = [.number("initial_decay", 0.9, "sigmoid(a) at init", above: 0, below: 1)]
    static var checkOptions: [LayerOptions] { [LayerOptions()] }
    static var checkDModel: Int { 8 }

    static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                      rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        DecayedAverage<T>(dModel: dModel, initialDecay: options.double("initial_decay"), rng: &rng)
    }
}
