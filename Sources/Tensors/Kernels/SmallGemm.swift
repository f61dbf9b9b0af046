import CKernels

// A register-tiled Float32 product without packing, for the flash-attention kernel's block products.
//
// BLAS packs both operands of every call. In blocked attention with a small head dimension E the big operand of
// four of the six products is a score block (P or dS, 256 x 256) used once per call, and the output has only E
// columns: packing the score block costs about as much as multiplying it (measured: OpenBLAS ~60-65 GFLOP/s on
// 256 x 32 x 256, this kernel ~80 on one Zen 4 core). A is read in place one scalar at a time (any layout:
// rowStride/colStride cover A and A^T), B row by row as vectors, and C accumulates in registers:
//     C[i, j] (+)= alpha sum_k A(i, k) B[k, j],
// in tiles sized to the register file of the instruction set chosen at run time (CKernels: AVX-512 8 x 32,
// AVX2 + FMA 6 x 16, SSE2 4 x 8); columns beyond a multiple of the vector width take a scalar loop (callers use it
// when n is a multiple of 16).

/// Float32 block products for the attention kernel (see the file comment).
public enum SmallGemm {
    /// C[m, n] = alpha A B (accumulate false) or C += alpha A B (accumulate true), with A(i, k) =
    /// a[i rowStride + k colStride], B row k = b + k ldb (n floats), C row i = c + i ldc.
    @inline(__always)
    public static func product(
        m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, rowStride: Int, colStride: Int,
        b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        sl_small_gemm_f32(m, n, k, alpha, a, rowStride, colStride, b, ldb, accumulate ? 1 : 0, c, ldc)
    }
}
