// A register-tiled Float32 product without packing, for the flash-attention kernel's block products.
//
// BLAS packs both operands of every call. In blocked attention with a small head dimension E the big operand of
// four of the six products is a score block (P or dS, 256 x 256) used once per call, and the output has only E
// columns: packing the score block costs about as much as multiplying it (measured: OpenBLAS ~60-65 GFLOP/s on
// 256 x 32 x 256, this kernel ~80 on one Zen 4 core). Here A is read in place one scalar at a time (any layout:
// rowStride/colStride cover A and A^T), B row by row as 16-wide vectors, and C accumulates in registers:
//     C[i, j] (+)= alpha sum_k A(i, k) B[k, j],   tiles of 8 rows x 32 columns = 16 AVX-512 accumulators.
// Columns beyond a multiple of 16 fall back to a scalar loop (callers use it when n is a multiple of 16).

private typealias Lane16 = SIMD16<Float>

@inline(__always) private func load16(_ p: UnsafePointer<Float>) -> Lane16 { UnsafeRawPointer(p).loadUnaligned(as: Lane16.self) }
@inline(__always) private func store16(_ v: Lane16, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lane16.self) }

/// Float32 block products for the attention kernel (see the file comment).
public enum SmallGemm {
    /// C[m, n] = alpha A B (accumulate false) or C += alpha A B (accumulate true), with A(i, k) =
    /// a[i rowStride + k colStride], B row k = b + k ldb (n floats), C row i = c + i ldc.
    public static func product(
        m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, rowStride: Int, colStride: Int,
        b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        var c0 = 0
        while c0 + 32 <= n {
            columns32(m: m, k: k, alpha: alpha, a: a, ra: rowStride, ca: colStride, b: b + c0, ldb: ldb, accumulate: accumulate, c: c + c0, ldc: ldc)
            c0 += 32
        }
        if c0 + 16 <= n {
            columns16(m: m, k: k, alpha: alpha, a: a, ra: rowStride, ca: colStride, b: b + c0, ldb: ldb, accumulate: accumulate, c: c + c0, ldc: ldc)
            c0 += 16
        }
        if c0 < n {  // scalar tail columns
            for i in 0..<m {
                for j in c0..<n {
                    var s: Float = 0
                    for kk in 0..<k { s += a[i * rowStride + kk * colStride] * b[kk * ldb + j] }
                    c[i * ldc + j] = accumulate ? c[i * ldc + j] + alpha * s : alpha * s
                }
            }
        }
    }
}

@inline(__always)
private func finish(_ x: Lane16, _ alpha: Lane16, _ p: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
    store16(accumulate ? load16(p).addingProduct(alpha, x) : alpha * x, p)
}

/// 32 columns of C: tiles of 8 rows (16 accumulators), then single rows.
@inline(never)
private func columns32(
    m: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, ra: Int, ca: Int,
    b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let al = Lane16(repeating: alpha)
    var i0 = 0
    while i0 + 8 <= m {
        var c00 = Lane16(), c01 = Lane16(), c10 = Lane16(), c11 = Lane16(), c20 = Lane16(), c21 = Lane16()
        var c30 = Lane16(), c31 = Lane16(), c40 = Lane16(), c41 = Lane16(), c50 = Lane16(), c51 = Lane16()
        var c60 = Lane16(), c61 = Lane16(), c70 = Lane16(), c71 = Lane16()
        let rows = a + i0 * ra
        for kk in 0..<k {
            let br = b + kk * ldb, ak = rows + kk * ca
            let b0 = load16(br), b1 = load16(br + 16)
            var s = Lane16(repeating: ak[0]); c00 = c00.addingProduct(s, b0); c01 = c01.addingProduct(s, b1)
            s = Lane16(repeating: ak[ra]); c10 = c10.addingProduct(s, b0); c11 = c11.addingProduct(s, b1)
            s = Lane16(repeating: ak[2 * ra]); c20 = c20.addingProduct(s, b0); c21 = c21.addingProduct(s, b1)
            s = Lane16(repeating: ak[3 * ra]); c30 = c30.addingProduct(s, b0); c31 = c31.addingProduct(s, b1)
            s = Lane16(repeating: ak[4 * ra]); c40 = c40.addingProduct(s, b0); c41 = c41.addingProduct(s, b1)
            s = Lane16(repeating: ak[5 * ra]); c50 = c50.addingProduct(s, b0); c51 = c51.addingProduct(s, b1)
            s = Lane16(repeating: ak[6 * ra]); c60 = c60.addingProduct(s, b0); c61 = c61.addingProduct(s, b1)
            s = Lane16(repeating: ak[7 * ra]); c70 = c70.addingProduct(s, b0); c71 = c71.addingProduct(s, b1)
        }
        let cr = c + i0 * ldc
        finish(c00, al, cr, accumulate); finish(c01, al, cr + 16, accumulate)
        finish(c10, al, cr + ldc, accumulate); finish(c11, al, cr + ldc + 16, accumulate)
        finish(c20, al, cr + 2 * ldc, accumulate); finish(c21, al, cr + 2 * ldc + 16, accumulate)
        finish(c30, al, cr + 3 * ldc, accumulate); finish(c31, al, cr + 3 * ldc + 16, accumulate)
        finish(c40, al, cr + 4 * ldc, accumulate); finish(c41, al, cr + 4 * ldc + 16, accumulate)
        finish(c50, al, cr + 5 * ldc, accumulate); finish(c51, al, cr + 5 * ldc + 16, accumulate)
        finish(c60, al, cr + 6 * ldc, accumulate); finish(c61, al, cr + 6 * ldc + 16, accumulate)
        finish(c70, al, cr + 7 * ldc, accumulate); finish(c71, al, cr + 7 * ldc + 16, accumulate)
        i0 += 8
    }
    while i0 < m {
        var x0 = Lane16(), x1 = Lane16()
        for kk in 0..<k {
            let s = Lane16(repeating: a[i0 * ra + kk * ca]), br = b + kk * ldb
            x0 = x0.addingProduct(s, load16(br))
            x1 = x1.addingProduct(s, load16(br + 16))
        }
        finish(x0, al, c + i0 * ldc, accumulate)
        finish(x1, al, c + i0 * ldc + 16, accumulate)
        i0 += 1
    }
}

/// 16 columns of C: tiles of 8 rows (8 accumulators), then single rows.
@inline(never)
private func columns16(
    m: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, ra: Int, ca: Int,
    b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let al = Lane16(repeating: alpha)
    var i0 = 0
    while i0 + 8 <= m {
        var c0 = Lane16(), c1 = Lane16(), c2 = Lane16(), c3 = Lane16(), c4 = Lane16(), c5 = Lane16(), c6 = Lane16(), c7 = Lane16()
        let rows = a + i0 * ra
        for kk in 0..<k {
            let b0 = load16(b + kk * ldb), ak = rows + kk * ca
            c0 = c0.addingProduct(Lane16(repeating: ak[0]), b0)
            c1 = c1.addingProduct(Lane16(repeating: ak[ra]), b0)
            c2 = c2.addingProduct(Lane16(repeating: ak[2 * ra]), b0)
            c3 = c3.addingProduct(Lane16(repeating: ak[3 * ra]), b0)
            c4 = c4.addingProduct(Lane16(repeating: ak[4 * ra]), b0)
            c5 = c5.addingProduct(Lane16(repeating: ak[5 * ra]), b0)
            c6 = c6.addingProduct(Lane16(repeating: ak[6 * ra]), b0)
            c7 = c7.addingProduct(Lane16(repeating: ak[7 * ra]), b0)
        }
        let cr = c + i0 * ldc
        finish(c0, al, cr, accumulate); finish(c1, al, cr + ldc, accumulate)
        finish(c2, al, cr + 2 * ldc, accumulate); finish(c3, al, cr + 3 * ldc, accumulate)
        finish(c4, al, cr + 4 * ldc, accumulate); finish(c5, al, cr + 5 * ldc, accumulate)
        finish(c6, al, cr + 6 * ldc, accumulate); finish(c7, al, cr + 7 * ldc, accumulate)
        i0 += 8
    }
    while i0 < m {
        var x = Lane16()
        for kk in 0..<k { x = x.addingProduct(Lane16(repeating: a[i0 * ra + kk * ca]), load16(b + kk * ldb)) }
        finish(x, al, c + i0 * ldc, accumulate)
        i0 += 1
    }
}
