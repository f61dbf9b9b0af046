import Tensors

// The backward pass of the fused selective scan (REFERENCE.md section 2), per (batch member, channel block):
//   dy'_t   = dy_t silu(z_t);  dz_t = dy_t y'_t silu'(z_t)       (y'_t: the output before the gate)
//   G_t     = dy'_t Cs_t + dA_{t+1} G_{t+1},  G_L starts from d hT  (reverse scan: G_t = dLoss/dx_t)     [D, N]
//   dCs_t   = sum_d dy'_t x_t;   dBs_t = sum_d G_t dt_t u_t;   dDskip += dy'_t u_t
//   d(dt A) = G_t x_{t-1} dA'_t  with dA'_t = d dA / d(dt A) = scale exp(dt A) = dA_t + shift
//   dA     += d(dt A) dt_t;  d dt_t = sum_n d(dt A) A + sum_n G_t Bs_t u_t;  du_t = dt_t sum_n G_t Bs_t + Dskip dy'_t
//   d delta = d dt sigmoid(delta + delta_bias) (softplus) or d dt;  d delta_bias = sum d delta
// Chunks run from last to first: the chunk's states x_{t-1..} are recomputed from its checkpoint into an
// [(C + 1), N, W] buffer (with the transitions dA_t), then swept in reverse. Per-block partial sums (dBs, dCs are
// shared by all channels; dA, dDskip, d delta_bias by all batch members) are reduced at the end.

/// The input gradients of one selective scan (nil where the input is absent).
struct ScanGradients<T> {
    var u, delta, A, B, C: [T]
    var D, z, deltaBias: [T]?
}

/// Gradients of the scan's inputs given the gradients of y (nil: y unused) and of the final state (nil: unused).
@_specialize(where T == Float)
@_specialize(where T == Double)
func selectiveScanBackward<T: TensorScalar>(
    _ g: ScanGeometry, _ modes: ScanModes, arrays: [[T]?], checkpoints: [T], outputGrad: [T]?, finalStateGrad: [T]?
) -> ScanGradients<T> {
    let (n, blw) = (g.stateSize, g.blockWidth)
    let tokens = g.batch * g.length
    // du, d delta (and dz when y has a gradient) are written entry by entry by the tasks; the rest accumulates.
    let size = tokens * g.channels
    var grads = ScanGradients<T>(
        u: uninitializedScalars(T.self, count: size), delta: uninitializedScalars(T.self, count: size),
        A: [T](repeating: 0, count: g.channels * n), B: [T](repeating: 0, count: tokens * n),
        C: [T](repeating: 0, count: tokens * n),
        D: arrays[5] == nil ? nil : [T](repeating: 0, count: g.channels),
        z: arrays[6] == nil ? nil : outputGrad == nil ? [T](repeating: 0, count: size) : uninitializedScalars(T.self, count: size),
        deltaBias: arrays[7] == nil ? nil : [T](repeating: 0, count: g.channels))
    // Per-task partial sums: dBs and dCs per channel block [blocks, B, L, N]; dA^T [tasks, N, W], dDskip and
    // d delta_bias [tasks, W].
    var partialB = [T](repeating: 0, count: g.blocks * tokens * n)
    var partialC = [T](repeating: 0, count: g.blocks * tokens * n)
    var partialA = [T](repeating: 0, count: g.tasks * n * blw)
    var partialD = [T](repeating: 0, count: g.tasks * blw)
    var partialBias = [T](repeating: 0, count: g.tasks * blw)
    withBaseAddresses(arrays + [checkpoints, outputGrad, finalStateGrad]) { p in
        let operands = ScanOperands(Array(p[0..<8]))
        let (checkpointBase, dy, dhT) = (p[8], p[9], p[10])
        grads.u.withUnsafeMutableBufferPointer { du in
            grads.delta.withUnsafeMutableBufferPointer { dDelta in
                withOptionalMutablePointer(&grads.z) { dz in
                    partialB.withUnsafeMutableBufferPointer { pB in
                        partialC.withUnsafeMutableBufferPointer { pC in
                            partialA.withUnsafeMutableBufferPointer { pA in
                                partialD.withUnsafeMutableBufferPointer { pD in
                                    partialBias.withUnsafeMutableBufferPointer { pBias in
                                        let sinks = ScanGradientSinks(
                                            u: du.baseAddress!, delta: dDelta.baseAddress!, z: dz,
                                            B: pB.baseAddress!, C: pC.baseAddress!, A: pA.baseAddress!,
                                            D: pD.baseAddress!, deltaBias: pBias.baseAddress!)
                                        Parallel.forEach(g.tasks) { task in
                                            scanBackwardTask(
                                                task, g, modes, operands, checkpoints: checkpointBase, dy: dy, dhT: dhT,
                                                sinks: sinks)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // Reductions of the partial sums.
    for block in 0..<g.blocks {
        let offset = block * tokens * n
        for i in 0..<(tokens * n) {
            grads.B[i] += partialB[offset + i]
            grads.C[i] += partialC[offset + i]
        }
    }
    for task in 0..<g.tasks {
        let channels = g.channels(ofBlock: task % g.blocks)
        let width = channels.count
        for (w, d) in channels.enumerated() {
            for k in 0..<n { grads.A[d * n + k] += partialA[task * n * blw + k * width + w] }
            grads.D?[d] += partialD[task * blw + w]
            grads.deltaBias?[d] += partialBias[task * blw + w]
        }
    }
    return grads
}

/// Where the tasks write their gradients: u, delta, z directly (disjoint slices); the rest as partial sums.
struct ScanGradientSinks<T> {
    let u, delta: UnsafeMutablePointer<T>
    let z: UnsafeMutablePointer<T>?
    let B, C, A, D, deltaBias: UnsafeMutablePointer<T>
}

/// Runs `body` with the base address of `array` (nil when the array is nil or empty).
func withOptionalMutablePointer<T, R>(_ array: inout [T]?, _ body: (UnsafeMutablePointer<T>?) -> R) -> R {
    guard array != nil else { return body(nil) }
    return array!.withUnsafeMutableBufferPointer { body($0.count > 0 ? $0.baseAddress : nil) }
}

/// The backward sweep of one (batch member, channel block) task, chunk by chunk from the end.
@inline(__always)
func scanBackwardTask<T: TensorScalar>(
    _ task: Int, _ g: ScanGeometry, _ modes: ScanModes, _ operands: ScanOperands<T>,
    checkpoints: UnsafePointer<T>?, dy: UnsafePointer<T>?, dhT: UnsafePointer<T>?, sinks: ScanGradientSinks<T>
) {
    let (b, block) = (task / g.blocks, task % g.blocks)
    let channels = g.channels(ofBlock: block)
    let (c0, width, n, chunk) = (channels.lowerBound, channels.count, g.stateSize, g.chunk)
    let nw = n * width
    // Scratch: states [(C+1), N, W], transitions [C, N, W], A^T and carry [N, W], per-token rows [C, W] for dt, dt u
    // and the ungated output, and [W] rows for the current token.
    let layout = [(chunk + 1) * nw, chunk * nw, nw, nw, chunk * width, chunk * width, chunk * width, 6 * width]
    let scratch = UnsafeMutablePointer<T>.allocate(capacity: layout.reduce(0, +))
    defer { scratch.deallocate() }
    scratch.initialize(repeating: 0, count: layout.reduce(0, +))
    var offsets = [Int](), total = 0
    for size in layout { offsets.append(total); total += size }
    let states = scratch + offsets[0], transitions = scratch + offsets[1]
    let aT = scratch + offsets[2], carry = scratch + offsets[3]
    let dtRows = scratch + offsets[4], dtuRows = scratch + offsets[5], yRows = scratch + offsets[6]
    let dyGated = scratch + offsets[7], gTimesB = dyGated + width, dDt = gTimesB + width, duRow = dDt + width
    let gRow = duRow + width
    let partialA = sinks.A + task * n * g.blockWidth
    let partialD = sinks.D + task * g.blockWidth, partialBias = sinks.deltaBias + task * g.blockWidth
    let partialB = sinks.B + block * g.batch * g.length * n, partialC = sinks.C + block * g.batch * g.length * n
    let shift = T(modes.shift)

    transposeBlock(operands.A, channel0: c0, width: width, stateSize: n, into: aT)
    let skip = operands.D.map { $0 + c0 }  // (index arithmetic stays out of the inner loops: no overflow checks there)
    if let dhT {  // G_L = d hT, [B, D, N] -> [N, W]
        for w in 0..<width { for k in 0..<n { carry[k * width + w] = dhT[(b * g.channels + c0 + w) * n + k] } }
    }
    for c in stride(from: g.chunks - 1, through: 0, by: -1) {
        let start = c * chunk, steps = min(chunk, g.length - start)
        // Recompute x_{start-1} ... x_{start+steps-1} and the transitions from the checkpoint.
        if let checkpoints {
            let base = checkpoints + ((b * g.chunks + c) * n) * g.channels + c0
            for k in 0..<n {
                let (to, from) = (states + k * width, base + k * g.channels)
                for w in 0..<width { to[w] = from[w] }
            }
        }
        for i in 0..<steps {
            let t = start + i
            let row = (b * g.length + t) * g.channels + c0
            let (dt, dtu, yRow) = (dtRows + i * width, dtuRows + i * width, yRows + i * width)
            discretise(operands, row: row, channel0: c0, width: width, softplus: modes.deltaSoftplus, dt: dt, dtu: dtu)
            if let D = skip {
                let u = operands.u + row
                for w in 0..<width { yRow[w] = D[w] * u[w] }
            } else {
                for w in 0..<width { yRow[w] = 0 }
            }
            let tokenRow = (b * g.length + t) * n
            let rows = ForwardStepRows(
                prev: UnsafePointer(states + i * nw), next: states + (i + 1) * nw, transitions: transitions + i * nw,
                aT: UnsafePointer(aT), dt: UnsafePointer(dt), dtu: UnsafePointer(dtu), bRow: operands.B + tokenRow,
                cRow: operands.C + tokenRow, y: yRow)
            advanceState(rows, stateSize: n, width: width, modes: modes)
        }
        // Reverse sweep over the chunk.
        for i in stride(from: steps - 1, through: 0, by: -1) {
            let t = start + i
            let row = (b * g.length + t) * g.channels + c0
            let tokenRow = (b * g.length + t) * n
            let (dt, dtu, yRow) = (dtRows + i * width, dtuRows + i * width, yRows + i * width)
            let u = operands.u + row
            if let dy = dy.map({ $0 + row }) {
                if let z = operands.z.map({ $0 + row }), let dz = sinks.z.map({ $0 + row }) {
                    for w in 0..<width {
                        let s = ScanMath.sigmoid(z[w])
                        dyGated[w] = dy[w] * z[w] * s
                        dz[w] = dy[w] * yRow[w] * s * (1 + z[w] * (1 - s))
                    }
                } else {
                    for w in 0..<width { dyGated[w] = dy[w] }
                }
            } else {
                for w in 0..<width { dyGated[w] = 0 }
            }
            if let D = skip {
                for w in 0..<width {
                    partialD[w] += dyGated[w] * u[w]
                    duRow[w] = dyGated[w] * D[w]
                }
            } else {
                for w in 0..<width { duRow[w] = 0 }
            }
            for w in 0..<width {
                dDt[w] = 0
                gTimesB[w] = 0
            }
            for k in 0..<n {
                let rows = ReverseStepRows(
                    dyGated: UnsafePointer(dyGated), xPrev: states + i * nw + k * width,
                    xCur: states + (i + 1) * nw + k * width, dA: transitions + i * nw + k * width, a: aT + k * width,
                    dt: dt, dtu: dtu, carry: carry + k * width, dDt: dDt, dA_T: partialA + k * width,
                    gTimesB: gTimesB, scratch: gRow)
                let (dC, dB) = reverseStateIndex(
                    rows, width: width, bn: operands.B[tokenRow + k], cn: operands.C[tokenRow + k], shift: shift)
                partialC[tokenRow + k] = dC
                partialB[tokenRow + k] = dB
            }
            let du = sinks.u + row, dDelta = sinks.delta + row
            let delta = operands.delta + row
            for w in 0..<width {
                du[w] = duRow[w] + gTimesB[w] * dt[w]
                dDt[w] += gTimesB[w] * u[w]
            }
            if modes.deltaSoftplus {
                if let bias = operands.deltaBias.map({ $0 + c0 }) {
                    for w in 0..<width { dDelta[w] = dDt[w] * ScanMath.sigmoid(delta[w] + bias[w]) }
                } else {
                    for w in 0..<width { dDelta[w] = dDt[w] * ScanMath.sigmoid(delta[w]) }
                }
            } else {
                for w in 0..<width { dDelta[w] = dDt[w] }
            }
            if operands.deltaBias != nil {
                for w in 0..<width { partialBias[w] += dDelta[w] }
            }
        }
    }
}
