import Tensors

/// An affine map y = x W^T + b over the last axis, in PyTorch's `nn.Linear` layout: W [out, in], b [out], so that a
/// layer's `weight` is the reference module's `state_dict` tensor as it is (the GEMM reads W transposed at no cost).
/// Init as PyTorch's nn.Linear: W, b ~ U(-1/sqrt(in), 1/sqrt(in)).
public final class Linear<T: TensorScalar> {
    /// [out, in].
    public let weight: Tensor<T>
    /// [out], or nil for a map without bias.
    public let bias: Tensor<T>?

    public init(inputSize: Int, outputSize: Int, bias hasBias: Bool = true, rng: inout RandomGenerator) {
        let bound = T(1 / Double(inputSize).squareRoot())
        weight = Tensor.uniform([outputSize, inputSize], low: -bound, high: bound, using: &rng, requiresGrad: true)
        bias = hasBias ? Tensor.uniform([outputSize], low: -bound, high: bound, using: &rng, requiresGrad: true) : nil
    }

    /// The number of inputs (the last axis of x).
    public var inputSize: Int { weight.shape[1] }
    /// The number of outputs.
    public var outputSize: Int { weight.shape[0] }

    /// x [..., in] -> [..., out].
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        let y = x.matmul(weight, transposeOther: true)
        return bias.map { y + $0 } ?? y
    }

    /// "weight" and "bias", prefixed with `name`.
    public func parameters(_ name: String) -> [NamedParameter<T>] {
        [NamedParameter("\(name).weight", weight)] + (bias.map { [NamedParameter("\(name).bias", $0)] } ?? [])
    }
}

extension Linear {
    /// A linear map with Glorot & Bengio's xavier-uniform weight, W ~ U(+-gain sqrt(6 / (in + out))), and a zero bias:
    /// fla's `_init_weights` for its layers' projections (gain 2^-2.5).
    public static func xavierUniform(
        inputSize: Int, outputSize: Int, gain: Double, bias: Bool = false, rng: inout RandomGenerator
    ) -> Linear {
        let l = Linear(inputSize: inputSize, outputSize: outputSize, bias: bias, rng: &rng)
        let bound = T(gain * (6 / Double(inputSize + outputSize)).squareRoot())
        l.weight.data = Tensor<T>.uniform([outputSize, inputSize], low: -bound, high: bound, using: &rng).data
        if let b = l.bias { b.data = [T](repeating: 0, count: outputSize) }
        return l
    }
}

/// The gain of fla's xavier-uniform init of layer projections, 2^-2.5 (`nn.init.xavier_uniform_(w, gain=2 ** -2.5)`).
public let flaProjectionGain = 0.176_776_695_296_636_9
