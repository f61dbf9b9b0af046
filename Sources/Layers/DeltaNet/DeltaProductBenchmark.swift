import Foundation
import Tensors

extension KernelBenchmark {
    /// `deltaProduct` alone at the `deltaproduct` layer's default sizes: q [B, L, 4, 32], k [B, L, n_h, 4, 32],
    /// v [B, L, n_h, 4, 32], beta in [0, 1], gated, Float32, loss = sum(o g), in either form (the chunked one with the
    /// layer's chunk size). FLOPs are those of the recurrent form (2 per multiply-add of its state passes: forward
    /// (4 n_h + 2) K V, backward (10 n_h + 6) K V per token and head) for both forms, so GFLOP/s compare like with like
    /// (the chunked form does more arithmetic).
    public static func deltaProduct(_ shape: BenchmarkShape, householder nh: Int = 2, form: DeltaForm = .chunked,
                                    repeats: Int = 5) -> KernelBenchmarkResult {
        let (b, l, h, kd, vd) = (shape.batch, shape.length, 4, 32, 32)
        var rng = RandomGenerator(seed: 1)
        let q = Tensor<Float>.randn([b, l, h, kd], using: &rng).requiringGrad()
        let raw = Tensor<Float>.randn([b, l, nh, h, kd], using: &rng)
        let k = (raw * (raw.square().sum(axis: 4, keepDims: true) + 1e-6).rsqrt()).detached().requiringGrad()
        let v = Tensor<Float>.randn([b, l, nh, h, vd], using: &rng).requiringGrad()
        let beta = Tensor<Float>.uniform([b, l, nh, h], low: 0, high: 1, using: &rng).requiringGrad()
        let g = Tensor<Float>.randn([b, l, h], using: &rng).logSigmoid().detached().requiringGrad()
        let seed = Tensor<Float>.randn([b, l, h, vd], using: &rng).data
        let leaves = [q, k, v, beta, g]
        // The layer's chunk (auto: max(K, V)) for the chunked form; 64-token checkpoints for the recurrent form.
        let chunk = form == .chunked ? DeltaProductLayer<Float>.defaultChunkSize(keyDim: kd, valueDim: vd) : 64
        let flops = Double(b * l * h * kd * vd) * Double((4 * nh + 2) + (10 * nh + 6))
        func forward() -> Tensor<Float> { Layers.deltaProduct(q: q, k: k, v: v, beta: beta, logDecay: g, form: form, chunkSize: chunk).output }
        func both() { forward().backward(seed: seed); leaves.forEach { $0.zeroGrad() } }
        both()
        let fb = median((0..<repeats).map { _ in milliseconds { both() } })
        let f = Tape.withoutGradients { median((0..<repeats).map { _ in milliseconds { _ = forward() } }) }
        return KernelBenchmarkResult(kernel: form == .chunked ? "delta_product" : "delta_product_recurrent", shape: shape.rawValue,
                                     forwardBackwardMs: fb, forwardMs: f, gflops: flops / fb / 1e6)
    }
}
