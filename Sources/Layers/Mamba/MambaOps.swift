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
/// Backward: dc = du silu'(c), silu'(c) = s (1 + c (1 - s)) with s = sigmoid(c) (c is recomputed, not stored);
/// dx[s] = sum_j w[e, j] dc[s + k-1-j]; dw[e, j] = sum_{b,t} dc[b, t, e] x[b, t - (k-1) + j, e]; dbias = sum dc.
/// Work splits over channel blocks (each block owns its dw, dbias).
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
    let (xData, wData, bData) = (x.data, weight.data, bias.data)
    var out = uninitializedScalars(T.self, count: x.count)  // [B, L, E]
    withBaseAddresses([xData, wData, bData]) { p in
        out.withUnsafeMutableBufferPointer { op in
            let y = op.baseAddress!
            Parallel.forEach(blocks) { blk in
                let e0 = blk * block, width = min(block, channels - e0)
                let scratch = UnsafeMutablePointer<T>.allocate(capacity: (k + 1) * width)  // taps [k, W], c [W]
                defer { scratch.deallocate() }
                let (taps, c) = (scratch, scratch + k * width)
                gatherTaps(p[1]!, channel0: e0, width: width, k: k, into: taps)
                for b in 0..<batch {
                    for t in 0..<length {
                        preActivation(p[0]!, p[2]!, taps, b: b, t: t, length: length, channels: channels, channel0: e0,
                                      width: width, k: k, into: c)
                        let row = y + (b * length + t) * channels + e0
                        for e in 0..<width { row[e] = c[e] * ScanMath.sigmoid(c[e]) }
                    }
                }
            }
        }
    }
    let result = Tensor(shape: x.shape, data: out)
    Tape.record("causal_conv_silu", inputs: [x, weight, bias], output: result) { dy in
        var dx = [T](repeating: 0, count: xData.count), dw = [T](repeating: 0, count: wData.count)
        var dBias = [T](repeating: 0, count: channels)
        withBaseAddresses([xData, wData, bData, dy]) { p in
            let (xs, g) = (p[0]!, p[3]!)
            dx.withUnsafeMutableBufferPointer { dxp in
                dw.withUnsafeMutableBufferPointer { dwp in
                    dBias.withUnsafeMutableBufferPointer { dbp in
                        let (dxs, dws, dbs) = (dxp.baseAddress!, dwp.baseAddress!, dbp.baseAddress!)
                        Parallel.forEach(blocks) { blk in
                            let e0 = blk * block, width = min(block, channels - e0)
                            // taps [k, W], their gradients [k, W], c and dc for the current row [W] each
                            let scratch = UnsafeMutablePointer<T>.allocate(capacity: (2 * k + 2) * width)
                            defer { scratch.deallocate() }
                            scratch.initialize(repeating: 0, count: (2 * k + 2) * width)
                            let (taps, dTaps) = (scratch, scratch + k * width)
                            let (c, dc) = (scratch + 2 * k * width, scratch + (2 * k + 1) * width)
                            gatherTaps(p[1]!, channel0: e0, width: width, k: k, into: taps)
                            let dBias = dbs + e0
                            for b in 0..<batch {
                                for t in 0..<length {
                                    preActivation(xs, p[2]!, taps, b: b, t: t, length: length, channels: channels,
                                                  channel0: e0, width: width, k: k, into: c)
                                    let gRow = g + (b * length + t) * channels + e0
                                    for e in 0..<width {
                                        let s = ScanMath.sigmoid(c[e])
                                        dc[e] = gRow[e] * s * (1 + c[e] * (1 - s))
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

/// taps[j, e] = w[channel0 + e, j]: the kernel of a channel block, tap-major ([k, W]).
@inline(__always)
private func gatherTaps<T>(_ w: UnsafePointer<T>, channel0: Int, width: Int, k: Int, into taps: UnsafeMutablePointer<T>) {
    for j in 0..<k { for e in 0..<width { taps[j * width + e] = w[(channel0 + e) * k + j] } }
}

/// c[e] = bias[e] + sum_j taps[j, e] x[b, t - (k-1) + j, e] over one channel block (taps before t = 0 skipped).
@inline(__always)
private func preActivation<T: TensorScalar>(
    _ x: UnsafePointer<T>, _ bias: UnsafePointer<T>, _ taps: UnsafePointer<T>, b: Int, t: Int, length: Int,
    channels: Int, channel0: Int, width: Int, k: Int, into c: UnsafeMutablePointer<T>
) {
    let biasBlock = bias + channel0  // (no index arithmetic in the inner loops: it would carry overflow checks)
    for e in 0..<width { c[e] = biasBlock[e] }
    for j in max(0, k - 1 - t)..<k {
        let (src, tap) = (x + (b * length + t - (k - 1) + j) * channels + channel0, taps + j * width)
        for e in 0..<width { c[e] += tap[e] * src[e] }
    }
}

/// An array of `count` scalars whose contents are left undefined: for outputs that a kernel overwrites entirely.
@inline(__always)
func uninitializedScalars<T: TensorScalar>(_: T.Type, count: Int) -> [T] {
    [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}
