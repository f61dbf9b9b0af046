import RealModule

// Vectorisable elementwise math for Float32 hot loops: plain branch-free scalar functions that LLVM turns into
// AVX2/AVX-512 code inside loops over contiguous buffers (libm calls would stay scalar). Float64 callers use libm.
//   vectorExp:  Cody-Waite reduction x = n ln2 + r, degree-7 Taylor on |r| <= ln2/2, 2^n by exponent bits
//               (relative error < 3e-7 over [-87, 88]; 0 below, finite above);
//   vectorGELU: GELU(v) = v Phi(v) with Phi from erfc by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), and
//               GELU'(v) = Phi(v) + v phi(v).

/// e^x for Float without a libm call: x = n ln2 + r, e^r by a degree-7 Taylor polynomial, 2^n by exponent bits.
@inlinable @inline(__always)
public func vectorExp(_ x: Float) -> Float {
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
