import CKernels
import Tensors

// The two inner steps of the selective scan over one block of W channels. Float runs the CKernels vector kernels
// (the instruction set chosen at run time; the reverse step folds the two channel sums, dCs and dBs, into the sweep);
// Double (gradient checks) runs the generic loops below with exact libm functions.

/// The rows of one forward step t over a block ([N, W] states, [W] per-token rows).
struct ForwardStepRows<T> {
    /// x_{t-1} [N, W] in, x_t [N, W] out.
    let prev: UnsafePointer<T>
    let next: UnsafeMutablePointer<T>
    /// dA_t [N, W] out, when the backward pass needs it.
    let transitions: UnsafeMutablePointer<T>?
    /// A^T [N, W], dt_t and dt_t u_t [W], Bs_t and Cs_t [N].
    let aT, dt, dtu, bRow, cRow: UnsafePointer<T>
    /// y accumulator [W]: y += sum_n x_t[n] Cs_t[n].
    let y: UnsafeMutablePointer<T>
}

/// One step of the recurrence over a block: x_t[n, w] = dA x_{t-1}[n, w] + dtu[w] Bs[n], y[w] += x_t[n, w] Cs[n],
/// dA = scale exp(dt[w] A^T[n, w]) - shift (stored in `transitions` when given).
@inline(__always)
func advanceState<T: TensorScalar>(_ r: ForwardStepRows<T>, stateSize: Int, width: Int, modes: ScanModes) {
    let (scale, shift) = (T(modes.scale), T(modes.shift))
    if T.self == Float.self {
        let f = unsafeBitCast(r, to: ForwardStepRows<Float>.self)
        sl_scan_forward_rows_f32(stateSize, width, f.prev, f.next, f.transitions, f.aT, f.dt, f.dtu, f.bRow, f.cRow, f.y,
                                 Float(modes.scale), Float(modes.shift))
        return
    }
    for n in 0..<stateSize {
        let (bn, cn) = (r.bRow[n], r.cRow[n])
        let (a, p, q) = (r.aT + n * width, r.prev + n * width, r.next + n * width)
        if let stored = r.transitions.map({ $0 + n * width }) {  // two loops: no branch inside either
            for w in 0..<width {
                let dA = scale * ScanMath.exp(r.dt[w] * a[w]) - shift
                let x = dA * p[w] + r.dtu[w] * bn
                stored[w] = dA
                q[w] = x
                r.y[w] += x * cn
            }
        } else {
            for w in 0..<width {
                let dA = scale * ScanMath.exp(r.dt[w] * a[w]) - shift
                let x = dA * p[w] + r.dtu[w] * bn
                q[w] = x
                r.y[w] += x * cn
            }
        }
    }
}

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
    var sums: (Float, Float) = (0, 0)
    withUnsafeMutableBytes(of: &sums) { raw in
        sl_scan_reverse_index_f32(width, r.dyGated, r.xPrev, r.xCur, r.dA, r.a, r.dt, r.dtu, r.carry, r.dDt, r.dA_T,
                                  r.gTimesB, bn, cn, shift, raw.baseAddress!.assumingMemoryBound(to: Float.self))
    }
    return sums
}
