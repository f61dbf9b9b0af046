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
    let gateBlock = max(1, 1024 / max(1, width))   // rows whose gates go through one vectorised sigmoid pass
    withBaseAddresses([oData, wData, zData ?? [0]]) { p in
        out.withUnsafeMutableBufferPointer { yp in inverse.withUnsafeMutableBufferPointer { rp in
            let (x, wt, gz, y, rs) = (p[0]!, p[1]!, p[2]!, yp.baseAddress!, rp.baseAddress!)
            Parallel.forEachRange(rows, minimumChunk: minimumRows) { range in
                let scratch = UnsafeMutablePointer<T>.allocate(capacity: 3 * gateBlock * width); defer { scratch.deallocate() }
                for i0 in stride(from: range.lowerBound, to: range.upperBound, by: gateBlock) {
                    let i1 = min(range.upperBound, i0 + gateBlock)
                    if hasGate {  // silu(z) for the block's rows at once (vectorised exp)
                        scratch.update(from: gz + i0 * width, count: (i1 - i0) * width)
                        siluRow(scratch, channels: (i1 - i0) * width, sigmoid: scratch + gateBlock * width,
                                expBuffer: scratch + 2 * gateBlock * width, writeDerivative: false)
                    }
                    for i in i0..<i1 {
                        let (xr, yr) = (x + i * width, y + i * width)
                        let r = 1 / (rowDot(xr, xr, width) / T(width) + eps).squareRoot()
                        rs[i] = r
                        if hasGate {
                            let sr = scratch + (i - i0) * width
                            for c in 0..<width { yr[c] = xr[c] * r * wt[c] * sr[c] }
                        } else {
                            for c in 0..<width { yr[c] = xr[c] * r * wt[c] }
                        }
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
                let scratch = UnsafeMutablePointer<T>.allocate(capacity: 3 * gateBlock * width); defer { scratch.deallocate() }
                let (silu, sig) = (scratch, scratch + gateBlock * width)
                let (lo, hi) = (blk * size, min(rows, (blk + 1) * size))
                for i0 in stride(from: lo, to: hi, by: gateBlock) {
                    let i1 = min(hi, i0 + gateBlock)
                    if hasGate {  // silu(z) and sigmoid(z) for the block's rows at once
                        silu.update(from: gz + i0 * width, count: (i1 - i0) * width)
                        siluRow(silu, channels: (i1 - i0) * width, sigmoid: sig, expBuffer: scratch + 2 * gateBlock * width,
                                writeDerivative: false)
                    }
                    for i in i0..<i1 {
                        let (xr, gr, dxr, r) = (x + i * width, g + i * width, dxs + i * width, rs[i])
                        if hasGate {
                            let (zr, dzr, sr, pr) = (gz + i * width, dzs! + i * width, silu + (i - i0) * width, sig + (i - i0) * width)
                            for c in 0..<width {
                                let n = xr[c] * r
                                dzr[c] = gr[c] * n * wt[c] * pr[c] * (1 + zr[c] * (1 - pr[c]))
                                dw[c] += gr[c] * n * sr[c]
                                dxr[c] = gr[c] * wt[c] * sr[c]
                            }
                        } else {
                            for c in 0..<width { dw[c] += gr[c] * xr[c] * r; dxr[c] = gr[c] * wt[c] }
                        }
                        let m = r * rowDot(dxr, xr, width) / T(width)   // mean(dn n)
                        for c in 0..<width { dxr[c] = r * (dxr[c] - xr[c] * r * m) }
                    }
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
