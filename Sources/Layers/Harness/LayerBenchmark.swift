import Foundation
import Tensors

/// A benchmark shape: the two of DESIGN.md (`lra`: batch 8, length 1024; `long`: batch 1, length 16384; d_model
/// 128, one layer, forward + backward, Float32), or "BxL" (d_model 128) for time-against-length curves.
public struct BenchmarkShape: Sendable, Equatable {
    public let rawValue: String
    public let batch: Int
    public let length: Int
    public let dModel: Int

    public static let lra = BenchmarkShape(name: "lra", batch: 8, length: 1024)
    public static let long = BenchmarkShape(name: "long", batch: 1, length: 16384)
    /// The most tokens (B x L) a custom shape may ask for: 2^22, 32 times `long`, about 2 GB per [B, L, 128] Float32
    /// activation of the backward pass.
    public static let maximumTokens = 1 << 22

    init(name: String, batch: Int, length: Int, dModel: Int = 128) {
        (rawValue, self.batch, self.length, self.dModel) = (name, batch, length, dModel)
    }

    /// "lra", "long" or "BxL" (e.g. "1x4096").
    public init?(rawValue: String) {
        switch rawValue {
        case "lra": self = .lra
        case "long": self = .long
        default:
            let parts = rawValue.split(separator: "x", omittingEmptySubsequences: false).compactMap { Int($0) }
            guard parts.count == 2, parts[0] > 0, parts[1] > 0, parts[0] <= Self.maximumTokens / parts[1] else { return nil }
            self.init(name: rawValue, batch: parts[0], length: parts[1])
        }
    }
}

/// One benchmark row: `{"layer", "shape", "fwd_bwd_ms", "fwd_ms", "peak_rss_mb"}` (plus batch and length) in
/// `seqlab bench --json`; for a layer that counts its work (`SequenceLayer.work`), also the forward + backward
/// GFLOP, the rate, and the rate as fractions of the machine's measured sgemm rate and FMA peak (`MachineRates`).
public struct LayerBenchmarkResult: Codable, Sendable {
    public let layer: String
    public let shape: String
    public let batch: Int
    public let length: Int
    public let fwd_bwd_ms: Double
    public let fwd_ms: Double
    public let peak_rss_mb: Double
    /// Forward + backward useful work, GFLOP (`LayerWork.forwardBackwardFlops`).
    public var fwd_bwd_gflop: Double?
    /// fwd_bwd_gflop / fwd_bwd_ms, GFLOP/s.
    public var gflops: Double?
    /// gflops / the machine's sgemm rate (1024^3, all threads).
    public var sgemm_fraction: Double?
    /// gflops / the machine's FMA peak (single-core peak x threads).
    public var peak_fraction: Double?

    /// The row with its rate as fractions of `machine`'s.
    public func rated(by machine: MachineRates) -> LayerBenchmarkResult {
        var r = self
        if let g = gflops {
            r.sgemm_fraction = g / machine.sgemmGflops
            r.peak_fraction = g / machine.peakGflops
        }
        return r
    }
}

/// The machine's limits the benchmarks quote fractions of, measured in the same run: cblas_sgemm at 1024^3 on all
/// threads, and the FMA peak (`sl_fma_peak_gflops` on one core x the thread count).
public struct MachineRates: Sendable {
    public let sgemmGflops: Double
    public let peakGflops: Double

    public init(sgemmGflops: Double, peakGflops: Double) {
        (self.sgemmGflops, self.peakGflops) = (sgemmGflops, peakGflops)
    }

    /// Measures both now (a few seconds): the better of three sgemm medians, since a limit is what the machine can do
    /// (a shared machine's noise only ever lowers a measurement).
    public static func measure() -> MachineRates {
        MachineRates(sgemmGflops: (0..<3).map { _ in SystemBenchmark.matmul().direct }.max()!,
                     peakGflops: SystemBenchmark.fmaPeak() * Double(Parallel.threadCount))
    }
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
        var result = LayerBenchmarkResult(layer: name, shape: shape.rawValue, batch: shape.batch, length: shape.length,
                                          fwd_bwd_ms: fwdBwd, fwd_ms: fwd, peak_rss_mb: MemoryProbe.peakResidentMB())
        if let work = layer.work(batch: shape.batch, length: shape.length) {
            result.fwd_bwd_gflop = work.forwardBackwardFlops / 1e9
            result.gflops = work.forwardBackwardFlops / 1e6 / fwdBwd
        }
        return result
    }
}

