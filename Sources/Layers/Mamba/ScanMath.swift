import Tensors

// Scalar functions for the selective scan's inner loops, written so that a loop over contiguous channels
// vectorises when specialised to Float: no libm calls, no branches (selects only), no trapping conversions.
// In Float64 (gradient checks, reference comparisons) they call the exact libm functions instead, so the fused
// kernel agrees with the reference form to rounding.

/// Vectorisable elementwise math for the selective scan (Float: polynomial forms; Double: exact libm).
enum ScanMath {
    /// e^x. Float: Cephes' expf polynomial (degree 6 on [-ln2/2, ln2/2]) times 2^n built from the exponent bits,
    /// relative error below 1e-7; inputs below -87 give 0, inputs above 88 give e^88.
    @inline(__always)
    static func exp<T: TensorScalar>(_ x: T) -> T {
        if T.self == Float.self { return unsafeBitCast(expFloat(unsafeBitCast(x, to: Float.self)), to: T.self) }
        return T.exp(x)
    }

    /// log(1 + e) for e in [0, 1]. Float: 2 atanh(s) with s = e / (2 + e) in [0, 1/3], series to s^13
    /// (relative error about 1e-8); exact near e = 0 because the series starts at 2 s ~ e.
    @inline(__always)
    static func log1pUnit<T: TensorScalar>(_ e: T) -> T {
        if T.self == Float.self { return unsafeBitCast(log1pUnitFloat(unsafeBitCast(e, to: Float.self)), to: T.self) }
        return T.log(onePlus: e)
    }

    /// softplus(x) = log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), without overflow.
    @inline(__always)
    static func softplus<T: TensorScalar>(_ x: T) -> T {
        let e = exp(-Swift.abs(x))
        return Swift.max(x, 0) + log1pUnit(e)
    }

    /// sigmoid(x) = 1 / (1 + e^-x), from e^-|x| so that nothing overflows.
    @inline(__always)
    static func sigmoid<T: TensorScalar>(_ x: T) -> T {
        let e = exp(-Swift.abs(x))
        let r = 1 / (1 + e)
        return x >= 0 ? r : e * r
    }

    /// sum_i a[i] b[i] over `count` entries (Float: two 8-lane accumulators).
    @inline(__always)
    static func dot<T: TensorScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, count: Int) -> T {
        if T.self == Float.self {
            return unsafeBitCast(
                dotFloat(UnsafeRawPointer(a), UnsafeRawPointer(b), count: count), to: T.self)
        }
        var s: T = 0
        for i in 0..<count { s += a[i] * b[i] }
        return s
    }

    @inline(__always)
    private static func expFloat(_ x0: Float) -> Float {
        x0 < -87 ? 0 : FastScalarMath.expFloat(x0)  // the shared Cephes polynomial; exactly 0 far below (decays)
    }

    @inline(__always)
    private static func log1pUnitFloat(_ e: Float) -> Float { Tensors.log1pUnit(e) }

    @inline(__always)
    private static func dotFloat(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= count {
            acc0 += a.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * b.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc1 += a.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
                * b.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            i += 16
        }
        if i + 8 <= count {
            acc0 += a.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * b.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var s = (acc0 + acc1).sum()
        let (pa, pb) = (a.assumingMemoryBound(to: Float.self), b.assumingMemoryBound(to: Float.self))
        while i < count {
            s += pa[i] * pb[i]
            i += 1
        }
        return s
    }
}

/// Base addresses of several arrays at once (nil for an absent or empty array), valid inside `body` only.
func withBaseAddresses<T, R>(_ arrays: [[T]?], _ body: ([UnsafePointer<T>?]) -> R) -> R {
    var pointers: [UnsafePointer<T>?] = []
    func nest(_ i: Int) -> R {
        if i == arrays.count { return body(pointers) }
        guard let array = arrays[i] else {
            pointers.append(nil)
            return nest(i + 1)
        }
        return array.withUnsafeBufferPointer { p in
            pointers.append(p.count > 0 ? p.baseAddress : nil)
            return nest(i + 1)
        }
    }
    return nest(0)
}
