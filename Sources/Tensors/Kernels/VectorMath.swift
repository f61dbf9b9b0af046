import CKernels

// Vectorised row primitives for the fused kernels (attention's softmax, the gated linear attention decays).
//
// The hot spot of blocked attention after the GEMMs is exp of a score block: a scalar `expf` call per score costs
// about as much as the two GEMMs together. Every exponent these kernels take is <= 0 (scores minus a running row
// maximum, differences of cumulative log-gates), so one polynomial exp on that half-line serves them all:
//   x = n ln2 + r, n = round(x / ln2), |r| <= ln2 / 2,   e^x = 2^n p(r)
// with Cephes' degree-5 minimax p (relative error ~1e-7, Float32 rounding level) and 2^n built from its exponent
// bits. Exponents below -87.3 give 0, as e^-inf must. Float runs on the CKernels vector kernels (the instruction
// set chosen at run time: AVX-512, AVX2 + FMA or SSE2); Double (gradient checks only) on the platform's exp, one
// scalar at a time.

/// Row primitives specialised for Float (SIMD) with a scalar Double path; every exponent must be <= 0.
public enum VectorMath {
    /// p[j] = exp(p[j] - shift) for j < n; returns the sum of the new values. Needs p[j] <= shift.
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func exponentiate<T: TensorScalar>(_ p: UnsafeMutablePointer<T>, count n: Int, minus shift: T) -> T {
        if T.self == Float.self {
            let r = sl_exp_shifted_sum_f32(UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self), n, unsafeBitCast(shift, to: Float.self))
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
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func maximum<T: TensorScalar>(_ p: UnsafePointer<T>, count n: Int) -> T {
        if T.self == Float.self {
            return unsafeBitCast(sl_maximum_f32(UnsafeRawPointer(p).assumingMemoryBound(to: Float.self), n), to: T.self)
        }
        var m = -T.infinity
        for j in 0..<n { m = max(m, p[j]) }
        return m
    }

    /// Softmax backward on one row of a recomputed block: p[j] = exp(p[j] - logZ) (the probabilities, from scores
    /// p <= logZ) and dp[j] = p[j] (dp[j] - rowDot) (the score gradient dS, from dP).
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func softmaxBackwardRow<T: TensorScalar>(
        scores p: UnsafeMutablePointer<T>, gradients dp: UnsafeMutablePointer<T>, count n: Int, logZ: T, rowDot: T
    ) {
        if T.self == Float.self {
            sl_softmax_backward_row_f32(UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self),
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
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func expDifference<T: TensorScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, into out: UnsafeMutablePointer<T>, count n: Int) {
        if T.self == Float.self {
            sl_exp_difference_f32(UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), UnsafeRawPointer(b).assumingMemoryBound(to: Float.self),
                               UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self), n)
            return
        }
        for j in 0..<n { out[j] = T.exp(a[j] - b[j]) }
    }

    /// e^x for one scalar x <= 0 (the same polynomial as the vector paths for Float).
    @inline(__always)
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func exp<T: TensorScalar>(_ x: T) -> T {
        if T.self == Float.self { return unsafeBitCast(sl_exp_nonpositive_f32(unsafeBitCast(x, to: Float.self)), to: T.self) }
        return T.exp(x)
    }
}
