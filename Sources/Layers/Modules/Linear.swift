import Tensors

/// An affine map y = x W + b over the last axis, W [in, out] (stored input-major so the product is one GEMM).
/// Init as PyTorch's nn.Linear: W, b ~ U(-1/sqrt(in), 1/sqrt(in)).
public final class Linear<T: TensorScalar> {
    public let weight: Tensor<T>
    public let bias: Tensor<T>?

    public init(inputSize: Int, outputSize: Int, bias hasBias: Bool = true, rng: inout RandomGenerator) {
        let bound = T(1 / Double(inputSize).squareRoot())
        weight = Tensor.uniform([inputSize, outputSize], low: -bound, high: bound, using: &rng, requiresGrad: true)
        bias = hasBias ? Tensor.uniform([outputSize], low: -bound, high: bound, using: &rng, requiresGrad: true) : nil
    }

    /// x [..., in] -> [..., out].
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        let y = x.matmul(weight)
        return bias.map { y + $0 } ?? y
    }

    /// "weight" and "bias", prefixed with `name`.
    public func parameters(_ name: String) -> [NamedParameter<T>] {
        [NamedParameter("\(name).weight", weight)] + (bias.map { [NamedParameter("\(name).bias", $0)] } ?? [])
    }
}
