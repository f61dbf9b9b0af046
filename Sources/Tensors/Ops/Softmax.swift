// Softmax, log-softmax and cross-entropy over the last axis, each one fused node.
//   softmax:      y = e^(x - max) / sum e^(x - max);        dx = y (dy - sum(dy y))
//   log-softmax:  y = x - max - log sum e^(x - max);        dx = dy - softmax(x) sum(dy)
//   cross-entropy: loss = sum_i w_i (-log p_i[t_i]) / sum_i w_i over rows i whose target is not ignored.

extension Tensor {
    private var rowsAndWidth: (rows: Int, width: Int) {
        precondition(rank >= 1, "softmax: needs rank >= 1, got shape \(shape)")
        let w = shape[rank - 1]
        return (w == 0 ? 0 : count / w, w)
    }

    /// Softmax over the last axis.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func softmax() -> Tensor {
        let (rows, w) = rowsAndWidth
        var out = data
        for r in 0..<rows { softmaxRow(&out, r * w, w) }
        let result = Tensor(shape: shape, data: out)
        Tape.record("softmax", inputs: [self], output: result) { dy in
            var dx = dy
            for r in 0..<rows {
                var dot: T = 0
                for j in 0..<w { dot += dy[r * w + j] * out[r * w + j] }
                for j in 0..<w { dx[r * w + j] = out[r * w + j] * (dy[r * w + j] - dot) }
            }
            return [dx]
        }
        return result
    }

    /// Log-softmax over the last axis.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func logSoftmax() -> Tensor {
        let (rows, w) = rowsAndWidth
        var out = data
        for r in 0..<rows {
            let lse = logSumExpRow(data, r * w, w)
            for j in 0..<w { out[r * w + j] = data[r * w + j] - lse }
        }
        let result = Tensor(shape: shape, data: out)
        Tape.record("log_softmax", inputs: [self], output: result) { dy in
            var dx = dy
            for r in 0..<rows {
                var total: T = 0
                for j in 0..<w { total += dy[r * w + j] }
                for j in 0..<w { dx[r * w + j] = dy[r * w + j] - T.exp(out[r * w + j]) * total }
            }
            return [dx]
        }
        return result
    }

    /// Mean cross-entropy of logits [..., C] against class targets (one per row, row-major over the leading axes).
    /// Rows whose target equals `ignoreIndex` are skipped; `weights` (one per row) weight each row's loss.
    /// Returns a scalar: sum_i w_i (-log softmax(x_i)[t_i]) / sum_i w_i (0 if no row counts).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func crossEntropy(targets: [Int], ignoreIndex: Int? = -100, weights: [T]? = nil) -> Tensor {
        let (rows, classes) = rowsAndWidth
        precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for logits of shape \(shape) (\(rows) rows)")
        if let weights { precondition(weights.count == rows, "crossEntropy: \(weights.count) weights for \(rows) rows") }
        var probabilities = [T](repeating: 0, count: count)
        var total: T = 0, weightSum: T = 0
        for r in 0..<rows {
            let t = targets[r]
            if t == ignoreIndex { continue }
            precondition(t >= 0 && t < classes, "crossEntropy: target \(t) at row \(r) is outside 0..<\(classes)")
            let lse = logSumExpRow(data, r * classes, classes)
            let w = weights?[r] ?? 1
            total += w * (lse - data[r * classes + t])
            weightSum += w
            for j in 0..<classes { probabilities[r * classes + j] = T.exp(data[r * classes + j] - lse) }
        }
        let norm: T = weightSum > 0 ? 1 / weightSum : 0
        let result = Tensor(shape: [], data: [total * norm])
        Tape.record("cross_entropy", inputs: [self], output: result) { dy in
            var dx = [T](repeating: 0, count: rows * classes)
            for r in 0..<rows where targets[r] != ignoreIndex {
                let scale = dy[0] * norm * (weights?[r] ?? 1)
                for j in 0..<classes { dx[r * classes + j] = scale * probabilities[r * classes + j] }
                dx[r * classes + targets[r]] -= scale
            }
            return [dx]
        }
        return result
    }
}

/// In place: row [start, start + width) of `x` becomes its softmax.
@inline(__always)
func softmaxRow<T: TensorScalar>(_ x: inout [T], _ start: Int, _ width: Int) {
    var m = -T.infinity
    for j in 0..<width { m = max(m, x[start + j]) }
    if m == -T.infinity { m = 0 }
    var s: T = 0
    for j in 0..<width {
        let e = T.exp(x[start + j] - m)
        x[start + j] = e
        s += e
    }
    let inv = s > 0 ? 1 / s : 0
    for j in 0..<width { x[start + j] *= inv }
}

/// log sum_j e^(x[start + j]) over `width` entries, stable.
@inline(__always)
func logSumExpRow<T: TensorScalar>(_ x: [T], _ start: Int, _ width: Int) -> T {
    var m = -T.infinity
    for j in 0..<width { m = max(m, x[start + j]) }
    if m == -T.infinity { return m }
    var s: T = 0
    for j in 0..<width { s += T.exp(x[start + j] - m) }
    return m + T.log(s)
}
