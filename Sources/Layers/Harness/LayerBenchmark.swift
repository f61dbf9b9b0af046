import Foundation
import Tensors

/// The benchmark shapes of DESIGN.md: forward + backward of one layer, Float32.
public enum BenchmarkShape: String, CaseIterable, Sendable {
    /// batch 8, length 1024, d_model 128.
    case lra
    /// batch 1, length 16384, d_model 128.
    case long

    public var batch: Int { self == .lra ? 8 : 1 }
    public var length: Int { self == .lra ? 1024 : 16384 }
    public var dModel: Int { 128 }
}

/// One benchmark row: `{"layer", "shape", "fwd_bwd_ms", "fwd_ms", "peak_rss_mb"}` in `seqlab bench --json`.
public struct LayerBenchmarkResult: Codable, Sendable {
    public let layer: String
    public let shape: String
    public let fwd_bwd_ms: Double
    public let fwd_ms: Double
    public let peak_rss_mb: Double
}

/// The generic layer benchmark every registered layer gets: `seqlab bench --layer NAME --shape lra|long`.
/// Loss = sum(y * g) with a fixed random g; one warm-up, then the median of `repeats` timed runs. Peak memory is
/// the process's resident high-water mark over the timed runs (reset before them through /proc/self/clear_refs).
public enum LayerBenchmark {
    public static func run(_ name: String, shape: BenchmarkShape, options: LayerOptions = LayerOptions(), repeats: Int = 5) throws -> LayerBenchmarkResult {
        let layer: any SequenceLayer<Float> = try LayerRegistry.make(name, dModel: shape.dModel, options: options, seed: 0)
        var rng = RandomGenerator(seed: 1)
        let x = Tensor<Float>.randn([shape.batch, shape.length, shape.dModel], using: &rng).requiringGrad()
        let g = Tensor<Float>.randn([shape.batch, shape.length, shape.dModel], using: &rng)
        let params = layer.parameters
        func forward() -> Tensor<Float> { layer(x) }
        func forwardBackward() {
            forward().backward(seed: g.data)
            x.zeroGrad()
            for p in params { p.tensor.zeroGrad() }
        }
        forwardBackward()  // warm-up: plans, caches, page faults
        MemoryProbe.resetPeak()
        let fwdBwd = median((0..<repeats).map { _ in milliseconds(forwardBackward) })
        let fwd = median((0..<repeats).map { _ in milliseconds { _ = forward() } })
        return LayerBenchmarkResult(layer: name, shape: shape.rawValue, fwd_bwd_ms: fwdBwd, fwd_ms: fwd, peak_rss_mb: MemoryProbe.peakResidentMB())
    }
}

