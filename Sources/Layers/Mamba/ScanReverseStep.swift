import Tensors

/// The pointers of one state index n of one reverse step t over a block of W channels (rows of [W] each).
struct ReverseStepRows<T> {
    /// dy' (gated output gradient), x_{t-1}[n], x_t[n], dA_t[n], A^T[n], dt_t, dt_t u_t.
    let dyGated, xPrev, xCur, dA, a, dt, dtu: UnsafePointer<T>
    /// In: dA_{t+1} G_{t+1}[n]; out: dA_t G_t[n].
    let carry: UnsafeMutablePointer<T>
    /// Accumulators: d dt (over n), dA^T[n] (over t), sum_n G_t Bs_t (over n).
    let dDt, dA_T, gTimesB: UnsafeMutablePointer<T>
    /// Scratch [W].
    let scratch: UnsafeMutablePointer<T>
}

/// One state index n of the reverse sweep (the formulas at the top of SelectiveScanBackward.swift):
///   G = dy' Cs[n] + carry;  q = G x_{t-1} (dA + shift);  d dt += q A;  dA^T += q dt;  sum G Bs += G Bs[n];
///   carry = dA G;  returns dCs_t[n] = sum_w dy' x_t and dBs_t[n] = sum_w G dt u.
/// Float runs a 16-lane loop that folds both channel sums into the sweep; Double runs the plain loop and two dots.
@inline(__always)
func reverseStateIndex<T: TensorScalar>(_ r: ReverseStepRows<T>, width: Int, bn: T, cn: T, shift: T) -> (dC: T, dB: T) {
    if T.self == Float.self {
        let (dC, dB) = reverseStateIndexFloat(
            unsafeBitCast(r, to: ReverseStepRows<Float>.self), width: width, bn: unsafeBitCast(bn, to: Float.self),
            cn: unsafeBitCast(cn, to: Float.self), shift: unsafeBitCast(shift, to: Float.self))
        return (unsafeBitCast(dC, to: T.self), unsafeBitCast(dB, to: T.self))
    }
    for w in 0..<width {
        let G = r.dyGated[w] * cn + r.carry[w]              // dLoss/dx_t
        let q = G * r.xPrev[w] * (r.dA[w] + shift)          // dLoss/d(dt A)
        r.scratch[w] = G
        r.dDt[w] += q * r.a[w]
        r.dA_T[w] += q * r.dt[w]
        r.gTimesB[w] += G * bn
        r.carry[w] = r.dA[w] * G
    }
    return (ScanMath.dot(r.dyGated, r.xCur, count: width), ScanMath.dot(r.scratch, r.dtu, count: width))
}

@inline(__always)
private func reverseStateIndexFloat(_ r: ReverseStepRows<Float>, width: Int, bn: Float, cn: Float, shift: Float) -> (Float, Float) {
    typealias V = SIMD16<Float>
    @inline(__always) func load(_ p: UnsafePointer<Float>, _ w: Int) -> V {
        UnsafeRawPointer(p + w).loadUnaligned(as: V.self)
    }
    @inline(__always) func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ w: Int) {
        UnsafeMutableRawPointer(p + w).storeBytes(of: v, as: V.self)
    }
    var sumC = V(), sumB = V()
    var w = 0
    while w + 16 <= width {
        let dyg = load(r.dyGated, w), dA = load(r.dA, w)
        let G = dyg * cn + load(r.carry, w)
        let q = G * load(r.xPrev, w) * (dA + shift)
        store(load(r.dDt, w) + q * load(r.a, w), r.dDt, w)
        store(load(r.dA_T, w) + q * load(r.dt, w), r.dA_T, w)
        store(load(r.gTimesB, w) + G * bn, r.gTimesB, w)
        store(dA * G, r.carry, w)
        sumC += dyg * load(r.xCur, w)
        sumB += G * load(r.dtu, w)
        w += 16
    }
    var (dC, dB) = (sumC.sum(), sumB.sum())
    while w < width {
        let G = r.dyGated[w] * cn + r.carry[w]
        let q = G * r.xPrev[w] * (r.dA[w] + shift)
        r.dDt[w] += q * r.a[w]
        r.dA_T[w] += q * r.dt[w]
        r.gTimesB[w] += G * bn
        r.carry[w] = r.dA[w] * G
        dC += r.dyGated[w] * r.xCur[w]
        dB += G * r.dtu[w]
        w += 1
    }
    return (dC, dB)
}
