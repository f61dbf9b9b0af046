import CKernels
import Foundation

/// One figure of `seqlab bench --system`.
public struct SystemBenchmarkRow: Sendable {
    public let name: String
    public let value: Double
    public let unit: String
    public let note: String
}

/// Machine-level benchmarks: is BLAS reached without overhead, is FFTW fast, are FMAs emitted?
public enum SystemBenchmark {
    /// GFLOP/s of an n x n x n Float32 product through `Tensor.matmul` and through `cblas_sgemm` directly
    /// (median of `repeats`, after one warm-up each).
    public static func matmul(n: Int = 1024, repeats: Int = 7) -> (tensor: Double, direct: Double) {
        var rng = RandomGenerator(seed: 3)
        let a = Tensor<Float>.randn([n, n], using: &rng), b = Tensor<Float>.randn([n, n], using: &rng)
        let flops = 2 * Double(n * n * n)
        let viaTensor = Tape.withoutGradients { () -> Double in
            _ = a.matmul(b)
            return median((0..<repeats).map { _ in milliseconds { _ = a.matmul(b) } })
        }
        var c = [Float](repeating: 0, count: n * n)
        let direct = a.data.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    let cBase = cp.baseAddress!
                    let once = {
                        Float.gemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: ap.baseAddress!, lda: n,
                                   b: bp.baseAddress!, ldb: n, beta: 0, c: cBase, ldc: n)
                    }
                    once()
                    return median((0..<repeats).map { _ in milliseconds(once) })
                }
            }
        }
        return (flops / viaTensor / 1e6, flops / direct / 1e6)
    }

    /// Milliseconds of `fft_conv` forward and forward + backward at the `lra` shape (u [8, 1024, 128]).
    public static func fftConv(batch: Int = 8, length: Int = 1024, channels: Int = 128, repeats: Int = 5) -> (forward: Double, forwardBackward: Double) {
        var rng = RandomGenerator(seed: 4)
        let u = Tensor<Float>.randn([batch, length, channels], using: &rng).requiringGrad()
        let k = Tensor<Float>.randn([channels, length], std: 0.05, using: &rng).requiringGrad()
        let d = Tensor<Float>.randn([channels], using: &rng).requiringGrad()
        let g = Tensor<Float>.randn([batch, length, channels], using: &rng)
        let both = {
            fftConvolution(u, kernel: k, skip: d).backward(seed: g.data)
            [u, k, d].forEach { $0.zeroGrad() }
        }
        both()
        let fb = median((0..<repeats).map { _ in milliseconds(both) })
        let f = Tape.withoutGradients { median((0..<repeats).map { _ in milliseconds { _ = fftConvolution(u, kernel: k, skip: d) } }) }
        return (f, fb)
    }

    /// The instruction set the vector kernels run (CKernels: "avx512", "avx2" or "baseline"; SEQLAB_ISA forces one).
    public static var instructionSet: String { String(cString: sl_isa_name()) }

    /// What OpenBLAS runs on and whether SequenceLab corrected its choice (CKernels `sl_blas_core_note`).
    public static var blasCore: String { String(cString: sl_blas_core_note()) }
    /// What was done about OpenBLAS's idle spin at load (CKernels.h, `sl_blas_idle_note`).
    public static var blasIdle: String { String(cString: sl_blas_idle_note()) }

    /// Peak Float32 FMA rate of one core with the selected instruction set, GFLOP/s (independent vector FMA chains
    /// held in registers): the machine limit the benchmarks quote fractions of. Best of three.
    public static func fmaPeak(iterations: Int = 20_000_000) -> Double {
        (0..<3).map { _ in sl_fma_peak_gflops(iterations) }.max()!
    }

    /// GFLOP/s of a generic Swift loop y = a x + y over L1-resident Float arrays on one core: with the CPU's
    /// FMA units targeted (`-target-cpu`) this compiles to vfmadd over 8-wide vectors; without, to scalar fmaf
    /// calls or separate multiplies and adds, several times slower.
    public static func fusedMultiplyAdd(count: Int = 2048, iterations: Int = 100_000) -> Double {
        var y = [Float](repeating: 1, count: count)
        let x = [Float](repeating: 0.5, count: count)
        let ms = milliseconds { axpyLoop(&y, x, 0.999_9, iterations: iterations) }
        precondition(y[0].isFinite)
        return 2 * Double(count) * Double(iterations) / ms / 1e6
    }

    @inline(never)
    static func axpyLoop<T: TensorScalar>(_ y: inout [T], _ x: [T], _ a: T, iterations: Int) {
        y.withUnsafeMutableBufferPointer { yp in
            x.withUnsafeBufferPointer { xp in
                for _ in 0..<iterations {
                    for i in 0..<yp.count { yp[i] = (a * yp[i]).addingProduct(xp[i], a) }
                }
            }
        }
    }
}
