import Tensors

/// A block-diagonal linear map over the last axis, in xLSTM's `LinearHeadwiseExpand` layout (Beck et al. 2024, the
/// mLSTM's q/k/v projections): the width splits into `blocks` groups of `inputs` channels, each mapped by its own
/// matrix, weight W [blocks, outputs, inputs], bias [blocks * outputs]:
///     y[..., h, o] = sum_d x[..., h, d] W[h, o, d] + b[h * outputs + o]
/// (xlstm's einsum "...hd,hod->...ho"). One tape node: rows in parallel, dx[h, d] = sum_o dy[h, o] W[h, o, d],
/// dW[h, o, d] = sum_rows dy[h, o] x[h, d] (per-range partial sums), db = sum_rows dy.
/// Init (`normalStd`): W ~ N(0, std^2), b = 0, as xlstm's layer initialises its projections (small init).
public final class HeadwiseLinear<T: TensorScalar> {
    /// [blocks, outputs, inputs].
    public let weight: Tensor<T>
    /// [blocks * outputs], or nil.
    public let bias: Tensor<T>?
    public var blocks: Int { weight.shape[0] }
    public var blockOutputs: Int { weight.shape[1] }
    public var blockInputs: Int { weight.shape[2] }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(blocks: Int, blockInputs: Int, blockOutputs: Int, bias hasBias: Bool, normalStd std: Double, rng: inout RandomGenerator) {
        weight = Tensor.randn([blocks, blockOutputs, blockInputs], std: T(std), using: &rng, requiresGrad: true)
        bias = hasBias ? Tensor.zeros([blocks * blockOutputs], requiresGrad: true) : nil
    }

    /// x [..., blocks * inputs] -> [..., blocks * outputs].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        let y = headwiseProduct(x, weight: weight)
        return bias.map { y + $0 } ?? y
    }

    /// "weight" and "bias", prefixed with `name`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func parameters(_ name: String) -> [NamedParameter<T>] {
        [NamedParameter("\(name).weight", weight)] + (bias.map { [NamedParameter("\(name).bias", $0)] } ?? [])
    }

    /// 2 (blocks * outputs * inputs) FLOPs per row.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func work(rows: Int, blocks: Int, inputs: Int, outputs: Int) -> LayerWork {
        LayerWork(elementwise: 2 * Double(rows) * Double(blocks * inputs * outputs))
    }
}

/// y[..., h, o] = sum_d x[..., h, d] W[h, o, d] for W [blocks, outputs, inputs] (one tape node; see `HeadwiseLinear`).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func headwiseProduct<T: TensorScalar>(_ x: Tensor<T>, weight: Tensor<T>) -> Tensor<T> {
    precondition(weight.rank == 3, "headwise linear: weight must be [blocks, outputs, inputs], got \(weight.shape)")
    let (nb, no, ni) = (weight.shape[0], weight.shape[1], weight.shape[2])
    precondition(x.rank >= 1 && x.shape[x.rank - 1] == nb * ni,
                 "headwise linear: input \(x.shape) needs a last axis of \(nb) x \(ni) for weight \(weight.shape)")
    let rows = x.count / (nb * ni)
    let (xData, wData) = (x.data, weight.data)
    var out = [T](repeating: 0, count: rows * nb * no)
    let minimumRows = max(1, 8192 / (nb * ni * no))
    xData.withUnsafeBufferPointer { xp in wData.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer { op in
        let (xs, w, y) = (xp.baseAddress!, wp.baseAddress!, op.baseAddress!)
        Parallel.forEachRange(rows, minimumChunk: minimumRows) { range in
            if ni == 4 && no == 4 {   // xlstm's default block: unrolled
                for r in range {
                    var xr = xs + r * nb * 4, yr = y + r * nb * 4, wh = w
                    for _ in 0..<nb {
                        let (x0, x1, x2, x3) = (xr[0], xr[1], xr[2], xr[3])
                        for o in 0..<4 { yr[o] = x0 * wh[4 * o] + x1 * wh[4 * o + 1] + x2 * wh[4 * o + 2] + x3 * wh[4 * o + 3] }
                        xr += 4; yr += 4; wh += 16
                    }
                }
                return
            }
            for r in range {
                for h in 0..<nb {
                    let xr = xs + r * nb * ni + h * ni, yr = y + r * nb * no + h * no, wh = w + h * no * ni
                    for o in 0..<no {
                        var acc: T = 0
                        for d in 0..<ni { acc += xr[d] * wh[o * ni + d] }
                        yr[o] = acc
                    }
                }
            }
        }
    } } }
    let result = Tensor(shape: Array(x.shape.dropLast()) + [nb * no], data: out)
    Tape.record("headwise_linear", inputs: [x, weight], output: result) { dy in
        var dx = [T](repeating: 0, count: xData.count)
        let blocksOfRows = max(1, min(Parallel.threadCount * 2, rows / minimumRows))
        var partial = [T](repeating: 0, count: blocksOfRows * wData.count)
        dy.withUnsafeBufferPointer { gp in xData.withUnsafeBufferPointer { xp in wData.withUnsafeBufferPointer { wp in
        dx.withUnsafeMutableBufferPointer { dxp in partial.withUnsafeMutableBufferPointer { pp in
            let (g, xs, w, dxs, parts) = (gp.baseAddress!, xp.baseAddress!, wp.baseAddress!, dxp.baseAddress!, pp.baseAddress!)
            let size = (rows + blocksOfRows - 1) / blocksOfRows
            Parallel.forEach(blocksOfRows) { blk in
                let dw = parts + blk * nb * no * ni
                if ni == 4 && no == 4 {   // unrolled: dx = W^T dy, dW += dy x^T per 4 x 4 block
                    for r in (blk * size)..<min(rows, blk * size + size) {
                        var xr = xs + r * nb * 4, gr = g + r * nb * 4, dxr = dxs + r * nb * 4, wh = w, dwh = dw
                        for _ in 0..<nb {
                            let (x0, x1, x2, x3) = (xr[0], xr[1], xr[2], xr[3])
                            let (g0, g1, g2, g3) = (gr[0], gr[1], gr[2], gr[3])
                            for d in 0..<4 {
                                dxr[d] = g0 * wh[d] + g1 * wh[4 + d] + g2 * wh[8 + d] + g3 * wh[12 + d]
                            }
                            for o in 0..<4 {
                                let go = o == 0 ? g0 : o == 1 ? g1 : o == 2 ? g2 : g3
                                dwh[4 * o] += go * x0; dwh[4 * o + 1] += go * x1; dwh[4 * o + 2] += go * x2; dwh[4 * o + 3] += go * x3
                            }
                            xr += 4; gr += 4; dxr += 4; wh += 16; dwh += 16
                        }
                    }
                    return
                }
                for r in (blk * size)..<min(rows, blk * size + size) {
                    for h in 0..<nb {
                        let xr = xs + r * nb * ni + h * ni, gr = g + r * nb * no + h * no, dxr = dxs + r * nb * ni + h * ni
                        let wh = w + h * no * ni, dwh = dw + h * no * ni
                        for o in 0..<no {
                            let go = gr[o]
                            for d in 0..<ni {
                                dxr[d] += go * wh[o * ni + d]
                                dwh[o * ni + d] += go * xr[d]
                            }
                        }
                    }
                }
            }
        } } } } }
        var dw = [T](repeating: 0, count: wData.count)
        for blk in 0..<blocksOfRows { for i in 0..<dw.count { dw[i] += partial[blk * dw.count + i] } }
        return [dx, dw]
    }
    return result
}
