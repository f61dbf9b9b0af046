import Tensors

/// sum_i a[i] b[i] over n contiguous values: SIMD16 lanes for Float (the scalar reduction does not vectorise under
/// strict floating-point order), four scalar accumulators for Double.
@inline(__always)
func rowDot<T: TensorScalar>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ n: Int) -> T {
    if T.self == Float.self {
        let (ra, rb) = (UnsafeRawPointer(a), UnsafeRawPointer(b))
        var acc = SIMD16<Float>(), i = 0
        while i + 16 <= n {
            acc += ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            i += 16
        }
        var s = acc.sum()
        let (fa, fb) = (ra.assumingMemoryBound(to: Float.self), rb.assumingMemoryBound(to: Float.self))
        while i < n { s += fa[i] * fb[i]; i += 1 }
        return unsafeBitCast(s, to: T.self)
    }
    var (s0, s1, s2, s3): (T, T, T, T) = (0, 0, 0, 0)
    var i = 0
    while i + 4 <= n { s0 += a[i] * b[i]; s1 += a[i + 1] * b[i + 1]; s2 += a[i + 2] * b[i + 2]; s3 += a[i + 3] * b[i + 3]; i += 4 }
    while i < n { s0 += a[i] * b[i]; i += 1 }
    return (s0 + s1) + (s2 + s3)
}

/// acc[i] += a[i] b[i] over n contiguous values: SIMD16 lanes for Float (the scalar loop does not vectorise when the
/// three pointers may alias), plain loop for Double.
@inline(__always)
func multiplyAccumulate<T: TensorScalar>(_ acc: UnsafeMutablePointer<T>, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ n: Int) {
    if T.self == Float.self {
        let (rc, ra, rb) = (UnsafeMutableRawPointer(acc), UnsafeRawPointer(a), UnsafeRawPointer(b))
        var i = 0
        while i + 16 <= n {
            let x = rc.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                + ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            rc.storeBytes(of: x, toByteOffset: 4 * i, as: SIMD16<Float>.self)
            i += 16
        }
        let (fc, fa, fb) = (rc.assumingMemoryBound(to: Float.self), ra.assumingMemoryBound(to: Float.self), rb.assumingMemoryBound(to: Float.self))
        while i < n { fc[i] += fa[i] * fb[i]; i += 1 }
        return
    }
    for i in 0..<n { acc[i] += a[i] * b[i] }
}
