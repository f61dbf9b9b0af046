import Foundation
import Tensors

/// `seqlab layer NAME --in IN --out OUT`: one registered layer evaluated on given weights and input (the contract of
/// docs/interop.md). IN holds `x` [B, L, D], every parameter and buffer of the layer under the reference module's
/// `state_dict` key and PyTorch layout, and optionally `grad_y` [B, L, D]; options come from `__metadata__`.
/// OUT holds `y` and, with `grad_y`, `grad_x` and `grad_<key>` for every trainable parameter (the gradient of
/// sum(y * grad_y)). Runs in the dtype of `x` (F32 or F64). Any missing, extra or mis-shaped tensor is a one-line
/// error naming it, raised before anything is written.
public enum LayerRunner {
    /// Reads IN, evaluates the layer, writes OUT atomically.
    public static func run(_ name: String, input: URL, output: URL) throws {
        let factory = try LayerRegistry.factory(named: name)
        let file = try SafeTensors.read(from: input)
        guard let x = file.arrays["x"] else { throw SequenceLabError("layer \(name): missing input tensor 'x' [B, L, D]") }
        let floats = Set(file.arrays.values.map(\.dtype).filter { $0 == .f32 || $0 == .f64 })
        if floats.count > 1 { throw SequenceLabError("layer \(name): tensors mix F32 and F64; use one precision") }
        let result: SafeTensors
        switch x.dtype {
        case .f64: result = try evaluate(factory, file, as: Double.self)
        case .f32: result = try evaluate(factory, file, as: Float.self)
        default: throw SequenceLabError("layer \(name): x has dtype \(x.dtype.rawValue), needs F32 or F64")
        }
        try result.write(to: output)
    }

    /// The layer `name` built with the options `metadata` for inputs x of shape `inputShape`, its parameters and
    /// buffers still at their initial values.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func layer<T: TensorScalar>(
        _ factory: LayerFactory.Type, metadata: [String: String], inputShape: [Int], as _: T.Type
    ) throws -> any SequenceLayer<T> {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 > 0 }) else {
            throw SequenceLabError("layer \(factory.name): x has shape \(inputShape), needs [B, L, D] with every extent positive")
        }
        let options = LayerOptions(metadata)
        if let dropout = options.values["dropout"], (Double(dropout) ?? 1) != 0 {
            throw SequenceLabError("layer \(factory.name): option dropout=\(dropout): `seqlab layer` evaluates deterministically (eval mode); use dropout 0")
        }
        return try LayerRegistry.make(factory.name, dModel: inputShape[2], options: options, as: T.self)
    }

    static func evaluate<T: TensorScalar>(_ factory: LayerFactory.Type, _ file: SafeTensors, as _: T.Type) throws -> SafeTensors {
        let name = factory.name
        let x = try file.tensor("x", as: T.self)
        let layer = try layer(factory, metadata: file.optionMetadata, inputShape: x.shape, as: T.self)
        try file.assign(to: layer.parameters.map { ($0.name, $0.tensor) } + layer.buffers, extra: ["x", "grad_y"],
                        owner: "layer \(name)", shapeNote: " (d_model \(x.shape[2]), options from __metadata__)")
        layer.stateDidLoad()
        let gradY = try file.arrays["grad_y"].map { _ in try file.tensor("grad_y", as: T.self) }
        if let gradY, gradY.shape != x.shape {
            throw SequenceLabError("layer \(name): grad_y has shape \(gradY.shape), y has shape \(x.shape)")
        }
        let input = x.requiringGrad(gradY != nil)
        let y = gradY == nil ? Tape.withoutGradients { layer(input) } : layer(input)
        var result = SafeTensors(metadata: file.metadata)
        result.set("y", y)
        guard let gradY else { return result }
        (y * gradY).sum().backward()
        result.set("grad_x", Tensor(shape: x.shape, data: input.grad ?? [T](repeating: 0, count: x.count)))
        for p in layer.parameters {
            result.set("grad_\(p.name)", Tensor(shape: p.tensor.shape, data: p.tensor.grad ?? [T](repeating: 0, count: p.tensor.count)))
        }
        return result
    }
}
