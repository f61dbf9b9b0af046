import Tensors

// The S4 block's elementwise stages as fused nodes with vectorised Float32 math:
//   gelu:       y = v Phi(v), Phi the standard normal CDF (PyTorch's exact GELU);
//   glu_linear: y = GLU(x W + b) = (x W + b)_a * sigmoid((x W + b)_b), the block's output projection.
// Float64 uses the exact libm functions (gradient checks); Float32 uses a branch-free exp (Cody-Waite reduction,
// degree-7 Taylor on |r| <= ln2/2, relative error < 3e-7) and erfc by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7),
// written as plain loops over contiguous Float buffers so that they compile to 8-wide AVX2 code.

/// e^x for Float without a libm call: x = n ln2 + r, e^r by a degree-7 Taylor polynomial, 2^n by exponent bits.
@inline(__always)
func vectorExp(_ x: Float) -> Float {
    let clamped = Swift.min(Swift.max(x, -87.0), 88.0)
    // Adding 1.5 * 2^23 rounds x log2(e) to an integer n held in the low mantissa bits (no trapping conversion).
    let shifted = clamped * 1.442_695_04 + 12_582_912.0
    let n = shifted - 12_582_912.0
    let r = (clamped - n * 0.693_145_751_953_125) - n * 1.428_606_765_330_187e-06
    var p: Float = 1.0 / 5040
    p = p * r + 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    return p * Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
}

/// GELU and its derivative for Float: Phi(v) = 1 - Q or Q with Q = Phi(-|v|) = erfc(|v|/sqrt 2)/2 from
/// Abramowitz-Stegun 7.1.26; GELU'(v) = Phi(v) + v phi(v).
@inline(__always)
func vectorGELU(_ v: Float) -> (value: Float, derivative: Float) {
    let x = Swift.abs(v) * 0.707_106_781_2
    let t = 1 / (1 + 0.327_591_1 * x)
    var poly: Float = 1.061_405_429
    poly = poly * t - 1.453_152_027
    poly = poly * t + 1.421_413_741
    poly = poly * t - 0.284_496_736
    poly = poly * t + 0.254_829_592
    poly = poly * t
    let e = vectorExp(-0.5 * v * v)
    let q = 0.5 * poly * e
    let phi = v >= 0 ? 1 - q : q
    return (v * phi, phi + v * e * 0.398_942_280_4)
}

/// GELU over `count` values: out = GELU(v), slope = GELU'(v). Threaded, vectorised for Float.
@inline(__always)
private func geluForward<T: TensorScalar>(_ v: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, _ slope: UnsafeMutablePointer<T>, count: Int) {
    Parallel.forEachRange(count, minimumChunk: 1 << 15) { range in
        if T.self == Float.self {
            let (fv, fo, fs) = (UnsafeRawPointer(v).assumingMemoryBound(to: Float.self),
                                UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self),
                                UnsafeMutableRawPointer(slope).assumingMemoryBound(to: Float.self))
            for i in range {
                let (y, d) = vectorGELU(fv[i])
                fo[i] = y
                fs[i] = d
            }
        } else {
            for i in range {
                let x = v[i]
                let cdf = (1 + T.erf(x * T(0.707_106_781_186_547_5))) / 2
                out[i] = x * cdf
                slope[i] = cdf + x * T.exp(-x * x / 2) * T(0.398_942_280_401_432_7)
            }
        }
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

/// y = GLU(x W + b) over the last axis: x [..., I], W [I, 2H], b [2H] -> y [..., H], with y = a sigmoid(g) for
/// [a, g] = x W + b. One node: a GEMM (bias pre-filled, beta = 1), a vectorised gate pass; backward
/// dZ = [dy s, dy a s (1 - s)], dx = dZ W^T, dW = x^T dZ, db = sum over rows of dZ (two GEMMs and a reduction).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func gluLinear<T: TensorScalar>(_ x: Tensor<T>, weight: Tensor<T>, bias: Tensor<T>?) -> Tensor<T> {
    let inputs = weight.shape[0], width = weight.shape[1], half = width / 2
    precondition(weight.rank == 2 && width % 2 == 0 && x.shape.last == inputs,
                 "glu_linear: x \(x.shape) with W \(weight.shape) (needs [..., I] and [I, 2H])")
    if let bias { precondition(bias.shape == [width], "glu_linear: bias \(bias.shape), needs [\(width)]") }
    let rows = x.count / inputs
    // Z = [a, s]: the linear part and, in place of g, the gate s = sigmoid(g), kept for the backward pass.
    var z = uninitializedArray(T.self, count: rows * width)  // bias-filled or overwritten (beta = 0)
    var out = uninitializedArray(T.self, count: rows * half)
    let (xData, wData, bData) = (x.data, weight.data, bias?.data)
    z.withUnsafeMutableBufferPointer { zp in
        let zBase = zp.baseAddress!
        if let bData { for r in 0..<rows { (zBase + r * width).update(from: bData, count: width) } }
        xData.withUnsafeBufferPointer { xp in
            wData.withUnsafeBufferPointer { wp in
                let (xBase, wBase) = (xp.baseAddress!, wp.baseAddress!)
                splitRows(rows) { r0, m in  // Z = x W (+ b)  [rows, 2H]
                    T.gemm(transA: false, transB: false, m: m, n: width, k: inputs, alpha: 1, a: xBase + r0 * inputs, lda: inputs,
                           b: wBase, ldb: width, beta: bData == nil ? 0 : 1, c: zBase + r0 * width, ldc: width)
                }
            }
        }
        out.withUnsafeMutableBufferPointer { op in
            let outBase = op.baseAddress!
            Parallel.forEachRange(rows, minimumChunk: 64) { range in
                for r in range {
                    let row = zBase + r * width, o = outBase + r * half
                    gate(row, row + half, o, count: half)
                }
            }
        }
    }
    let result = Tensor(shape: Array(x.shape.dropLast()) + [half], data: out)
    let tensors = [x, weight] + (bias.map { [$0] } ?? [])
    let (needX, needW) = (x.requiresGrad, weight.requiresGrad)
    Tape.record("glu_linear", inputs: tensors, output: result) { dy in
        // Every entry is written below (GEMMs with beta = 0 do not read their output).
        var dz = uninitializedArray(T.self, count: rows * width)
        var dx = uninitializedArray(T.self, count: needX ? rows * inputs : 0)
        var dw = uninitializedArray(T.self, count: needW ? inputs * width : 0)
        var db = uninitializedArray(T.self, count: bData == nil ? 0 : width)
        dz.withUnsafeMutableBufferPointer { dzp in
            let dzBase = dzp.baseAddress!
            z.withUnsafeBufferPointer { zp in
                dy.withUnsafeBufferPointer { gp in
                    let (zBase, gBase) = (zp.baseAddress!, gp.baseAddress!)
                    Parallel.forEachRange(rows, minimumChunk: 64) { range in
                        for r in range {
                            let (za, zs, g) = (zBase + r * width, zBase + r * width + half, gBase + r * half)
                            let (da, dg) = (dzBase + r * width, dzBase + r * width + half)
                            for j in 0..<half {
                                let (a, s) = (za[j], zs[j])
                                da[j] = g[j] * s
                                dg[j] = g[j] * a * s * (1 - s)
                            }
                        }
                    }
                }
            }
            if needX {
                wData.withUnsafeBufferPointer { wp in
                    dx.withUnsafeMutableBufferPointer { dxp in
                        let (wBase, dxBase) = (wp.baseAddress!, dxp.baseAddress!)
                        splitRows(rows) { r0, m in  // dx = dZ W^T
                            T.gemm(transA: false, transB: true, m: m, n: inputs, k: width, alpha: 1, a: dzBase + r0 * width, lda: width,
                                   b: wBase, ldb: width, beta: 0, c: dxBase + r0 * inputs, ldc: inputs)
                        }
                    }
                }
            }
            if needW || bData != nil {
                xData.withUnsafeBufferPointer { xp in
                    dw.withUnsafeMutableBufferPointer { dwp in
                        db.withUnsafeMutableBufferPointer { dbp in
                          [T](repeating: 1, count: bData == nil ? 1 : rows).withUnsafeBufferPointer { op in
                            let (xBase, dwBase, dbBase, onesBase) = (xp.baseAddress!, dwp.baseAddress, dbp.baseAddress, op.baseAddress!)
                            splitRows(width) { c0, n in  // dW = x^T dZ and db = sum_rows dZ, split over output columns
                                if needW, let dwBase {
                                    T.gemm(transA: true, transB: false, m: inputs, n: n, k: rows, alpha: 1, a: xBase, lda: inputs,
                                           b: dzBase + c0, ldb: width, beta: 0, c: dwBase + c0, ldc: width)
                                }
                                if bData != nil, let dbBase {  // db = 1^T dZ
                                    T.gemm(transA: false, transB: false, m: 1, n: n, k: rows, alpha: 1, a: onesBase, lda: rows,
                                           b: dzBase + c0, ldb: width, beta: 0, c: dbBase + c0, ldc: width)
                                }
                            }
                          }
                        }
                    }
                }
            }
        }
        return [needX ? dx : nil, needW ? dw : nil] + (bData == nil ? [] : [db])
    }
    return result
}

/// out = a sigmoid(g) and g <- sigmoid(g) over `count` entries.
@inline(__always)
private func gate<T: TensorScalar>(_ a: UnsafeMutablePointer<T>, _ g: UnsafeMutablePointer<T>, _ out: UnsafeMutablePointer<T>, count: Int) {
    if T.self == Float.self {
        let (fa, fg, fo) = (UnsafeMutableRawPointer(a).assumingMemoryBound(to: Float.self),
                            UnsafeMutableRawPointer(g).assumingMemoryBound(to: Float.self),
                            UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self))
        for j in 0..<count {
            let s = 1 / (1 + vectorExp(-fg[j]))
            fg[j] = s
            fo[j] = fa[j] * s
        }
    } else {
        for j in 0..<count {
            let s = 1 / (1 + T.exp(-g[j]))
            g[j] = s
            out[j] = a[j] * s
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
