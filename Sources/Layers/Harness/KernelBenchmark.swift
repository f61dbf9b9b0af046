import Foundation
import Tensors

/// One kernel figure of `seqlab bench --kernels`: forward + backward of a fused kernel alone at a benchmark shape.
public struct KernelBenchmarkResult: Sendable {
    public let kernel: String
    public let shape: String
    public let forwardBackwardMs: Double
    public let forwardMs: Double
    /// Useful floating-point operations of forward + backward per second.
    public let gflops: Double
}

/// The fused kernels behind the `attention` and `gla` layers at their default sizes (4 heads; attention E = 32;
/// GLA K = 16, V = 32 from expand_k 0.5, expand_v 1 at d_model 128), Float32, loss = sum(o g).
public enum KernelBenchmark {
    /// `scaledDotProductAttention` on q, k, v [B, L, 4, d_model / 4], causal.
    public static func attention(_ shape: BenchmarkShape, repeats: Int = 5) -> KernelBenchmarkResult {
        let dims = [shape.batch, shape.length, 4, shape.dModel / 4]
        var rng = RandomGenerator(seed: 1)
        let (q, k, v) = (Tensor<Float>.randn(dims, using: &rng).requiringGrad(), Tensor<Float>.randn(dims, using: &rng).requiringGrad(),
                         Tensor<Float>.randn(dims, using: &rng).requiringGrad())
        let g = Tensor<Float>.randn(dims, using: &rng)
        let flops = attentionFlops(batch: dims[0], length: dims[1], heads: dims[2], headDim: dims[3])
        return measure("attention", shape, flops: flops.forward + flops.backward, repeats: repeats, leaves: [q, k, v]) {
            [scaledDotProductAttention(q: q, k: k, v: v)]
        } seeds: { _ in [g.data] }
    }

    /// `shortConvolutionSiLU` (fla's ShortConvolution, Mamba's conv1d: the short convolution of DeltaNet, DeltaProduct,
    /// Gated DeltaNet, GLA, Mamba, Mamba-2 and the mLSTM) on x [B, L, 2 d_model] with 4 taps: FLOPs are the taps'
    /// products alone (2 per tap forward; 4 backward, dx and dw), the SiLU not counted: a memory-bound kernel, read
    /// its milliseconds.
    public static func shortConvolution(_ shape: BenchmarkShape, repeats: Int = 5) -> KernelBenchmarkResult {
        let (b, l, e, taps) = (shape.batch, shape.length, 2 * shape.dModel, 4)
        var rng = RandomGenerator(seed: 1)
        let x = Tensor<Float>.randn([b, l, e], using: &rng).requiringGrad()
        let w = Tensor<Float>.randn([e, taps], using: &rng).scaled(by: 0.5).requiringGrad()
        let g = Tensor<Float>.randn([b, l, e], using: &rng)
        let flops = Double(b * l * e * taps) * 6
        return measure("short_conv_silu", shape, flops: flops, repeats: repeats, leaves: [x, w]) {
            [shortConvolutionSiLU(x, weight: w)]
        } seeds: { _ in [g.data] }
    }

    /// `gatedLinearAttention` on q, k [B, L, 4, d_model / 8], v [B, L, 4, d_model / 4], chunk 64, sub-chunk 16.
    public static func gla(_ shape: BenchmarkShape, repeats: Int = 5) -> KernelBenchmarkResult {
        let (b, l, h, kd, vd) = (shape.batch, shape.length, 4, shape.dModel / 8, shape.dModel / 4)
        var rng = RandomGenerator(seed: 1)
        let q = Tensor<Float>.randn([b, l, h, kd], using: &rng).requiringGrad(), k = Tensor<Float>.randn([b, l, h, kd], using: &rng).requiringGrad()
        let v = Tensor<Float>.randn([b, l, h, vd], using: &rng).requiringGrad()
        let gates = Tensor<Float>.randn([b, l, h, kd], using: &rng).logSigmoid().scaled(by: 1 / 16).detached().requiringGrad()
        let g = Tensor<Float>.randn([b, l, h, vd], using: &rng)
        let flops = glaChunkFlops(batch: b, length: l, heads: h, keyDim: kd, valueDim: vd)
        return measure("gla", shape, flops: flops.forward + flops.backward, repeats: repeats, leaves: [q, k, v, gates]) {
            [gatedLinearAttention(q: q, k: k, v: v, logGates: gates).output]
        } seeds: { _ in [g.data] }
    }

    private static func measure(
        _ name: String, _ shape: BenchmarkShape, flops: Double, repeats: Int, leaves: [Tensor<Float>],
        _ forward: () -> [Tensor<Float>], seeds: ([Tensor<Float>]) -> [[Float]]
    ) -> KernelBenchmarkResult {
        func both() {
            let ys = forward()
            ys[0].backward(seed: seeds(ys)[0])
            leaves.forEach { $0.zeroGrad() }
        }
        both()
        let fb = median((0..<repeats).map { _ in milliseconds { both() } })
        let f = Tape.withoutGradients { median((0..<repeats).map { _ in milliseconds { _ = forward() } }) }
        return KernelBenchmarkResult(kernel: name, shape: shape.rawValue, forwardBackwardMs: fb, forwardMs: f, gflops: flops / fb / 1e6)
    }
}
