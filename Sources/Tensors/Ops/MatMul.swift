// Matrix products through BLAS (cblas_sgemm / cblas_dgemm). C = op(A) op(B), batched over leading axes.
// Backward: d op(A) = dC op(B)^T, d op(B) = op(A)^T dC, each again one (batched) GEMM.

/// A batch of GEMMs C_i = alpha op(A_i) op(B_i) + beta C_i, with element strides between batch members
/// (a stride of 0 shares one matrix across the batch). Small independent products run in parallel with
/// single-threaded BLAS; products into a shared C (stride 0) accumulate in order.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func batchedGemm<T: TensorScalar>(
    batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: T = 1,
    a: UnsafePointer<T>, lda: Int, strideA: Int,
    b: UnsafePointer<T>, ldb: Int, strideB: Int,
    beta: T = 0, c: UnsafeMutablePointer<T>, ldc: Int, strideC: Int
) {
    if m == 0 || n == 0 { return }
    if k == 0 {  // empty sum: C = beta C (beta 0 writes zeros: C may be uninitialised, as BLAS allows)
        for i in 0..<batch { for r in 0..<m { for s in 0..<n { let j = i * strideC + r * ldc + s; c[j] = beta == 0 ? 0 : beta * c[j] } } }
        return
    }
    let one = { (i: Int, betaI: T) in
        T.gemm(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
            a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
            beta: betaI, c: c + i * strideC, ldc: ldc)
    }
    if strideC == 0 {
        for i in 0..<batch { one(i, i == 0 ? beta : 1) }
    } else if batch > 1 && m * n * k < 128 * 128 * 128 {
        Parallel.forEach(batch) { one($0, beta) }
    } else {
        for i in 0..<batch { one(i, beta) }
    }
}

extension Tensor {
    /// Matrix product over the last two axes: self [..., M, K] x other [K, N] or [..., K, N] (same leading axes).
    /// `transposeSelf` / `transposeOther` read the last two axes of an operand swapped.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func matmul(_ other: Tensor, transposeSelf tA: Bool = false, transposeOther tB: Bool = false) -> Tensor {
        precondition(rank >= 2 && other.rank >= 2, "matmul: operands need rank >= 2, got \(shape) and \(other.shape)")
        let batchShape = Array(shape.dropLast(2))
        let sharedB = other.rank == 2
        precondition(
            sharedB || Array(other.shape.dropLast(2)) == batchShape,
            "matmul: leading axes of \(shape) and \(other.shape) differ")
        let (ar, ac) = (shape[rank - 2], shape[rank - 1])
        let (br, bc) = (other.shape[other.rank - 2], other.shape[other.rank - 1])
        let (m, k) = tA ? (ac, ar) : (ar, ac)
        let (k2, n) = tB ? (bc, br) : (br, bc)
        precondition(
            k == k2,
            "matmul: inner extents differ: \(shape)\(tA ? "^T" : "") x \(other.shape)\(tB ? "^T" : "")")
        let batch = batchShape.reduce(1, *)
        var out = uninitializedArray(T.self, count: batch * m * n)  // every element written (beta 0)
        let (aData, bData) = (data, other.data)
        let strideB = sharedB ? 0 : k * n
        aData.withUnsafeBufferPointer { a in
            bData.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { c in
                    if sharedB && !tA {  // one tall GEMM: [batch*M, K] x [K, N]
                        T.gemm(
                            transA: false, transB: tB, m: batch * m, n: n, k: k, alpha: 1,
                            a: a.baseAddress!, lda: ac, b: b.baseAddress!, ldb: bc, beta: 0, c: c.baseAddress!, ldc: n)
                    } else {
                        batchedGemm(
                            batch: batch, transA: tA, transB: tB, m: m, n: n, k: k,
                            a: a.baseAddress!, lda: ac, strideA: m * k, b: b.baseAddress!, ldb: bc, strideB: strideB,
                            c: c.baseAddress!, ldc: n, strideC: m * n)
                    }
                }
            }
        }
        let result = Tensor(shape: batchShape + [m, n], data: out)
        let (needA, needB) = (requiresGrad, other.requiresGrad)
        Tape.record("matmul", inputs: [self, other], output: result) { dc in
            var da: [T]? = nil, db: [T]? = nil
            aData.withUnsafeBufferPointer { a in
                bData.withUnsafeBufferPointer { b in
                    dc.withUnsafeBufferPointer { g in
                        if needA {
                            var d = uninitializedArray(T.self, count: aData.count)
                            d.withUnsafeMutableBufferPointer { dA in
                                if sharedB && !tA {  // dA_flat = dC_flat op(B)^T, one tall GEMM [batch*M, K]
                                    T.gemm(
                                        transA: false, transB: !tB, m: batch * m, n: k, k: n, alpha: 1,
                                        a: g.baseAddress!, lda: n, b: b.baseAddress!, ldb: bc, beta: 0, c: dA.baseAddress!, ldc: k)
                                } else if !tA {  // dA = dC op(B)^T  [M, K]
                                    batchedGemm(
                                        batch: batch, transA: false, transB: !tB, m: m, n: k, k: n,
                                        a: g.baseAddress!, lda: n, strideA: m * n, b: b.baseAddress!, ldb: bc, strideB: strideB,
                                        c: dA.baseAddress!, ldc: k, strideC: m * k)
                                } else {  // dA = op(B) dC^T  [K, M]
                                    batchedGemm(
                                        batch: batch, transA: tB, transB: true, m: k, n: m, k: n,
                                        a: b.baseAddress!, lda: bc, strideA: strideB, b: g.baseAddress!, ldb: n, strideB: m * n,
                                        c: dA.baseAddress!, ldc: m, strideC: m * k)
                                }
                            }
                            da = d
                        }
                        if needB {
                            var d = uninitializedArray(T.self, count: bData.count)
                            let strideDB = sharedB ? 0 : k * n
                            d.withUnsafeMutableBufferPointer { dB in
                                if sharedB && !tA && !tB {  // dB = A_flat^T dC_flat, one GEMM
                                    T.gemm(
                                        transA: true, transB: false, m: k, n: n, k: batch * m, alpha: 1,
                                        a: a.baseAddress!, lda: ac, b: g.baseAddress!, ldb: n, beta: 0, c: dB.baseAddress!, ldc: n)
                                } else if sharedB && !tA {  // dB = dC_flat^T A_flat, one GEMM [N, K]
                                    T.gemm(
                                        transA: true, transB: false, m: n, n: k, k: batch * m, alpha: 1,
                                        a: g.baseAddress!, lda: n, b: a.baseAddress!, ldb: ac, beta: 0, c: dB.baseAddress!, ldc: k)
                                } else if !tB {  // dB = op(A)^T dC  [K, N]
                                    batchedGemm(
                                        batch: batch, transA: !tA, transB: false, m: k, n: n, k: m,
                                        a: a.baseAddress!, lda: ac, strideA: m * k, b: g.baseAddress!, ldb: n, strideB: m * n,
                                        c: dB.baseAddress!, ldc: n, strideC: strideDB)
                                } else {  // dB = dC^T op(A)  [N, K]
                                    batchedGemm(
                                        batch: batch, transA: true, transB: tA, m: n, n: k, k: m,
                                        a: g.baseAddress!, lda: n, strideA: m * n, b: a.baseAddress!, ldb: ac, strideB: m * k,
                                        c: dB.baseAddress!, ldc: k, strideC: strideDB)
                                }
                            }
                            db = d
                        }
                    }
                }
            }
            return [da, db]
        }
        return result
    }
}

