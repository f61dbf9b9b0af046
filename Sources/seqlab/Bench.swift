import ArgumentParser
import Foundation
import Layers
import Tensors

/// `seqlab bench`: layer timings at the DESIGN.md shapes and machine-level figures.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forward + backward timings of each layer (release build); machine figures (matmul, fft_conv, FMA).")

    @Option(help: "Benchmark one layer (default: every registered layer).") var layer: String?
    @Option(help: "lra (8 x 1024 x 128), long (1 x 16384 x 128), or BxL (d_model 128), e.g. 1x4096.") var shape: String = "lra"
    @Option(help: "Layer options as key=value, comma-separated (e.g. n_h=2,chunk_size=64).") var options: String?
    @Option(parsing: .unconditional, help: "Timed repetitions (median reported).") var repeats: Int = 5
    @Flag(help: "One JSON object per layer and line: {layer, shape, fwd_bwd_ms, fwd_ms, peak_rss_mb} and, for layers that count their work, fwd_bwd_gflop, gflops, sgemm_fraction, peak_fraction.") var json = false
    @Flag(help: "Only the machine figures: matmul through the tensor API vs cblas_sgemm, fft_conv at lra, FMA.") var system = false
    @Flag(help: "The fused kernels alone at --shape (attention, GLA, the delta rule in both forms, the short convolution): fwd+bwd ms, GFLOP/s, fraction of sgemm 1024^3.") var kernels = false
    @Flag(help: "Only the S4 family's kernel generation (Cauchy, Vandermonde) at L = 1K, 4K, 16K, H = 128, N = 64.") var ssmKernels = false

    func run() throws {
        guard let benchShape = BenchmarkShape(rawValue: shape) else {
            fail("unknown shape '\(shape)' (lra, long, or BxL such as 1x4096 with B x L at most \(BenchmarkShape.maximumTokens) tokens)")
        }
        guard (1...1000).contains(repeats) else { fail("--repeats must be between 1 and 1000, got \(repeats)") }
        let layerOptions = reportingErrors { try parseOptions(options) }
        if kernels { runKernels(benchShape); return }
        if ssmKernels {
            print("kernel            L      fwd ms   fwd+bwd ms   (H 128, N 64, Float32)")
            for r in S4KernelBenchmark.run(repeats: repeats) {
                print(r.kernel.padding(toLength: 16, withPad: " ", startingAt: 0)
                      + String(format: " %6d %9.2f %12.2f", r.length, r.forwardMilliseconds, r.forwardBackwardMilliseconds))
            }
            return
        }
        if system || (layer == nil && !json) { runSystem() }
        if system { return }
        let names = layer.map { [$0] } ?? LayerRegistry.names
        let machine = MachineRates.measure()
        if !json {
            print(String(format: "\nuseful work from each layer's formulas (docs/performance.md); limits measured now: sgemm %.0f GFLOP/s, FMA peak %.0f GFLOP/s (%d threads)",
                         machine.sgemmGflops, machine.peakGflops, Parallel.threadCount))
            print("layer            shape  fwd+bwd ms   fwd ms   peak RSS MB   GFLOP   GFLOP/s  of sgemm  of peak")
        }
        for name in names {
            let r = reportingErrors { try LayerBenchmark.run(name, shape: benchShape, options: layerOptions, repeats: repeats) }.rated(by: machine)
            if json {
                let data = try JSONEncoder().encode(r)
                print(String(decoding: data, as: UTF8.self))
            } else {
                var line = r.layer.padding(toLength: 16, withPad: " ", startingAt: 0) + " "
                    + r.shape.padding(toLength: 6, withPad: " ", startingAt: 0)
                    + String(format: " %10.1f %8.1f %13.0f", r.fwd_bwd_ms, r.fwd_ms, r.peak_rss_mb)
                if let gflop = r.fwd_bwd_gflop, let rate = r.gflops, let s = r.sgemm_fraction, let p = r.peak_fraction {
                    line += String(format: " %7.2f %9.1f %8.0f%% %7.0f%%", gflop, rate, 100 * s, 100 * p)
                }
                print(line)
            }
            fflush(stdout)
        }
    }

    private func runKernels(_ shape: BenchmarkShape) {
        let sgemm = SystemBenchmark.matmul().direct
        print(String(format: "cblas_sgemm 1024^3, %d threads: %.1f GFLOP/s", BLASThreads.current, sgemm))
        for r in [KernelBenchmark.attention(shape, repeats: repeats), KernelBenchmark.gla(shape, repeats: repeats),
                      KernelBenchmark.deltaProduct(shape, repeats: repeats),
                      KernelBenchmark.deltaProduct(shape, form: .recurrent, repeats: repeats),
                      KernelBenchmark.shortConvolution(shape, repeats: repeats)] {
            print(String(format: "%-23@ %-5@ fwd+bwd %8.1f ms  fwd %8.1f ms  %6.1f GFLOP/s  (%.0f%% of sgemm)",
                         r.kernel as NSString, r.shape as NSString, r.forwardBackwardMs, r.forwardMs, r.gflops, 100 * r.gflops / sgemm))
            fflush(stdout)
        }
    }

    private func runSystem() {
        let mm = SystemBenchmark.matmul()
        print(String(format: "matmul 1024^3 Float32: Tensor.matmul %.1f GFLOP/s, cblas_sgemm direct %.1f GFLOP/s (tensor/direct = %.3f)", mm.tensor, mm.direct, mm.tensor / mm.direct))
        let fft = SystemBenchmark.fftConv()
        print(String(format: "fft_conv at lra (u 8 x 1024 x 128, K 128 x 1024): forward %.1f ms, forward + backward %.1f ms", fft.forward, fft.forwardBackward))
        print(String(format: "FMA probe (generic y = a x + y, one core, L1-resident): %.1f GFLOP/s", SystemBenchmark.fusedMultiplyAdd()))
        print(String(format: "vector kernels: %@ (SEQLAB_ISA=baseline|avx2|avx512 forces one); FMA peak, one core: %.1f GFLOP/s",
                     SystemBenchmark.instructionSet as NSString, SystemBenchmark.fmaPeak()))
        print(SystemBenchmark.blasCore)
        print(SystemBenchmark.blasIdle)
        print(MemoryTuning.note)
        print("threads: \(Parallel.threadCount) (SEQLAB_THREADS), OpenBLAS threads: \(BLASThreads.current)")
    }
}

/// "a=1,b=two" -> LayerOptions.
func parseOptions(_ text: String?) throws -> LayerOptions {
    guard let text, !text.isEmpty else { return LayerOptions() }
    var values: [String: String] = [:]
    for pair in text.split(separator: ",") {
        let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, !parts[0].isEmpty else { throw SequenceLabError("malformed option '\(pair)' (expected key=value)") }
        values[parts[0]] = parts[1]
    }
    return LayerOptions(values)
}
