import Foundation
import Tensors

/// One input of a functional kernel, as KERNELS.md names it.
public struct KernelInput: Sendable {
    public let name: String
    public let optional: Bool
    public let differentiable: Bool
    public init(_ name: String, optional: Bool = false, differentiable: Bool = true) {
        self.name = name
        self.optional = optional
        self.differentiable = differentiable
    }
}

/// A functional kernel that `seqlab op NAME --in IN --out OUT` evaluates (the contract of KERNELS.md): named tensor
/// inputs, string options from the safetensors `__metadata__`, named outputs. Each kernel validates shapes itself and
/// throws a one-line `SequenceLabError` naming the tensor and both shapes.
public protocol FunctionalKernel {
    static var name: String { get }
    static var inputs: [KernelInput] { get }
    static var outputs: [String] { get }
    /// Options read from `__metadata__`: their types, ranges and defaults (for `seqlab list`).
    static var options: [LayerOptionSpec] { get }
    /// `options`: the metadata checked against `options`, defaults filled in.
    static func evaluate<T: TensorScalar>(_ inputs: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>]
}

/// The kernels `seqlab op` knows: the shared ones here and those each registered layer's factory brings
/// (`LayerFactory.kernels`).
public enum KernelRegistry {
    public static var kernels: [FunctionalKernel.Type] {
        [FFTConvKernel.self] + LayerRegistry.factories.flatMap { $0.kernels }
    }

    public static func kernel(named name: String) throws -> FunctionalKernel.Type {
        guard let k = kernels.first(where: { $0.name == name }) else {
            throw SequenceLabError("unknown op '\(name)' (known: \(kernels.map { $0.name }.joined(separator: ", ")))")
        }
        return k
    }

    /// Reads IN, runs the kernel in the inputs' dtype, writes OUT (outputs, plus `grad_<input>` for every
    /// differentiable input when IN holds `grad_<output>` for every output). OUT is written atomically.
    public static func run(_ name: String, input: URL, output: URL) throws {
        let kernel = try kernel(named: name)
        let file = try SafeTensors.read(from: input)
        let floatNames = kernel.inputs.map(\.name) + kernel.outputs.map { "grad_\($0)" }
        let dtypes = Set(floatNames.compactMap { file.arrays[$0]?.dtype })
        if dtypes.contains(.f64) && dtypes.contains(.f32) {
            throw SequenceLabError("op \(name): inputs mix F32 and F64; use one precision")
        }
        let result: SafeTensors = dtypes.contains(.f64)
            ? try evaluate(kernel, file, as: Double.self) : try evaluate(kernel, file, as: Float.self)
        try result.write(to: output)
    }

    private static func evaluate<T: TensorScalar>(_ kernel: FunctionalKernel.Type, _ file: SafeTensors, as _: T.Type) throws -> SafeTensors {
        let options = try LayerOptions(file.optionMetadata).resolved(against: kernel.options, owner: "op \(kernel.name)")
        let known = Set(kernel.inputs.map(\.name) + kernel.outputs.map { "grad_\($0)" })
        if let stray = file.arrays.keys.sorted().first(where: { !known.contains($0) }) {
            throw SequenceLabError("op \(kernel.name): unexpected tensor '\(stray)' (inputs: \(kernel.inputs.map(\.name).joined(separator: ", ")))")
        }
        let cotangents = try kernel.outputs.compactMap { o in try file.arrays["grad_\(o)"].map { _ in (o, try file.tensor("grad_\(o)", as: T.self)) } }
        let wantGrads = !cotangents.isEmpty
        if wantGrads && cotangents.count != kernel.outputs.count {
            throw SequenceLabError("op \(kernel.name): cotangents given for \(cotangents.map(\.0)) but not for every output \(kernel.outputs)")
        }
        var inputs: [String: Tensor<T>] = [:]
        for spec in kernel.inputs {
            guard file.arrays[spec.name] != nil else {
                if spec.optional { continue }
                throw SequenceLabError("op \(kernel.name): missing input tensor '\(spec.name)'")
            }
            let tensor = try file.tensor(spec.name, as: T.self)
            // Every kernel here works on non-empty extents (a length-0 sequence, head or state has no meaning).
            guard tensor.shape.allSatisfy({ $0 >= 1 }) else {
                throw SequenceLabError("op \(kernel.name): \(spec.name) has shape \(tensor.shape); every dimension must be at least 1")
            }
            inputs[spec.name] = tensor.requiringGrad(wantGrads && spec.differentiable)
        }
        let outputs = try kernel.evaluate(inputs, options: options)
        var result = SafeTensors(metadata: file.metadata)
        for name in kernel.outputs { result.set(name, outputs[name]!) }
        if wantGrads {
            var loss: Tensor<T>? = nil
            for (o, g) in cotangents {
                guard g.shape == outputs[o]!.shape else {
                    throw SequenceLabError("op \(kernel.name): grad_\(o) has shape \(g.shape), output \(o) has shape \(outputs[o]!.shape)")
                }
                let term = (outputs[o]! * g).sum()
                loss = loss.map { $0 + term } ?? term
            }
            if let loss, loss.requiresGrad { loss.backward() }
            for spec in kernel.inputs where spec.differentiable {
                guard let x = inputs[spec.name] else { continue }
                result.set("grad_\(spec.name)", Tensor(shape: x.shape, data: x.grad ?? [T](repeating: 0, count: x.count)))
            }
        }
        return result
    }
}

/// Throws a one-line error unless `tensor` has shape `expected`.
public func requireShape<T>(_ tensor: Tensor<T>, _ expected: [Int], _ what: String, op: String) throws {
    guard tensor.shape == expected else {
        throw SequenceLabError("op \(op): \(what) has shape \(tensor.shape), expected \(expected)")
    }
}

/// Throws a one-line error unless `tensor` has the given rank.
public func requireRank<T>(_ tensor: Tensor<T>, _ rank: Int, _ what: String, layout: String, op: String) throws {
    guard tensor.rank == rank else {
        throw SequenceLabError("op \(op): \(what) has shape \(tensor.shape), expected \(layout)")
    }
}

/// `fft_conv`: u [B, L, H], K [H, L], Dskip [H] (optional) -> y [B, L, H].
public enum FFTConvKernel: FunctionalKernel {
    public static let name = "fft_conv"
    public static let inputs = [KernelInput("u"), KernelInput("K"), KernelInput("Dskip", optional: true)]
    public static let outputs = ["y"]
    public static let options: [LayerOptionSpec] = []
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func evaluate<T: TensorScalar>(_ x: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>] {
        let u = x["u"]!, K = x["K"]!
        try requireRank(u, 3, "u", layout: "[B, L, H]", op: name)
        let (l, h) = (u.shape[1], u.shape[2])
        try requireShape(K, [h, l], "K", op: name)
        if let d = x["Dskip"] { try requireShape(d, [h], "Dskip", op: name) }
        return ["y": fftConvolution(u, kernel: K, skip: x["Dskip"])]
    }
}

/// `attention`: q, k, v [B, L, H, E] -> o [B, L, H, E]; options scale (default E^-1/2), causal (default true); with
/// log forget gates g [B, L, H] (optional, <= 0), forgetting attention: scores + F_i - F_j, F = cumsum g.
public enum AttentionKernel: FunctionalKernel {
    public static let name = "attention"
    public static let inputs = [KernelInput("q"), KernelInput("k"), KernelInput("v"), KernelInput("g", optional: true)]
    public static let outputs = ["o"]
    public static let options: [LayerOptionSpec] = [.numberOrAuto("scale", derived: "E^-1/2", "score scale"),
                                                    .bool("causal", true, "causal mask")]
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func evaluate<T: TensorScalar>(_ x: [String: Tensor<T>], options: OptionValues) throws -> [String: Tensor<T>] {
        let q = x["q"]!, k = x["k"]!, v = x["v"]!
        try requireRank(q, 4, "q", layout: "[B, L, H, E]", op: name)
        try requireShape(k, q.shape, "k", op: name)
        try requireShape(v, q.shape, "v", op: name)
        if let g = x["g"] {
            try requireShape(g, Array(q.shape.prefix(3)), "g", op: name)
            guard g.data.allSatisfy({ $0 <= 0 && $0.isFinite }) else {
                throw SequenceLabError("op \(name): g holds log forget gates and must be <= 0 everywhere (and finite)")
            }
        }
        return ["o": scaledDotProductAttention(q: q, k: k, v: v, scale: options.optionalDouble("scale").map { T($0) },
                                               causal: options.bool("causal"), logForgetGates: x["g"])]
    }
}
