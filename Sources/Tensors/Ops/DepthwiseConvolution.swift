// Causal depthwise 1-D convolution (Mamba's and GLA's short convolution, GAM's local mixer):
//   y[b, t, d] = bias[d] + sum_{j < k} w[d, j] x[b, t - (k - 1) + j, d]      (x = 0 before t = 0)
// which is PyTorch's Conv1d(groups = D, padding = k - 1) truncated to the first L outputs. Layout [B, L, D]:
// the loop over d is contiguous and vectorises.
//   dx[b, s, d] = sum_j w[d, j] dy[b, s + (k - 1) - j, d];  dw[d, j] = sum_{b,t} dy[b,t,d] x[b, t-(k-1)+j, d].

/// The number of taps k of a depthwise convolution weight for `channels` channels: PyTorch's `nn.Conv1d(groups = C)`
/// layout [C, 1, k] (what layers store, so that the weight is the reference's state_dict tensor) or the plain [C, k]
/// (the same values in the same order); nil for any other shape.
public func depthwiseTaps<T>(_ weight: Tensor<T>, channels: Int) -> Int? {
    switch weight.shape.count {
    case 2 where weight.shape[0] == channels: return weight.shape[1]
    case 3 where weight.shape[0] == channels && weight.shape[1] == 1: return weight.shape[2]
    default: return nil
    }
}

extension Tensor {
    /// Causal depthwise convolution of this [B, L, D] input with `weight` [D, 1, k] (or [D, k]) and optional `bias` [D].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func causalDepthwiseConv1d(weight: Tensor, bias: Tensor? = nil) -> Tensor {
        precondition(rank == 3, "causalDepthwiseConv1d: input must be [B, L, D], got \(shape)")
        let (batch, length, channels) = (shape[0], shape[1], shape[2])
        guard let k = depthwiseTaps(weight, channels: channels) else {
            preconditionFailure("causalDepthwiseConv1d: weight \(weight.shape) for input \(shape) (needs [\(channels), 1, k])")
        }
        if let bias { precondition(bias.shape == [channels], "causalDepthwiseConv1d: bias \(bias.shape) for \(channels) channels") }
        let wT = transposedKernel(weight.data, channels: channels, k: k)  // [k, D]: tap-major, channels contiguous
        var out = [T](repeating: 0, count: count)
        let x = data
        let biasData = bias?.data ?? [T](repeating: 0, count: channels)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                let (xBase, yBase) = (xp.baseAddress!, op.baseAddress!)
                Parallel.forEach(batch) { b in
                    let xb = xBase + b * length * channels
                    for t in 0..<length {
                        let row = yBase + (b * length + t) * channels
                        for d in 0..<channels { row[d] = biasData[d] }
                        for j in 0..<k where t - (k - 1) + j >= 0 {
                            let src = xb + (t - (k - 1) + j) * channels
                            for d in 0..<channels { row[d] += wT[j * channels + d] * src[d] }
                        }
                    }
                }
            }
        }
        let result = Tensor(shape: shape, data: out)
        var inputs = [self, weight]
        if let bias { inputs.append(bias) }
        let hasBias = bias != nil
        Tape.record("causal_depthwise_conv1d", inputs: inputs, output: result) { dy in
            var dx = [T](repeating: 0, count: x.count)
            var dwT = [T](repeating: 0, count: k * channels)
            var dBias = [T](repeating: 0, count: channels)
            for b in 0..<batch {
                let base = b * length * channels
                for t in 0..<length {
                    let g = base + t * channels
                    for d in 0..<channels { dBias[d] += dy[g + d] }
                    for j in 0..<k {
                        let s = t - (k - 1) + j
                        if s < 0 { continue }
                        let src = base + s * channels
                        for d in 0..<channels {
                            dx[src + d] += wT[j * channels + d] * dy[g + d]
                            dwT[j * channels + d] += x[src + d] * dy[g + d]
                        }
                    }
                }
            }
            var grads: [[T]?] = [dx, transposedKernel(dwT, channels: k, k: channels)]
            if hasBias { grads.append(dBias) }
            return grads
        }
        return result
    }
}

/// [rows, cols] -> [cols, rows].
private func transposedKernel<T>(_ w: [T], channels rows: Int, k cols: Int) -> [T] {
    var out = w
    for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = w[r * cols + c] } }
    return out
}
