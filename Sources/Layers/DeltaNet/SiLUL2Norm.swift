import Tensors

extension Tensor {
    /// y = silu(x) / sqrt(sum_last y^2 + eps) over the last axis (fla's q / k path after the short convolution:
    /// SiLU, then L2 normalisation), as one tape node. Backward per row with n = (sum y^2 + eps)^-1/2, o = y n:
    ///     dy = n (do - o <o, do>),   dx = dy * sigmoid(x) (1 + x (1 - sigmoid(x))).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func siluL2Normalized(eps: T = 1e-6) -> Tensor {
        rowL2Normalized(silu: true, eps: eps)
    }

    /// y = x / sqrt(sum_last x^2 + eps) over the last axis (fla's `l2norm`), one tape node:
    ///     dx = n (do - y <y, do>),   n = (sum x^2 + eps)^-1/2.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func l2Normalized(eps: T = 1e-6) -> Tensor {
        rowL2Normalized(silu: false, eps: eps)
    }

    /// Row-wise L2 normalisation of x or of silu(x) (see `siluL2Normalized`, `l2Normalized`).
    @inline(__always)
    private func rowL2Normalized(silu: Bool, eps: T) -> Tensor {
        let width = shape.last ?? 1
        let rows = width == 0 ? 0 : count / width
        let x = data
        var out = [T](repeating: 0, count: count)
        var norms = [T](repeating: 0, count: rows)
        x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { op in norms.withUnsafeMutableBufferPointer { np in
            let (xb, ob, nb) = (xp.baseAddress!, op.baseAddress!, np.baseAddress!)
            Parallel.forEachRange(rows, minimumChunk: 1024) { range in
                for r in range {
                    let xr = xb + r * width, or = ob + r * width
                    var ss: T = 0
                    if silu {
                        for c in 0..<width { let v = xr[c] / (1 + T.exp(-xr[c])); or[c] = v; ss += v * v }
                    } else {
                        for c in 0..<width { let v = xr[c]; or[c] = v; ss += v * v }
                    }
                    let n = 1 / (ss + eps).squareRoot()
                    nb[r] = n
                    for c in 0..<width { or[c] *= n }
                }
            }
        }}}
        let y = Tensor(shape: shape, data: out)                               // same shape as x
        let saved = out
        Tape.record(silu ? "silu_l2_normalize" : "l2_normalize", inputs: [self], output: y) { dOut in
            var dx = [T](repeating: 0, count: x.count)
            x.withUnsafeBufferPointer { xp in saved.withUnsafeBufferPointer { op in norms.withUnsafeBufferPointer { np in
            dOut.withUnsafeBufferPointer { dp in dx.withUnsafeMutableBufferPointer { gp in
                let (xb, ob, nb, db, gb) = (xp.baseAddress!, op.baseAddress!, np.baseAddress!, dp.baseAddress!, gp.baseAddress!)
                Parallel.forEachRange(rows, minimumChunk: 1024) { range in
                    for r in range {
                        let xr = xb + r * width, or = ob + r * width, dr = db + r * width, gr = gb + r * width
                        var dot: T = 0
                        for c in 0..<width { dot += or[c] * dr[c] }
                        let n = nb[r]
                        if silu {
                            for c in 0..<width {
                                let s = 1 / (1 + T.exp(-xr[c]))
                                gr[c] = n * (dr[c] - or[c] * dot) * s * (1 + xr[c] * (1 - s))
                            }
                        } else {
                            for c in 0..<width { gr[c] = n * (dr[c] - or[c] * dot) }
                        }
                    }
                }
            }}}}}
            return [dx]
        }
        return y
    }
}
