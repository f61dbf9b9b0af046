import RealModule

// Vectorisable elementwise math for Float32 hot loops: plain branch-free scalar functions that LLVM turns into
// AVX2/AVX-512 code inside loops over contiguous buffers (libm calls would stay scalar). Float64 callers use libm.
//   vectorExp:  Cephes `expf`: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial in r, 2^n from the
//               exponent bits (relative error below 1e-7; inputs clamped to [-87, 88]). The one scalar Float exp
//               of the library (FastScalarMath and the selective scan call it); the vector kernels of CKernels
//               (VectorMath) use the same polynomial;
//   vectorGELU: GELU(v) = v Phi(v) with Phi from erfc by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), and
//               GELU'(v) = Phi(v) + v phi(v).

/// e^x for Float without a libm call (Cephes expf): x = n ln2 + r, e^r by a polynomial, 2^n by exponent bits.
@inlinable @inline(__always)
public func vectorExp(_ x0: Float) -> Float {
    let x = x0 < -87 ? -87 : (x0 > 88 ? 88 : x0)
    // n = round(x / ln 2) through the 1.5 * 2^23 trick: t's low mantissa bits hold n (exact for |n| < 2^22).
    let t = x * 1.442_695_040_888_963_4 + 12_582_912
    let n = t - 12_582_912
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4  // x - n ln 2, with ln 2 split in two parts
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    p = p * (r * r) + r + 1
    return p * Float(bitPattern: (t.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
}

/// GELU and its derivative for Float: Phi(v) = 1 - Q or Q with Q = Phi(-|v|) = erfc(|v|/sqrt 2)/2 from
/// Abramowitz-Stegun 7.1.26; GELU'(v) = Phi(v) + v phi(v).
@inlinable @inline(__always)
public func vectorGELU(_ v: Float) -> (value: Float, derivative: Float) {
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

/// out = GELU(v) and slope = GELU'(v) over `count` contiguous values (vectorised for Float, libm erf for Double).
@inlinable @inline(__always)
public func geluValuesAndSlopes<T: TensorScalar>(
    _ v: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, _ slope: UnsafeMutablePointer<T>, count: Int
) {
    if T.self == Float.self {
        let (fv, fo, fs) = (UnsafeRawPointer(v).assumingMemoryBound(to: Float.self),
                            UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self),
                            UnsafeMutableRawPointer(slope).assumingMemoryBound(to: Float.self))
        for i in 0..<count {
            let (y, d) = vectorGELU(fv[i])
            fo[i] = y
            fs[i] = d
        }
    } else {
        for i in 0..<count {
            let x = v[i]
            let cdf = (1 + T.erf(x * T(0.707_106_781_186_547_5))) / 2
            out[i] = x * cdf
            slope[i] = cdf + x * T.exp(-x * x / 2) * T(0.398_942_280_401_432_7)
        }
    }
}
