import COpenBLAS
import RealModule

/// The scalar types a `Tensor` holds: `Float` for training and benchmarks, `Double` for gradient checks.
///
/// Every op is written once, generically; the few primitives that must call a precision-specific C routine
/// (BLAS products, FFTW transforms) are requirements here, implemented by `Float` (cblas_s*, fftwf_*) and
/// `Double` (cblas_d*, fftw_*).
public protocol TensorScalar: BinaryFloatingPoint, Real, Codable, Sendable
where Self.RawSignificand: FixedWidthInteger {
    /// The safetensors dtype name: "F32" or "F64".
    static var dtypeName: String { get }

    /// C = alpha op(A) op(B) + beta C, row-major (cblas_?gemm). op(A) is m x k, op(B) is k x n.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// The real-to-complex / complex-to-real FFT plans of this precision.
    static var fftPlans: RealFFTPlanCache<Self> { get }
}

extension Float: TensorScalar {
    public static var dtypeName: String { "F32" }

    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    public static var fftPlans: RealFFTPlanCache<Float> { singlePrecisionPlans }
}

extension Double: TensorScalar {
    public static var dtypeName: String { "F64" }

    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    public static var fftPlans: RealFFTPlanCache<Double> { doublePrecisionPlans }
}

/// BLAS threading: kernels that parallelise over batch x heads themselves call BLAS single-threaded
/// inside those regions (no oversubscription of the cores).
public enum BLASThreads {
    /// Sets the number of threads OpenBLAS uses for one call.
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    /// The number of threads OpenBLAS currently uses.
    public static var current: Int { Int(openblas_get_num_threads()) }

    /// Runs `body` with OpenBLAS single-threaded, restoring the previous setting afterwards.
    public static func singleThreaded<R>(_ body: () throws -> R) rethrows -> R {
        let previous = current
        if previous != 1 { set(1) }
        defer { if previous != 1 { set(previous) } }
        return try body()
    }
}
