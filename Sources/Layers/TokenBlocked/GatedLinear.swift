import Tensors

/// y = (o * sigmoid(z)) W^T: an output gate followed by a projection (RAT's `out_proj(z * out)`), o and z [..., Din],
/// W [Dout, Din] (PyTorch's nn.Linear layout). One tape node, token-blocked: the gated rows u = o sigmoid(z) of a block are formed in cache and
/// multiplied at once. Backward per block: du = dy W, dW += dy^T u (u recomputed), do = du sigmoid(z),
/// dz = du o sigmoid(z) (1 - sigmoid(z)).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func tokenBlockedGatedLinear<T: TensorScalar>(_ o: Tensor<T>, gateLogits z: Tensor<T>, weight: Tensor<T>) -> Tensor<T> {
    precondition(o.shape == z.shape && o.rank >= 1, "tokenBlockedGatedLinear: o \(o.shape) and z \(z.shape) must have one shape")
    precondition(weight.rank == 2 && weight.shape[1] == o.shape[o.rank - 1], "tokenBlockedGatedLinear: weight \(weight.shape) for inputs \(o.shape)")
    let (dout, din) = (weight.shape[0], weight.shape[1])
    let rows = din == 0 ? 0 : o.count / din
    let oData = o.data, zData = z.data, wData = weight.data
    let workers = TokenBlocks.workers(count: rows)
    var out: [T] = overwrittenArray(count: rows * dout)

    /// u = o sigmoid(z) for the rows r into `u` [rows, Din].
    @inline(__always) func gated(_ r: Range<Int>, _ u: UnsafeMutablePointer<T>, _ op: UnsafePointer<T>, _ zp: UnsafePointer<T>) {
        let (o, z) = (op + r.lowerBound * din, zp + r.lowerBound * din)
        for i in 0..<(r.count * din) { u[i] = o[i] * FastScalarMath.sigmoid(z[i]) }
    }

    oData.withUnsafeBufferPointer { op in zData.withUnsafeBufferPointer { zp in wData.withUnsafeBufferPointer { wp in
    out.withUnsafeMutableBufferPointer { yp in
        let scratch: [PooledBuffer<T>] = TokenBlocks.scratch(workers, TokenBlocks.rows * din)
        TokenBlocks.forEach(count: rows) { worker, r in
            let u = scratch[worker].pointer
            gated(r, u, op.baseAddress!, zp.baseAddress!)  // [rows, Din]
            T.gemm(transA: false, transB: true, m: r.count, n: dout, k: din, alpha: 1, a: u, lda: din, b: wp.baseAddress!, ldb: din,
                   beta: 0, c: yp.baseAddress! + r.lowerBound * dout, ldc: dout)  // [rows, Dout] = u W^T
        }
    } } } }

    let result = Tensor(shape: Array(o.shape.dropLast()) + [dout], data: out)
    let (needO, needZ, needW) = (o.requiresGrad, z.requiresGrad, weight.requiresGrad)
    Tape.record("token_blocked_gated_linear", inputs: [o, z, weight], output: result) { dy in
        var dO: [T] = overwrittenArray(count: needO ? oData.count : 0)
        var dZ: [T] = overwrittenArray(count: needZ ? zData.count : 0)
        let dW: [PooledBuffer<T>] = TokenBlocks.accumulators(needW ? workers : 0, din * dout)
        let scratch: [PooledBuffer<T>] = TokenBlocks.scratch(workers, 2 * TokenBlocks.rows * din)
        oData.withUnsafeBufferPointer { op in zData.withUnsafeBufferPointer { zp in wData.withUnsafeBufferPointer { wp in
        dy.withUnsafeBufferPointer { gp in dO.withUnsafeMutableBufferPointer { dop in dZ.withUnsafeMutableBufferPointer { dzp in
            TokenBlocks.forEach(count: rows) { worker, r in
                let u = scratch[worker].pointer, du = u + TokenBlocks.rows * din
                let g = gp.baseAddress! + r.lowerBound * dout
                if needW {  // dW += dy^T u  [Dout, Din]
                    gated(r, u, op.baseAddress!, zp.baseAddress!)
                    T.gemm(transA: true, transB: false, m: dout, n: din, k: r.count, alpha: 1, a: g, lda: dout, b: u, ldb: din,
                           beta: 1, c: dW[worker].pointer, ldc: din)
                }
                guard needO || needZ else { return }
                // du = dy W  [rows, Din]
                T.gemm(transA: false, transB: false, m: r.count, n: din, k: dout, alpha: 1, a: g, lda: dout, b: wp.baseAddress!, ldb: din,
                       beta: 0, c: du, ldc: din)
                let base = r.lowerBound * din
                let (o, z) = (op.baseAddress! + base, zp.baseAddress! + base)
                if needO && needZ {
                    let (dO, dZ) = (dop.baseAddress! + base, dzp.baseAddress! + base)
                    for i in 0..<(r.count * din) {
                        let s = FastScalarMath.sigmoid(z[i])
                        dO[i] = du[i] * s
                        dZ[i] = du[i] * o[i] * s * (1 - s)
                    }
                } else if needO {
                    let dO = dop.baseAddress! + base
                    for i in 0..<(r.count * din) { dO[i] = du[i] * FastScalarMath.sigmoid(z[i]) }
                } else {
                    let dZ = dzp.baseAddress! + base
                    for i in 0..<(r.count * din) {
                        let s = FastScalarMath.sigmoid(z[i])
                        dZ[i] = du[i] * o[i] * s * (1 - s)
                    }
                }
            }
        } } } } } }
        return [needO ? dO : nil, needZ ? dZ : nil, needW ? TokenBlocks.reduce(dW) : nil]
    }
    return result
}
