import Tensors

// Two fused nodes of the Mamba block besides the scan, specialised for Float and Double so that they run at full
// speed when the block is called through `any SequenceLayer` (generic code would look up type metadata per element):
// - splitting the last axis of a projection ([x, z] = in_proj(input), [dt, Bs, Cs] = x_proj(u)) into contiguous
//   tensors, one node with several outputs;
// - the short causal depthwise convolution followed by SiLU, u = silu(conv_k(x) + bias).

/// Splits the last axis of x [..., S] into contiguous pieces [..., s_i] with sum s_i = S (one tape node).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func splitLastAxis<T: TensorScalar>(_ x: Tensor<T>, sizes: [Int]) -> [Tensor<T>] {
    let width = x.shape.last ?? 0
    precondition(x.rank >= 1 && sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == width,
                 "splitLastAxis: sizes \(sizes) do not add up to the last axis of \(x.shape)")
    let rows = width == 0 ? 0 : x.count / width
    var offsets = [Int](), start = 0
    for s in sizes { offsets.append(start); start += s }
    let pieces: [[T]] = zip(sizes, offsets).map { size, offset in
        var out = [T](repeating: 0, count: rows * size)
        x.data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    let (from, to) = (src.baseAddress! + r * width + offset, dst.baseAddress! + r * size)
                    for j in 0..<size { to[j] = from[j] }
                }
            }
        }
        return out
    }
    let lead = Array(x.shape.dropLast())
    let outputs = zip(sizes, pieces).map { Tensor(shape: lead + [$0], data: $1) }
    Tape.record("split_last_axis", inputs: [x], outputs: outputs) { grads in
        var dx = [T](repeating: 0, count: rows * width)
        dx.withUnsafeMutableBufferPointer { dst in
            for (k, g) in grads.enumerated() {
                guard let g else { continue }
                let (size, offset) = (sizes[k], offsets[k])
                g.withUnsafeBufferPointer { src in
                    for r in 0..<rows {
                        let (from, to) = (src.baseAddress! + r * size, dst.baseAddress! + r * width + offset)
                        for j in 0..<size { to[j] = from[j] }
                    }
                }
            }
        }
        return [dx]
    }
    return outputs
}

/// u = silu(c), c[b, t, e] = bias[e] + sum_{j < k} w[e, j] x[b, t - (k - 1) + j, e] (x = 0 before t = 0): Mamba's
/// short convolution (PyTorch Conv1d(groups = E, padding = k - 1) truncated to L) and its SiLU, one tape node.
/// Backward: dc = du silu'(c), silu'(c) = s (1 + c (1 - s)) with s = sigmoid(c); dx[s] = sum_j w[e, j] dc[s + k-1-j];
/// dw[e, j] = sum_{b,t} dc[b, t, e] x[b, t - (k-1) + j, e]; dbias = sum dc. Work splits over channel blocks.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func causalConvolutionSiLU<T: TensorScalar>(_ x: Tensor<T>, weight: Tensor<T>, bias: Tensor<T>) -> Tensor<T> {
    precondition(x.rank == 3, "causalConvolutionSiLU: x must be [B, L, E], got \(x.shape)")
    let (batch, length, channels) = (x.shape[0], x.shape[1], x.shape[2])
    precondition(weight.rank == 2 && weight.shape[0] == channels && bias.shape == [channels],
                 "causalConvolutionSiLU: weight \(weight.shape), bias \(bias.shape) for x \(x.shape)")
    guard x.count > 0 else { return x.causalDepthwiseConv1d(weight: weight, bias: bias).silu() }
    let k = weight.shape[1]
    let block = 64, blocks = (channels + block - 1) / block
    let recording = Tape.needsGrad([x, weight, bias])
    let (xData, wData, bData) = (x.data, weight.data, bias.data)
    var out = [T](repeating: 0, count: x.count)                              // [B, L, E]
    var preActivation = [T](repeating: 0, count: recording ? x.count : 0)   // c, kept for backward
    withBaseAddresses([xData, wData, bData]) { p in
        let (xs, w, bs) = (p[0]!, p[1]!, p[2]!)
        out.withUnsafeMutableBufferPointer { op in
            preActivation.withUnsafeMutableBufferPointer { cp in
                let (y, c) = (op.baseAddress!, recording ? cp.baseAddress : nil)
                Parallel.forEach(blocks) { blk in
                    let e0 = blk * block, width = min(block, channels - e0)
                    let taps = UnsafeMutablePointer<T>.allocate(capacity: k * width)  // [k, W]
                    defer { taps.deallocate() }
                    for j in 0..<k { for e in 0..<width { taps[j * width + e] = w[(e0 + e) * k + j] } }
                    let acc = UnsafeMutablePointer<T>.allocate(capacity: width)
                    defer { acc.deallocate() }
                    let biasBlock = bs + e0  // (no index arithmetic in the inner loops: it would carry overflow checks)
                    for b in 0..<batch {
                        for t in 0..<length {
                            for e in 0..<width { acc[e] = biasBlock[e] }
                            for j in max(0, k - 1 - t)..<k {
                                let src = xs + (b * length + t - (k - 1) + j) * channels + e0, tap = taps + j * width
                                for e in 0..<width { acc[e] += tap[e] * src[e] }
                            }
                            let row = (b * length + t) * channels + e0
                            if let c = c.map({ $0 + row }) { for e in 0..<width { c[e] = acc[e] } }
                            let out = y + row
                            for e in 0..<width { out[e] = acc[e] * ScanMath.sigmoid(acc[e]) }
                        }
                    }
                }
            }
        }
    }
    let result = Tensor(shape: x.shape, data: out)
    guard recording else { return result }
    Tape.record("causal_conv_silu", inputs: [x, weight, bias], output: result) { dy in
        var dx = [T](repeating: 0, count: xData.count), dw = [T](repeating: 0, count: wData.count)
        var dBias = [T](repeating: 0, count: channels)
        withBaseAddresses([xData, wData, preActivation, dy]) { p in
            let (xs, w, c, g) = (p[0]!, p[1]!, p[2]!, p[3]!)
            dx.withUnsafeMutableBufferPointer { dxp in
                dw.withUnsafeMutableBufferPointer { dwp in
                    dBias.withUnsafeMutableBufferPointer { dbp in
                        let (dxs, dws, dbs) = (dxp.baseAddress!, dwp.baseAddress!, dbp.baseAddress!)
                        Parallel.forEach(blocks) { blk in
                            let e0 = blk * block, width = min(block, channels - e0)
                            // taps [k, W], their gradients [k, W], dc for the current row [W]
                            let scratch = UnsafeMutablePointer<T>.allocate(capacity: (2 * k + 1) * width)
                            defer { scratch.deallocate() }
                            scratch.initialize(repeating: 0, count: (2 * k + 1) * width)
                            let (taps, dTaps, dc) = (scratch, scratch + k * width, scratch + 2 * k * width)
                            for j in 0..<k { for e in 0..<width { taps[j * width + e] = w[(e0 + e) * k + j] } }
                            for b in 0..<batch {
                                for t in 0..<length {
                                    let row = (b * length + t) * channels + e0
                                    let (cRow, gRow, dBias) = (c + row, g + row, dbs + e0)
                                    for e in 0..<width {
                                        let (ce, s) = (cRow[e], ScanMath.sigmoid(cRow[e]))
                                        dc[e] = gRow[e] * s * (1 + ce * (1 - s))
                                    }
                                    for e in 0..<width { dBias[e] += dc[e] }
                                    for j in max(0, k - 1 - t)..<k {
                                        let src = (b * length + t - (k - 1) + j) * channels + e0
                                        let (tap, dTap, xRow, dxRow) = (taps + j * width, dTaps + j * width, xs + src, dxs + src)
                                        for e in 0..<width { dxRow[e] += tap[e] * dc[e] }
                                        for e in 0..<width { dTap[e] += xRow[e] * dc[e] }
                                    }
                                }
                            }
                            for j in 0..<k { for e in 0..<width { dws[(e0 + e) * k + j] = dTaps[j * width + e] } }
                        }
                    }
                }
            }
        }
        return [dx, dw, dBias]
    }
    return result
}
