// Vectorised row primitives for the fused kernels (attention's softmax, the gated linear attention decays).
//
// The hot spot of blocked attention after the GEMMs is exp of a score block: a scalar `expf` call per score costs
// about as much as the two GEMMs together. Every exponent these kernels take is <= 0 (scores minus a running row
// maximum, differences of cumulative log-gates), so one polynomial exp on that half-line serves them all:
//   x = n ln2 + r, n = round(x / ln2), |r| <= ln2 / 2,   e^x = 2^n p(r)
// with Cephes' degree-5 minimax p (relative error ~1e-7, Float32 rounding level) and 2^n built from its exponent
// bits. Exponents below -87.3 give 0, as e^-inf must. Float runs on SIMD16<Float> (AVX-512, or AVX2 pairs);
// Double (gradient checks only) on the platform's exp, one scalar at a time.

/// Row primitives specialised for Float (SIMD) with a scalar Double path; every exponent must be <= 0.
public enum VectorMath {
    /// p[j] = exp(p[j] - shift) for j < n; returns the sum of the new values. Needs p[j] <= shift.
    @inline(__always)
    public static func exponentiate<T: TensorScalar>(_ p: UnsafeMutablePointer<T>, count n: Int, minus shift: T) -> T {
        if T.self == Float.self {
            let r = expShiftedSum(UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self), n, unsafeBitCast(shift, to: Float.self))
            return unsafeBitCast(r, to: T.self)
        }
        var total: T = 0
        for j in 0..<n {
            let e = T.exp(p[j] - shift)
            p[j] = e
            total += e
        }
        return total
    }

    /// The largest of p[0..<n] (-infinity when n = 0).
    @inline(__always)
    public static func maximum<T: TensorScalar>(_ p: UnsafePointer<T>, count n: Int) -> T {
        if T.self == Float.self {
            return unsafeBitCast(maxFloat(UnsafeRawPointer(p).assumingMemoryBound(to: Float.self), n), to: T.self)
        }
        var m = -T.infinity
        for j in 0..<n { m = max(m, p[j]) }
        return m
    }

    /// Softmax backward on one row of a recomputed block: p[j] = exp(p[j] - logZ) (the probabilities, from scores
    /// p <= logZ) and dp[j] = p[j] (dp[j] - rowDot) (the score gradient dS, from dP).
    @inline(__always)
    public static func softmaxBackwardRow<T: TensorScalar>(
        scores p: UnsafeMutablePointer<T>, gradients dp: UnsafeMutablePointer<T>, count n: Int, logZ: T, rowDot: T
    ) {
        if T.self == Float.self {
            softmaxBackwardFloat(UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self),
                                 UnsafeMutableRawPointer(dp).assumingMemoryBound(to: Float.self), n,
                                 unsafeBitCast(logZ, to: Float.self), unsafeBitCast(rowDot, to: Float.self))
            return
        }
        for j in 0..<n {
            let pj = T.exp(p[j] - logZ)
            p[j] = pj
            dp[j] = pj * (dp[j] - rowDot)
        }
    }

    /// out[j] = exp(a[j] - b[j]) for j < n (each difference <= 0).
    @inline(__always)
    public static func expDifference<T: TensorScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, into out: UnsafeMutablePointer<T>, count n: Int) {
        if T.self == Float.self {
            expDifferenceFloat(UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), UnsafeRawPointer(b).assumingMemoryBound(to: Float.self),
                               UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self), n)
            return
        }
        for j in 0..<n { out[j] = T.exp(a[j] - b[j]) }
    }

    /// e^x for one scalar x <= 0 (the same polynomial as the vector paths for Float).
    @inline(__always)
    public static func exp<T: TensorScalar>(_ x: T) -> T {
        if T.self == Float.self { return unsafeBitCast(fastExp(SIMD16<Float>(repeating: unsafeBitCast(x, to: Float.self)))[0], to: T.self) }
        return T.exp(x)
    }
}

// MARK: - Float kernels

private typealias Vector = SIMD16<Float>
private let lanes = 16

/// e^x for x <= 0 (inputs above 0 are clamped to 0; below -87.3 give 0).
@inline(__always)
func fastExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let magic = Vector(repeating: 12_582_912)  // 1.5 * 2^23: adding it rounds to an integer held in the low bits
    // Clamp to [-88, 0] with compare-and-blend (pointwiseMin/Max and clamped() do not vectorise in Swift 6).
    var xc = x.replacing(with: 0, where: x .> 0)
    xc.replace(with: -88, where: .!(xc .>= -88))  // also maps -inf (and NaN) to -88
    let t = magic.addingProduct(xc, Vector(repeating: 1.442_695_04))  // n + magic, n = round(x log2 e)
    let n = t - magic
    var r = xc.addingProduct(n, Vector(repeating: -0.693_359_375))  // r = x - n ln2 (ln2 split in two parts)
    r = r.addingProduct(n, Vector(repeating: 2.121_944_4e-4))
    var p = Vector(repeating: 1.987_569_15e-4)
    p = Vector(repeating: 1.398_199_950_7e-3).addingProduct(p, r)
    p = Vector(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
    p = Vector(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
    p = Vector(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
    p = Vector(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
    p = (r + 1).addingProduct(p, r * r)
    // 2^n from the exponent field: the low bits of t's pattern are n (two's complement); n + 127 <= 0 gives 0.
    let bits = (unsafeBitCast(t, to: SIMD16<UInt32>.self) &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: Vector.self)
}

/// Lanewise maximum through compare-and-blend (vectorises; pointwiseMax does not).
@inline(__always)
private func lanewiseMax(_ a: Vector, _ b: Vector) -> Vector { a.replacing(with: b, where: b .> a) }

/// The largest lane.
@inline(__always)
private func horizontalMax(_ v: Vector) -> Float {
    var m = v[0]
    for i in 1..<lanes where v[i] > m { m = v[i] }
    return m
}

@inline(__always)
private func load(_ p: UnsafePointer<Float>, _ n: Int, padding: Float) -> Vector {
    var v = Vector(repeating: padding)
    for i in 0..<n { v[i] = p[i] }
    return v
}

@inline(__always)
private func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = v[i] }
}

@inline(__always)
private func loadFull(_ p: UnsafePointer<Float>) -> Vector {
    UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
}

@inline(__always)
private func storeFull(_ v: Vector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self)
}

@inline(never)
private func expShiftedSum(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ shift: Float) -> Float {
    let s = Vector(repeating: shift)
    var acc = Vector(repeating: 0), acc2 = Vector(repeating: 0)
    var j = 0
    while j + 2 * lanes <= n {
        let e0 = fastExp(loadFull(p + j) - s), e1 = fastExp(loadFull(p + j + lanes) - s)
        storeFull(e0, p + j)
        storeFull(e1, p + j + lanes)
        acc += e0
        acc2 += e1
        j += 2 * lanes
    }
    while j + lanes <= n {
        let e = fastExp(loadFull(p + j) - s)
        storeFull(e, p + j)
        acc += e
        j += lanes
    }
    if j < n {
        let e = fastExp(load(p + j, n - j, padding: -.infinity) - s)
        store(e, p + j, n - j)
        acc += e
    }
    return (acc + acc2).sum()
}

@inline(never)
private func maxFloat(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = Vector(repeating: -.infinity), m2 = Vector(repeating: -.infinity)
    var j = 0
    while j + 2 * lanes <= n {
        m = lanewiseMax(m, loadFull(p + j))
        m2 = lanewiseMax(m2, loadFull(p + j + lanes))
        j += 2 * lanes
    }
    while j + lanes <= n {
        m = lanewiseMax(m, loadFull(p + j))
        j += lanes
    }
    if j < n { m = lanewiseMax(m, load(p + j, n - j, padding: -.infinity)) }
    return horizontalMax(lanewiseMax(m, m2))
}

@inline(never)
private func softmaxBackwardFloat(_ p: UnsafeMutablePointer<Float>, _ dp: UnsafeMutablePointer<Float>, _ n: Int, _ logZ: Float, _ rowDot: Float) {
    let z = Vector(repeating: logZ), d = Vector(repeating: rowDot)
    var j = 0
    while j + lanes <= n {
        let e = fastExp(loadFull(p + j) - z)
        storeFull(e, p + j)
        storeFull(e * (loadFull(dp + j) - d), dp + j)
        j += lanes
    }
    if j < n {
        let e = fastExp(load(p + j, n - j, padding: -.infinity) - z)
        store(e, p + j, n - j)
        store(e * (load(dp + j, n - j, padding: 0) - d), dp + j, n - j)
    }
}

@inline(never)
private func expDifferenceFloat(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    var j = 0
    while j + lanes <= n {
        storeFull(fastExp(loadFull(a + j) - loadFull(b + j)), out + j)
        j += lanes
    }
    if j < n { store(fastExp(load(a + j, n - j, padding: 0) - load(b + j, n - j, padding: 0)), out + j, n - j) }
}
