import Tensors

// The S4 block's elementwise stages as fused nodes with vectorised Float32 math (Tensors' VectorMath.swift):
//   gelu:       y = v Phi(v), Phi the standard normal CDF (PyTorch's exact GELU);
//   glu_linear: y = GLU(x W^T + b) = (x W^T + b)_a * sigmoid((x W^T + b)_b), W [2H, I] (PyTorch's layout), the
//               block's output projection, from
//               [..., I] rows or from channel-major [B, I, L] input (the S4 block's FFT convolution output).
// Float64 uses the exact libm functions (gradient checks).

/// GELU over `count` values: out = GELU(v), slope = GELU'(v), threaded.
@inline(__always)
private func geluForward<T: TensorScalar>(_ v: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, _ slope: UnsafeMutablePointer<T>, count: Int) {
    Parallel.forEachRange(count, minimumChunk: 1 << 15) { range in
        geluValuesAndSlopes(v + range.lowerBound, out + range.lowerBound, slope + range.lowerBound, count: range.count)
    }
}

extension Tensor {
    /// GELU with the exact Gaussian CDF, y = x Phi(x) (Hendrycks & Gimpel 2016; PyTorch's default), as one node
    /// that keeps the slope for the backward pass (dx = dy GELU'(x)). Float32 runs the vectorised approximation
    /// above (|error| below 2e-7 relative to |x|); Float64 the libm erf.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func fastGELU() -> Tensor {
        var out = uninitializedArray(T.self, count: count), slope = uninitializedArray(T.self, count: count)
        data.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { o in
                slope.withUnsafeMutableBufferPointer { s in geluForward(v.baseAddress!, o.baseAddress!, s.baseAddress!, count: count) }
            }
        }
        let result = Tensor(shape: shape, data: out)
        let n = count
        Tape.record("gelu", inputs: [self], output: result) { dy in
            var dx = uninitializedArray(T.self, count: n)
            dy.withUnsafeBufferPointer { g in
                slope.withUnsafeBufferPointer { s in
                    dx.withUnsafeMutableBufferPointer { d in
                        let (gp, sp, dp) = (g.baseAddress!, s.baseAddress!, d.baseAddress!)
                        Parallel.forEachRange(n, minimumChunk: 1 << 15) { range in
                            for i in range { dp[i] = gp[i] * sp[i] }
                        }
                    }
                }
            }
            return [dx]
        }
        return result
    }
}

/// y = GLU(x W^T + b) over the last axis: x [..., I], W [2H, I] (nn.Linear's layout), b [2H] -> y [..., H], with
/// y = a sigmoid(g) for [a, g] = x W^T + b. One node: a GEMM, a vectorised pass adding the bias and applying the
/// gate; backward dZ = [dy s, dy a s (1 - s)], dx = dZ W, dW = dZ^T x, db = sum over rows of dZ (two GEMMs and a
/// reduction).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func gluLinear<T: TensorScalar>(_ x: Tensor<T>, weight: Tensor<T>, bias: Tensor<T>?) -> Tensor<T> {
    precondition(weight.rank == 2 && x.shape.last == weight.shape[1],
                 "glu_linear: x \(x.shape) with W \(weight.shape) (needs [..., I] and [2H, I])")
    let rows = x.count / weight.shape[1]
    return gluLinear(x, weight: weight, bias: bias, layout: RowLayout(batch: 1, length: rows, channelMajor: false),
                     outputShape: Array(x.shape.dropLast()) + [weight.shape[0] / 2])
}

/// GLU(x^T W^T + b) from channel-major input x [B, I, L] (each batch member's I x L block read transposed by the
/// products): y [B, L, H]. Same node as `gluLinear` otherwise; dx comes back channel-major.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func gluLinearChannelMajor<T: TensorScalar>(_ x: Tensor<T>, weight: Tensor<T>, bias: Tensor<T>?) -> Tensor<T> {
    precondition(weight.rank == 2 && x.rank == 3 && x.shape[1] == weight.shape[1],
                 "glu_linear: channel-major x \(x.shape) with W \(weight.shape) (needs [B, I, L] and [2H, I])")
    return gluLinear(x, weight: weight, bias: bias, layout: RowLayout(batch: x.shape[0], length: x.shape[2], channelMajor: true),
                     outputShape: [x.shape[0], x.shape[2], weight.shape[0] / 2])
}

/// How the input rows of a GLU-linear node are stored: `batch` blocks of `length` rows, each block row-major
/// [length, I] or channel-major [I, length].
struct RowLayout {
    let batch: Int, length: Int, channelMajor: Bool

    /// Runs `body(block, start, count)` over parts of every block's rows, spread over the threads.
    func forEachPart(_ body: (Int, Int, Int) -> Void) {
        let parts = Swift.max(1, Swift.min(Parallel.threadCount / Swift.max(1, batch), length / 64))
        let size = (length + parts - 1) / parts
        Parallel.forEach(batch * parts) { item in
            let (b, p) = (item / parts, item % parts)
            let start = p * size
            if start < length { body(b, start, Swift.min(size, length - start)) }
        }
    }
}

@inline(__always)
private func gluLinear<T: TensorScalar>(
    _ x: Tensor<T>, weight: Tensor<T>, bias: Tensor<T>?, layout: RowLayout, outputShape: [Int]
) -> Tensor<T> {
    let width = weight.shape[0], inputs = weight.shape[1], half = width / 2
    precondition(width % 2 == 0, "glu_linear: W must have an even number of rows, got \(weight.shape)")
    if let bias { precondition(bias.shape == [width], "glu_linear: bias \(bias.shape), needs [\(width)]") }
    let (batch, length) = (layout.batch, layout.length), rows = batch * length
    // Z = [a, s]: the linear part and, in place of g, the gate s = sigmoid(g), kept for the backward pass.
    var z = uninitializedArray(T.self, count: rows * width)  // written by the products (beta = 0)
    var out = uninitializedArray(T.self, count: rows * half)
    let (xData, wData, bData) = (x.data, weight.data, bias?.data)
    z.withUnsafeMutableBufferPointer { zp in
    out.withUnsafeMutableBufferPointer { op in
    xData.withUnsafeBufferPointer { xp in
    wData.withUnsafeBufferPointer { wp in
        let (zBase, outBase, xBase, wBase) = (zp.baseAddress!, op.baseAddress!, xp.baseAddress!, wp.baseAddress!)
        let zeros = [T](repeating: 0, count: bData == nil ? width : 0)
        (bData ?? zeros).withUnsafeBufferPointer { biasPointer in
            let biasBase = biasPointer.baseAddress!
            layout.forEachPart { b, r0, m in  // Z = x W^T over rows b L + r0 ..< b L + r0 + m, then bias and gate
                let zRows = zBase + (b * length + r0) * width
                if layout.channelMajor {
                    T.gemm(transA: true, transB: true, m: m, n: width, k: inputs, alpha: 1, a: xBase + b * inputs * length + r0,
                           lda: length, b: wBase, ldb: inputs, beta: 0, c: zRows, ldc: width)
                } else {
                    T.gemm(transA: false, transB: true, m: m, n: width, k: inputs, alpha: 1, a: xBase + (b * length + r0) * inputs,
                           lda: inputs, b: wBase, ldb: inputs, beta: 0, c: zRows, ldc: width)
                }
                for r in 0..<m {
                    let row = zRows + r * width
                    gate(row, row + half, bias: biasBase, biasBase + half, outBase + (b * length + r0 + r) * half, count: half)
                }
            }
        }
    }}}}
    let result = Tensor(shape: outputShape, data: out)
    let tensors = [x, weight] + (bias.map { [$0] } ?? [])
    let (needX, needW) = (x.requiresGrad, weight.requiresGrad)
    Tape.record("glu_linear", inputs: tensors, output: result) { dy in
        // Every entry is written below (GEMMs with beta = 0 do not read their output).
        var dz = uninitializedArray(T.self, count: rows * width)
        var dx = uninitializedArray(T.self, count: needX ? rows * inputs : 0)
        var dw = uninitializedArray(T.self, count: needW ? inputs * width : 0)
        var db = uninitializedArray(T.self, count: bData == nil ? 0 : width)
        dz.withUnsafeMutableBufferPointer { dzp in
        dx.withUnsafeMutableBufferPointer { dxp in
        dw.withUnsafeMutableBufferPointer { dwp in
        db.withUnsafeMutableBufferPointer { dbp in
        z.withUnsafeBufferPointer { zp in
        dy.withUnsafeBufferPointer { gp in
        xData.withUnsafeBufferPointer { xp in
        wData.withUnsafeBufferPointer { wp in
            let (dzBase, zBase, gBase, xBase, wBase) = (dzp.baseAddress!, zp.baseAddress!, gp.baseAddress!, xp.baseAddress!, wp.baseAddress!)
            let (dxBase, dwBase, dbBase) = (needX ? dxp.baseAddress : nil, needW ? dwp.baseAddress : nil, bData == nil ? nil : dbp.baseAddress)
            layout.forEachPart { b, r0, m in  // dZ = [dy s, dy a s (1 - s)], then dx for these rows
                let first = b * length + r0
                for r in first..<(first + m) {
                    let (za, zs, g) = (zBase + r * width, zBase + r * width + half, gBase + r * half)
                    let (da, dg) = (dzBase + r * width, dzBase + r * width + half)
                    for j in 0..<half {
                        let (a, s) = (za[j], zs[j])
                        da[j] = g[j] * s
                        dg[j] = g[j] * a * s * (1 - s)
                    }
                }
                guard let dxBase else { return }
                if layout.channelMajor {  // dx[b] = W^T dZ[b]^T, [I, L] columns r0 ..< r0 + m
                    T.gemm(transA: true, transB: true, m: inputs, n: m, k: width, alpha: 1, a: wBase, lda: inputs,
                           b: dzBase + first * width, ldb: width, beta: 0, c: dxBase + b * inputs * length + r0, ldc: length)
                } else {  // dx = dZ W
                    T.gemm(transA: false, transB: false, m: m, n: inputs, k: width, alpha: 1, a: dzBase + first * width, lda: width,
                           b: wBase, ldb: inputs, beta: 0, c: dxBase + first * inputs, ldc: inputs)
                }
            }
            guard dwBase != nil || dbBase != nil else { return }
            [T](repeating: 1, count: rows).withUnsafeBufferPointer { onesPointer in
                let ones = onesPointer.baseAddress!
                splitRows(width) { c0, n in  // dW = sum_b dZ[b]^T x[b] and db = 1^T dZ, split over output rows
                    if let dwBase {
                        for b in 0..<batch {
                            let dzBlock = dzBase + b * length * width + c0
                            if layout.channelMajor {
                                T.gemm(transA: true, transB: true, m: n, n: inputs, k: length, alpha: 1, a: dzBlock, lda: width,
                                       b: xBase + b * inputs * length, ldb: length, beta: b == 0 ? 0 : 1, c: dwBase + c0 * inputs, ldc: inputs)
                            } else {
                                T.gemm(transA: true, transB: false, m: n, n: inputs, k: length, alpha: 1, a: dzBlock, lda: width,
                                       b: xBase + b * length * inputs, ldb: inputs, beta: b == 0 ? 0 : 1, c: dwBase + c0 * inputs, ldc: inputs)
                            }
                        }
                    }
                    if let dbBase {
                        T.gemm(transA: false, transB: false, m: 1, n: n, k: rows, alpha: 1, a: ones, lda: rows,
                               b: dzBase + c0, ldb: width, beta: 0, c: dbBase + c0, ldc: width)
                    }
                }
            }
        }}}}}}}}
        return [needX ? dx : nil, needW ? dw : nil] + (bData == nil ? [] : [db])
    }
    return result
}

/// a <- a + ba, g <- sigmoid(g + bg), out = a g over `count` entries (the bias and the gate in one pass).
@inline(__always)
private func gate<T: TensorScalar>(
    _ a: UnsafeMutablePointer<T>, _ g: UnsafeMutablePointer<T>, bias ba: UnsafePointer<T>, _ bg: UnsafePointer<T>,
    _ out: UnsafeMutablePointer<T>, count: Int
) {
    if T.self == Float.self {
        let (fa, fg, fo) = (UnsafeMutableRawPointer(a).assumingMemoryBound(to: Float.self),
                            UnsafeMutableRawPointer(g).assumingMemoryBound(to: Float.self),
                            UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self))
        let (fba, fbg) = (UnsafeRawPointer(ba).assumingMemoryBound(to: Float.self), UnsafeRawPointer(bg).assumingMemoryBound(to: Float.self))
        for j in 0..<count {
            let s = 1 / (1 + vectorExp(-(fg[j] + fbg[j])))
            let value = fa[j] + fba[j]
            fa[j] = value
            fg[j] = s
            fo[j] = value * s
        }
    } else {
        for j in 0..<count {
            let s = 1 / (1 + T.exp(-(g[j] + bg[j])))
            let value = a[j] + ba[j]
            a[j] = value
            g[j] = s
            out[j] = value * s
        }
    }
}

/// Runs `body(start, count)` over about one contiguous part of 0..<total per thread (BLAS single-threaded inside:
/// the block's products are split here rather than by OpenBLAS, whose idle workers would spin against the FFT threads).
@inline(__always)
func splitRows(_ total: Int, _ body: (Int, Int) -> Void) {
    let parts = Swift.max(1, Swift.min(Parallel.threadCount, total / 64))
    let size = (total + parts - 1) / parts
    Parallel.forEach(parts) { p in
        let start = p * size
        if start < total { body(start, Swift.min(size, total - start)) }
    }
}
