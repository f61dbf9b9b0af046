import Tensors

/// exp, sigmoid and erf for fused kernels: in Float32 branch-free polynomial forms that the compiler vectorises
/// (about 20x faster than libm's scalar expf here), in Float64 the exact swift-numerics functions, so that Float64
/// gradient checks and step == parallel comparisons hold to 1e-9.
///
/// - exp (Cephes `expf`, Tensors' `vectorExp`): x = n ln 2 + r with |r| <= ln 2 / 2, e^r by a degree-7 polynomial, 2^n from the exponent
///   bits; relative error below 1e-7; inputs are clamped to [-87, 88] (so e^-inf gives 1.6e-38, never NaN).
/// - erf (Abramowitz & Stegun 7.1.26): 1 - (a1 t + ... + a5 t^5) e^{-x^2}, t = 1 / (1 + p |x|); absolute error
///   below 1.5e-7.
public enum FastScalarMath {
    /// e^x.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func exp<T: TensorScalar>(_ x: T) -> T {
        if T.self == Float.self { return unsafeBitCast(expFloat(unsafeBitCast(x, to: Float.self)), to: T.self) }
        return T.exp(x)
    }

    /// 1 / (1 + e^-x), without overflow.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func sigmoid<T: TensorScalar>(_ x: T) -> T {
        if T.self == Float.self { return unsafeBitCast(1 / (1 + expFloat(-unsafeBitCast(x, to: Float.self))), to: T.self) }
        return stableSigmoid(x)
    }

    /// The Gauss error function.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func erf<T: TensorScalar>(_ x: T) -> T {
        if T.self == Float.self { return unsafeBitCast(erfFloat(unsafeBitCast(x, to: Float.self)), to: T.self) }
        return T.erf(x)
    }

    /// The library's one Float exp polynomial (Tensors' `vectorExp`, Cephes expf).
    @inline(__always)
    static func expFloat(_ x: Float) -> Float { vectorExp(x) }

    @inline(__always)
    static func erfFloat(_ x: Float) -> Float {
        let a = x < 0 ? -x : x
        let t = 1 / (1 + 0.327_591_1 * a)
        var p: Float = 1.061_405_429
        p = p * t - 1.453_152_027
        p = p * t + 1.421_413_741
        p = p * t - 0.284_496_736
        p = p * t + 0.254_829_592
        let y = 1 - p * t * expFloat(-a * a)
        return x < 0 ? -y : y
    }
}

/// Sums and maxima of contiguous rows with eight independent accumulators (the compiler does not reassociate a
/// single floating-point accumulator, so a plain loop would run at one add per latency).
public enum RowReduce {
    /// sum_{i < n} x[i].
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func sum<T: TensorScalar>(_ x: UnsafePointer<T>, _ n: Int) -> T {
        var a0: T = 0, a1: T = 0, a2: T = 0, a3: T = 0, a4: T = 0, a5: T = 0, a6: T = 0, a7: T = 0
        var i = 0
        while i &+ 8 <= n {
            let p = x + i
            a0 += p[0]; a1 += p[1]; a2 += p[2]; a3 += p[3]
            a4 += p[4]; a5 += p[5]; a6 += p[6]; a7 += p[7]
            i &+= 8
        }
        while i < n { a0 += x[i]; i &+= 1 }
        return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    }

    /// sum_{i < n} x[i] y[i].
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func dot<T: TensorScalar>(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ n: Int) -> T {
        var a0: T = 0, a1: T = 0, a2: T = 0, a3: T = 0, a4: T = 0, a5: T = 0, a6: T = 0, a7: T = 0
        var i = 0
        while i &+ 8 <= n {
            let (p, q) = (x + i, y + i)
            a0 += p[0] * q[0]; a1 += p[1] * q[1]; a2 += p[2] * q[2]; a3 += p[3] * q[3]
            a4 += p[4] * q[4]; a5 += p[5] * q[5]; a6 += p[6] * q[6]; a7 += p[7] * q[7]
            i &+= 8
        }
        while i < n { a0 += x[i] * y[i]; i &+= 1 }
        return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    }

    /// max_{i < n} x[i] (-inf for n = 0).
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func max<T: TensorScalar>(_ x: UnsafePointer<T>, _ n: Int) -> T {
        var m0 = -T.infinity, m1 = -T.infinity, m2 = -T.infinity, m3 = -T.infinity
        var i = 0
        while i &+ 4 <= n {
            let p = x + i
            m0 = p[0] > m0 ? p[0] : m0; m1 = p[1] > m1 ? p[1] : m1
            m2 = p[2] > m2 ? p[2] : m2; m3 = p[3] > m3 ? p[3] : m3
            i &+= 4
        }
        while i < n { m0 = x[i] > m0 ? x[i] : m0; i &+= 1 }
        return Swift.max(Swift.max(m0, m1), Swift.max(m2, m3))
    }
}
