import Tensors

/// y = silu(c), c[b, t, e] = bias[e] + sum_{j < k} w[e, j] x[b, t - (k - 1) + j, e] (x = 0 before t = 0): the short
/// causal depthwise convolution with its SiLU as one tape node, for fla's ShortConvolution (DeltaNet, DeltaProduct,
/// GLA: no bias) and Mamba's conv1d (PyTorch Conv1d(groups = E, padding = k - 1) truncated to L, with bias); the same
/// map as `x.causalDepthwiseConv1d(weight: w, bias: bias).silu()`. Rows (b, t) are independent, so the work splits over row ranges with
/// every channel loop contiguous and the sigmoids' exponentials vectorised (`VectorMath.exponentiate` of -|c|).
/// Backward (c recomputed): dc = dy s (1 + c (1 - s)), s = sigmoid(c); dx[t] = sum_j w[e, j] dc[t + k-1-j] (a gather,
/// so row ranges never collide); dw[e, j] = sum_{b,t} dc[b, t, e] x[b, t - (k-1) + j, e] and dbias = sum_{b,t} dc
/// (per-range partial sums).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func shortConvolutionSiLU<T: TensorScalar>(_ x: Tensor<T>, weight: Tensor<T>, bias: Tensor<T>? = nil) -> Tensor<T> {
    precondition(x.rank == 3, "shortConvolutionSiLU: x must be [B, L, E], got \(x.shape)")
    let (batch, length, channels) = (x.shape[0], x.shape[1], x.shape[2])
    guard let k = depthwiseTaps(weight, channels: channels), k >= 1 else {
        preconditionFailure("shortConvolutionSiLU: weight \(weight.shape) must be [E, 1, k] for x \(x.shape)")
    }
    precondition(bias.map { $0.shape == [channels] } ?? true, "shortConvolutionSiLU: bias \(bias!.shape) for \(channels) channels")
    let rows = batch * length
    guard x.count > 0 else { return x.causalDepthwiseConv1d(weight: weight, bias: bias).silu() }
    let xData = x.data
    let weightData = weight.data
    let biasData = bias?.data ?? [T](repeating: 0, count: channels)
    var taps = [T](repeating: 0, count: k * channels)        // [k, E]: tap-major copy of the weight
    for e in 0..<channels { for j in 0..<k { taps[j * channels + e] = weightData[e * k + j] } }
    var out = uninitializedScalars(T.self, count: x.count)  // [B, L, E]
    let minimumRows = max(1, 16_384 / channels)
    withBaseAddresses([xData, taps, biasData]) { p in out.withUnsafeMutableBufferPointer { op in
        let (xs, w, b, y) = (p[0]!, p[1]!, p[2]!, op.baseAddress!)
        Parallel.forEachRange(rows, minimumChunk: minimumRows) { range in
            let scratch = UnsafeMutablePointer<T>.allocate(capacity: 2 * channels); defer { scratch.deallocate() }
            for i in range {
                let row = y + i * channels
                convolveRow(xs, w, b, row: i, t: i % length, channels: channels, k: k, into: row)
                siluRow(row, channels: channels, sigmoid: scratch, expBuffer: scratch + channels, writeDerivative: false)
            }
        }
    } }
    let result = Tensor(shape: x.shape, data: out)          // [B, L, E]
    Tape.record("short_conv_silu", inputs: [x, weight] + (bias.map { [$0] } ?? []), output: result) { dy in
        // dc [B, L, E], recomputing c.
        var dc = uninitializedScalars(T.self, count: xData.count)
        let blocks = max(1, min(Parallel.threadCount * 4, rows / minimumRows))
        var partial = [T](repeating: 0, count: blocks * (k + 1) * channels)   // per-block dw [k, E] and dbias [E]
        var dx = uninitializedScalars(T.self, count: xData.count)
        withBaseAddresses([xData, taps, biasData, dy]) { p in
        dc.withUnsafeMutableBufferPointer { cp in partial.withUnsafeMutableBufferPointer { pp in dx.withUnsafeMutableBufferPointer { dxp in
            let (xs, w, b, g, dcs, parts, dxs) = (p[0]!, p[1]!, p[2]!, p[3]!, cp.baseAddress!, pp.baseAddress!, dxp.baseAddress!)
            let size = (rows + blocks - 1) / blocks
            Parallel.forEach(blocks) { blk in
                let lo = blk * size, hi = min(rows, lo + size)
                guard lo < hi else { return }
                let scratch = UnsafeMutablePointer<T>.allocate(capacity: 2 * channels); defer { scratch.deallocate() }
                let dw = parts + blk * (k + 1) * channels, dBias = dw + k * channels
                for i in lo..<hi {
                    let t = i % length, c = dcs + i * channels, gRow = g + i * channels
                    convolveRow(xs, w, b, row: i, t: t, channels: channels, k: k, into: c)
                    siluRow(c, channels: channels, sigmoid: scratch, expBuffer: scratch + channels, writeDerivative: true)
                    for e in 0..<channels { c[e] *= gRow[e] }
                    for e in 0..<channels { dBias[e] += c[e] }
                    for j in max(0, k - 1 - t)..<k {
                        multiplyAccumulate(dw + j * channels, xs + (i - (k - 1) + j) * channels, c, channels)
                    }
                }
            }
            // dx[t] = sum_j w_j dc[t + k - 1 - j] within the same sequence.
            Parallel.forEachRange(rows, minimumChunk: minimumRows) { range in
                for i in range {
                    let t = i % length, row = dxs + i * channels
                    for e in 0..<channels { row[e] = 0 }
                    for j in 0..<k where t + k - 1 - j < length {
                        multiplyAccumulate(row, w + j * channels, dcs + (i + k - 1 - j) * channels, channels)
                    }
                }
            }
        } } }
        }
        var dw = [T](repeating: 0, count: weightData.count)               // [E, k]
        var dBias = [T](repeating: 0, count: channels)
        for blk in 0..<blocks {
            let part = blk * (k + 1) * channels
            for j in 0..<k { for e in 0..<channels { dw[e * k + j] += partial[part + j * channels + e] } }
            for e in 0..<channels { dBias[e] += partial[part + k * channels + e] }
        }
        return bias == nil ? [dx, dw] : [dx, dw, dBias]
    }
    return result
}

/// c[e] = bias[e] + sum_j taps[j, e] x[row - (k - 1) + j, e] over the taps that fall inside the sequence (t = the
/// row's position).
@inline(__always)
private func convolveRow<T: TensorScalar>(_ x: UnsafePointer<T>, _ taps: UnsafePointer<T>, _ bias: UnsafePointer<T>, row i: Int, t: Int,
                                          channels: Int, k: Int, into c: UnsafeMutablePointer<T>) {
    for e in 0..<channels { c[e] = bias[e] }
    for j in max(0, k - 1 - t)..<k {
        multiplyAccumulate(c, taps + j * channels, x + (i - (k - 1) + j) * channels, channels)
    }
}

/// In place over one row: c <- silu(c) = c s, or (writeDerivative) c <- silu'(c) = s (1 + c (1 - s)), with
/// s = sigmoid(c) from e^{-|c|} (vectorised exp, never overflows); s is left in `sigmoid`.
@inline(__always)
func siluRow<T: TensorScalar>(_ c: UnsafeMutablePointer<T>, channels: Int, sigmoid s: UnsafeMutablePointer<T>,
                                      expBuffer p: UnsafeMutablePointer<T>, writeDerivative: Bool) {
    for e in 0..<channels { p[e] = -Swift.abs(c[e]) }
    _ = VectorMath.exponentiate(p, count: channels, minus: 0)
    for e in 0..<channels {
        let r = 1 / (1 + p[e])
        s[e] = c[e] >= 0 ? r : p[e] * r
    }
    if writeDerivative {
        for e in 0..<channels { c[e] = s[e] * (1 + c[e] * (1 - s[e])) }
    } else {
        for e in 0..<channels { c[e] *= s[e] }
    }
}
