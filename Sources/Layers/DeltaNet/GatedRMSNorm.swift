import Tensors

/// fla's FusedRMSNormGated (the output norm of gated DeltaNet / DeltaProduct), one tape node over rows of the last
/// axis (width V): y = o r w * silu(z), r = (mean_V o^2 + eps)^-1/2; without a gate z, y = o r w (RMSNorm).
/// Backward per row with n = o r, a = w silu(z):  dn = dy a,  do = r (dn - n mean_V(dn n)),
/// dz = dy n w silu'(z) (silu'(z) = s (1 + z (1 - s)), s = sigmoid(z)),  dw = sum_rows dy n silu(z).
/// Rows split over the cores; dw is summed from per-block partials.
///
/// - Parameters: o [..., V]; gate z with o's element count (any shape, read row-major as o); weight w [V].
@_specialize(where T == Float)
@_specialize(where T == Double)
public func gatedRMSNorm<T: TensorScalar>(_ o: Tensor<T>, gate z: Tensor<T>?, weight w: Tensor<T>, eps: T = 1e-5) -> Tensor<T> {
    let width = o.shape.last ?? 0
    precondition(o.rank >= 1 && w.shape == [width], "gatedRMSNorm: weight \(w.shape) for input \(o.shape)")
    if let z { precondition(z.count == o.count, "gatedRMSNorm: gate \(z.shape) must have as many values as \(o.shape)") }
    let rows = width == 0 ? 0 : o.count / width
    let (oData, wData, zData) = (o.data, w.data, z?.data)
    let hasGate = z != nil
    var out = uninitializedScalars(T.self, count: o.count)            // same shape as o
    var inverse = uninitializedScalars(T.self, count: rows)            // r per row
    let minimumRows = max(1, 4096 / max(1, width))
    withBaseAddresses([oData, wData, zData ?? [0]]) { p in
        out.withUnsafeMutableBufferPointer { yp in inverse.withUnsafeMutableBufferPointer { rp in
            let (x, wt, gz, y, rs) = (p[0]!, p[1]!, p[2]!, yp.baseAddress!, rp.baseAddress!)
            Parallel.forEachRange(rows, minimumChunk: minimumRows) { range in
                for i in range {
                    let (xr, yr) = (x + i * width, y + i * width)
                    var ss: T = 0
                    for c in 0..<width { ss += xr[c] * xr[c] }
                    let r = 1 / (ss / T(width) + eps).squareRoot()
                    rs[i] = r
                    if hasGate {
                        let zr = gz + i * width
                        for c in 0..<width { yr[c] = xr[c] * r * wt[c] * zr[c] / (1 + T.exp(-zr[c])) }
                    } else {
                        for c in 0..<width { yr[c] = xr[c] * r * wt[c] }
                    }
                }
            }
        } }
    }
    let result = Tensor(shape: o.shape, data: out)
    let inputs = [o, w] + (z.map { [$0] } ?? [])
    Tape.record(hasGate ? "gated_rms_norm" : "rms_norm_rows", inputs: inputs, output: result) { dy in
        var dx = uninitializedScalars(T.self, count: oData.count)
        var dz = uninitializedScalars(T.self, count: hasGate ? oData.count : 0)
        let blocks = max(1, min(Parallel.threadCount * 4, rows / minimumRows))
        var partial = [T](repeating: 0, count: blocks * width)
        withBaseAddresses([oData, wData, zData ?? [0], dy]) { p in
        dx.withUnsafeMutableBufferPointer { dxp in dz.withUnsafeMutableBufferPointer { dzp in
        partial.withUnsafeMutableBufferPointer { pp in inverse.withUnsafeBufferPointer { rp in
            let (x, wt, gz, g, rs) = (p[0]!, p[1]!, p[2]!, p[3]!, rp.baseAddress!)
            let (dxs, dzs, parts) = (dxp.baseAddress!, dzp.baseAddress, pp.baseAddress!)
            let size = (rows + blocks - 1) / blocks
            Parallel.forEach(blocks) { blk in
                let dw = parts + blk * width
                for i in (blk * size)..<min(rows, (blk + 1) * size) {
                    let (xr, gr, dxr, r) = (x + i * width, g + i * width, dxs + i * width, rs[i])
                    var dot: T = 0
                    for c in 0..<width {
                        let n = xr[c] * r
                        var a = wt[c]
                        if hasGate {
                            let zc = gz[i * width + c], s = 1 / (1 + T.exp(-zc))
                            let silu = zc * s
                            dzs![i * width + c] = gr[c] * n * wt[c] * s * (1 + zc * (1 - s))
                            dw[c] += gr[c] * n * silu
                            a *= silu
                        } else {
                            dw[c] += gr[c] * n
                        }
                        let dn = gr[c] * a
                        dxr[c] = dn
                        dot += dn * n
                    }
                    let m = dot / T(width)
                    for c in 0..<width { dxr[c] = r * (dxr[c] - xr[c] * r * m) }
                }
            }
        } } } }
        }
        var dw = [T](repeating: 0, count: width)
        for blk in 0..<blocks { for c in 0..<width { dw[c] += partial[blk * width + c] } }
        return hasGate ? [dx, dw, dz] : [dx, dw]
    }
    return result
}
