import Foundation
import Layers
import Tensors

// A layer defined outside SequenceLab's sources, as a downstream package would: this one file is its whole
// "folder" (layer, options, kernel, op check, plot colour) and `LayerRegistry.register(ToyFactory.self)` its one
// registry line. ToyLayerTests shows that everything else then works by name.

/// A fixed-decay causal average: h_t = decay h_{t-1} + x_t, y_t = W_out h_t (a test subject, not a model).
final class ToyLayer<T: TensorScalar>: SequenceLayer {
    typealias Scalar = T
    let dModel: Int
    let decay: Double
    let output: Linear<T>

    init(dModel: Int, decay: Double, rng: inout RandomGenerator) {
        self.dModel = dModel
        self.decay = decay
        output = Linear(inputSize: dModel, outputSize: dModel, bias: false, rng: &rng)
    }

    private var decays: Tensor<T> { Tensor(shape: [dModel], data: [T](repeating: T(decay), count: dModel)) }

    func callAsFunction(_ x: Tensor<T>) -> Tensor<T> { output(diagonalScan(x, decay: decays)) }

    func initialState(batchSize: Int) -> Tensor<T> { Tensor.zeros([batchSize, dModel]) }

    func step(_ x: Tensor<T>, state h: inout Tensor<T>) -> Tensor<T> {
        h = decays * h + x
        return output(h)
    }

    var parameters: [NamedParameter<T>] { output.parameters("out_proj") }

    func stateSize(sequenceLength: Int) -> Int { dModel }
}

/// `toy_scan`: x [B, L, D] -> y [B, L, D], y_t = decay y_{t-1} + x_t.
enum ToyScanKernel: FunctionalKernel {
    static let name = "toy_scan"
    static let inputs = [KernelInput("x")]
    static let outputs = ["y"]
    static let options: [LayerOptionSpec] = [.number("decay", 0.5, "the fixed decay", min: 0, max: 1)]
    static func evaluate<T: TensorScalar>(_ x: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>] {
        let input = x["x"]!
        try requireRank(input, 3, "x", layout: "[B, L, D]", op: name)
        let decays = Tensor(shape: [input.shape[2]], data: [T](repeating: T(options.double("decay")), count: input.shape[2]))
        return ["y": diagonalScan(input, decay: decays)]
    }
}

/// The registry entry: everything the rest of SequenceLab needs about the layer.
enum ToyFactory: LayerFactory {
    static let name = "toy"
    static let summary = "a fixed-decay causal average (the registration test's layer)"
    static let plotColor = "#117733"
    static let options: [LayerOptionSpec] = [.number("decay", 0.5, "the fixed decay", min: 0, max: 1)]
    static var checkOptions: [LayerOptions] { [LayerOptions(), LayerOptions(["decay": "0.9"])] }
    static var checkDModel: Int { 8 }
    static var kernels: [FunctionalKernel.Type] { [ToyScanKernel.self] }
    static var opChecks: [OpCheck] {
        [OpCheck("toy_scan", shapes: [[2, 5, 3]]) { x in
            diagonalScan(x[0], decay: Tensor(shape: [3], data: [Double](repeating: 0.5, count: 3)))
        }]
    }

    static func make<T: TensorScalar>(dModel: Int, options: OptionValues, context: LayerContext,
                                      rng: inout RandomGenerator) throws -> any SequenceLayer<T> {
        ToyLayer<T>(dModel: dModel, decay: options.double("decay"), rng: &rng)
    }
}
