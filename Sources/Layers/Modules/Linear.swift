import Tensors

/// An affine map y = x W^T + b over the last axis, in PyTorch's `nn.Linear` layout: W [out, in], b [out], so that a
/// layer's `weight` is the reference module's `state_dict` tensor as it is (the GEMM reads W transposed at no cost).
/// Init as PyTorch's nn.Linear: W, b ~ U(-1/sqrt(in), 1/sqrt(in)).
public final class Linear<T: TensorScalar> {
    /// [out, in].
    public let weight: Tensor<T>
    /// [out], or nil for a map without bias.
    public let bias: Tensor<T>?

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(inputSize: Int, outputSize: Int, bias hasBias: Bool = true, rng: inout RandomGenerator) {
        let bound = T(1 / Double(inputSize).squareRoot())
        weight = Tensor.uniform([outputSize, inputSize], low: -bound, high: bound, using: &rng, requiresGrad: true)
        bias = hasBias ? Tensor.uniform([outputSize], low: -bound, high: bound, using: &rng, requiresGrad: true) : nil
    }

    /// A map with W ~ N(0, std^2) and a zero bias: the `initializer_range` init of transformers-style models, which
    /// RAT's reference repository configures for its layers (`fixed`, std 0.02).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(inputSize: Int, outputSize: Int, bias hasBias: Bool = true, normalStd std: Double, rng: inout RandomGenerator) {
        weight = Tensor.randn([outputSize, inputSize], std: T(std), using: &rng, requiresGrad: true)
        bias = hasBias ? Tensor.zeros([outputSize], requiresGrad: true) : nil
    }

    /// A map over the given tensors (W [out, in], b [out]), used as they are: checks make the parameters leaves.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(weight: Tensor<T>, bias: Tensor<T>?) {
        precondition(weight.rank == 2, "Linear: weight \(weight.shape) must be [out, in]")
        precondition(bias.map { $0.shape == [weight.shape[0]] } ?? true, "Linear: bias \(bias!.shape) for weight \(weight.shape)")
        (self.weight, self.bias) = (weight, bias)
    }

    /// The number of inputs (the last axis of x).
    public var inputSize: Int { weight.shape[1] }
    /// The number of outputs.
    public var outputSize: Int { weight.shape[0] }

    /// x [..., in] -> [..., out].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        let y = x.matmul(weight, transposeOther: true)
        return bias.map { y + $0 } ?? y
    }

    /// "weight" and "bias", prefixed with `name`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func parameters(_ name: String) -> [NamedParameter<T>] {
        [NamedParameter("\(name).weight", weight)] + (bias.map { [NamedParameter("\(name).bias", $0)] } ?? [])
    }
}
