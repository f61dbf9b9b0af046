import Tensors

// The `selective_scan` kernel (KERNELS.md; Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State
// Spaces", 2023, Algorithm 2 and section 3.3), one fused tape node:
//   dt_t = softplus(delta_t + delta_bias)            (or delta_t + delta_bias without delta_softplus)   [B, L, D]
//   dA_t = exp(dt_t A)            (negative-eigenvalue mode: 2 exp(dt_t A) - 1, eigenvalues in (-1, 1])   [B, L, D, N]
//   x_t  = dA_t * x_{t-1} + dt_t u_t Bs_t,  x_0 = 0                                                       [B, D, N]
//   y_t  = sum_n x_t[n] Cs_t[n] + Dskip u_t,  then y_t <- y_t silu(z_t) if z is given                    [B, L, D]
// Layout: time-major [B, L, D], so for each (b, t) the channels are contiguous and every inner loop runs over a
// block of channels (it vectorises); the N state entries of a block live in an [N, W] scratch. Work is split
// over batch x channel blocks. For the backward pass the forward stores the state every C steps (checkpoints,
// [B, L/C, N, D]); the backward recomputes the states of one chunk from its checkpoint and sweeps it in reverse,
// so memory is O(B L D + B D N L / C), never the B L D N of all states.

/// How the fused selective scan splits its work: channels per task and steps between state checkpoints.
public struct SelectiveScanTiling: Sendable, Equatable {
    /// The most channels one task scans (the block is shrunk to keep both cores busy at batch 1).
    public var channelBlock: Int
    /// C: the forward stores the state every C steps; the backward recomputes C steps at a time.
    public var checkpointInterval: Int

    public init(channelBlock: Int = 128, checkpointInterval: Int = 32) {
        precondition(channelBlock > 0 && checkpointInterval > 0, "SelectiveScanTiling: sizes must be positive")
        self.channelBlock = channelBlock
        self.checkpointInterval = checkpointInterval
    }
}

/// The extents of one scan and its tiling: tasks are (batch member, channel block) pairs.
struct ScanGeometry {
    let batch, length, channels, stateSize: Int
    let blockWidth, blocks: Int
    let chunk, chunks: Int

    init(batch: Int, length: Int, channels: Int, stateSize: Int, tiling: SelectiveScanTiling) {
        (self.batch, self.length, self.channels, self.stateSize) = (batch, length, channels, stateSize)
        var width = max(1, min(tiling.channelBlock, channels))
        // Enough tasks for every core (and some slack for balance) when the batch is small.
        while width > 8 && batch * ((channels + width - 1) / width) < 2 * Parallel.threadCount { width = (width + 1) / 2 }
        blockWidth = width
        blocks = (channels + width - 1) / width
        // At most the length: the backward's chunk-sized buffers stay sequence-sized (an interval of 2^20 on a
        // short sequence once asked for gigabytes); one chunk either way, the same arithmetic.
        chunk = min(tiling.checkpointInterval, max(1, length))
        chunks = (length + chunk - 1) / chunk
    }

    var tasks: Int { batch * blocks }
    func channels(ofBlock block: Int) -> Range<Int> {
        (block * blockWidth)..<min(channels, (block + 1) * blockWidth)
    }
}

/// The switches of one scan.
struct ScanModes {
    let deltaSoftplus: Bool
    let negativeEigenvalues: Bool
    /// dA = scale * exp(dt A) - shift: (1, 0) normally, (2, 1) with negative eigenvalues.
    var scale: Int { negativeEigenvalues ? 2 : 1 }
    var shift: Int { negativeEigenvalues ? 1 : 0 }
}

/// The fused selective scan (KERNELS.md `selective_scan`), one tape node with a hand-written backward pass.
///
///     y_t = (sum_n x_t[n] Cs_t[n] + Dskip u_t) silu(z_t),   x_t = exp(dt_t A) x_{t-1} + dt_t Bs_t u_t,
///     dt_t = softplus(delta_t + delta_bias)
///
/// (Gu & Dao 2023, the S6 layer.) With `negativeEigenvalues` the transition is 2 exp(dt A) - 1 (Grazzi et al.,
/// "Unlocking State-Tracking in Linear RNNs Through Negative Eigenvalues", 2024), so that parity is learnable.
/// - Parameters:
///   - u: input [B, L, D]; delta: step-size pre-activations [B, L, D]; A: state matrix [D, N] (negative for a stable
///     scan); B, C: input and output projections per token [B, L, N]; D: skip [D]; z: gate [B, L, D];
///     deltaBias: added to delta before the softplus [D].
/// - Returns: y [B, L, D] and the final state x_L [B, D, N].
@_specialize(where T == Float)
@_specialize(where T == Double)
public func selectiveScan<T: TensorScalar>(
    u: Tensor<T>, delta: Tensor<T>, A: Tensor<T>, B: Tensor<T>, C: Tensor<T>,
    D: Tensor<T>? = nil, z: Tensor<T>? = nil, deltaBias: Tensor<T>? = nil,
    deltaSoftplus: Bool = true, negativeEigenvalues: Bool = false, tiling: SelectiveScanTiling = SelectiveScanTiling()
) -> (y: Tensor<T>, finalState: Tensor<T>) {
    precondition(u.rank == 3, "selective_scan: u must be [B, L, D], got \(u.shape)")
    let (batch, length, channels) = (u.shape[0], u.shape[1], u.shape[2])
    precondition(A.rank == 2 && A.shape[0] == channels && A.shape[1] > 0, "selective_scan: A has shape \(A.shape), needs [\(channels), N] with N >= 1")
    let stateSize = A.shape[1]
    precondition(delta.shape == u.shape, "selective_scan: delta has shape \(delta.shape), needs \(u.shape)")
    precondition(B.shape == [batch, length, stateSize], "selective_scan: Bs has shape \(B.shape), needs [\(batch), \(length), \(stateSize)]")
    precondition(C.shape == [batch, length, stateSize], "selective_scan: Cs has shape \(C.shape), needs [\(batch), \(length), \(stateSize)]")
    if let D { precondition(D.shape == [channels], "selective_scan: Dskip has shape \(D.shape), needs [\(channels)]") }
    if let z { precondition(z.shape == u.shape, "selective_scan: z has shape \(z.shape), needs \(u.shape)") }
    if let deltaBias { precondition(deltaBias.shape == [channels], "selective_scan: delta_bias has shape \(deltaBias.shape), needs [\(channels)]") }

    guard u.count > 0 else {  // an empty batch, sequence or width: nothing to scan, the state stays zero
        return (Tensor.zeros(u.shape), Tensor.zeros([batch, channels, stateSize]))
    }
    let geometry = ScanGeometry(batch: batch, length: length, channels: channels, stateSize: stateSize, tiling: tiling)
    let modes = ScanModes(deltaSoftplus: deltaSoftplus, negativeEigenvalues: negativeEigenvalues)
    let inputs = [u, delta, A, B, C] + [D, z, deltaBias].compactMap { $0 }
    let recording = Tape.needsGrad(inputs)
    let arrays: [[T]?] = [u.data, delta.data, A.data, B.data, C.data, D?.data, z?.data, deltaBias?.data]

    // Every entry of these is written by exactly one task.
    var y = uninitializedScalars(T.self, count: u.count)                                   // [B, L, D]
    var finalState = uninitializedScalars(T.self, count: batch * channels * stateSize)     // [B, D, N]
    var checkpoints = uninitializedScalars(T.self, count: recording ? batch * geometry.chunks * stateSize * channels : 0)  // [B, L/C, N, D]
    withBaseAddresses(arrays) { p in
        y.withUnsafeMutableBufferPointer { yp in
            finalState.withUnsafeMutableBufferPointer { hp in
                checkpoints.withUnsafeMutableBufferPointer { cp in
                    let operands = ScanOperands(p)
                    Parallel.forEach(geometry.tasks) { task in
                        scanForwardTask(
                            task, geometry, modes, operands, y: yp.baseAddress!, finalState: hp.baseAddress!,
                            checkpoints: recording ? cp.baseAddress : nil)
                    }
                }
            }
        }
    }
    let yTensor = Tensor(shape: u.shape, data: y)
    let hTensor = Tensor(shape: [batch, channels, stateSize], data: finalState)
    guard recording else { return (yTensor, hTensor) }

    let present = [D != nil, z != nil, deltaBias != nil]
    let wanted = [u, delta, A, B, C].map(\.requiresGrad) + [D, z, deltaBias].compactMap { $0?.requiresGrad }
    Tape.record("selective_scan", inputs: inputs, outputs: [yTensor, hTensor]) { grads in
        let g = selectiveScanBackward(
            geometry, modes, arrays: arrays, checkpoints: checkpoints, outputGrad: grads[0], finalStateGrad: grads[1])
        var result: [[T]?] = [g.u, g.delta, g.A, g.B, g.C]
        if present[0] { result.append(g.D) }
        if present[1] { result.append(g.z) }
        if present[2] { result.append(g.deltaBias) }
        return zip(result, wanted).map { $1 ? $0 : nil }
    }
    return (yTensor, hTensor)
}

/// Base addresses of the scan's inputs (valid inside `withBaseAddresses` only).
struct ScanOperands<T> {
    let u, delta, A, B, C: UnsafePointer<T>
    let D, z, deltaBias: UnsafePointer<T>?

    init(_ p: [UnsafePointer<T>?]) {
        // An empty input (L = 0 or D = 0) has no storage: point at a dummy that is never read.
        let dummy = p.first { $0 != nil }.flatMap { $0 } ?? UnsafePointer(emptyOperand.assumingMemoryBound(to: T.self))
        (u, delta, A, B, C) = (p[0] ?? dummy, p[1] ?? dummy, p[2] ?? dummy, p[3] ?? dummy, p[4] ?? dummy)
        (D, z, deltaBias) = (p[5], p[6], p[7])
    }
}

/// Never read: stands in for the storage of an empty input.
nonisolated(unsafe) private let emptyOperand = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)

/// dt = softplus(delta + bias) (or delta + bias) and dt u over one token's block of channels.
@inline(__always)
func discretise<T: TensorScalar>(
    _ operands: ScanOperands<T>, row: Int, channel0: Int, width: Int, softplus: Bool,
    dt: UnsafeMutablePointer<T>, dtu: UnsafeMutablePointer<T>
) {
    let delta = operands.delta + row, u = operands.u + row
    if let bias = operands.deltaBias.map({ $0 + channel0 }) {
        if softplus {
            for w in 0..<width { dt[w] = ScanMath.softplus(delta[w] + bias[w]) }
        } else {
            for w in 0..<width { dt[w] = delta[w] + bias[w] }
        }
    } else if softplus {
        for w in 0..<width { dt[w] = ScanMath.softplus(delta[w]) }
    } else {
        for w in 0..<width { dt[w] = delta[w] }
    }
    for w in 0..<width { dtu[w] = dt[w] * u[w] }
}

/// A^T for a block of channels: aT[n, w] = A[channel0 + w, n].
@inline(__always)
func transposeBlock<T>(_ A: UnsafePointer<T>, channel0: Int, width: Int, stateSize: Int, into aT: UnsafeMutablePointer<T>) {
    for n in 0..<stateSize { for w in 0..<width { aT[n * width + w] = A[(channel0 + w) * stateSize + n] } }
}

/// The forward scan of one (batch member, channel block) task.
@inline(__always)
func scanForwardTask<T: TensorScalar>(
    _ task: Int, _ g: ScanGeometry, _ modes: ScanModes, _ operands: ScanOperands<T>,
    y: UnsafeMutablePointer<T>, finalState: UnsafeMutablePointer<T>, checkpoints: UnsafeMutablePointer<T>?
) {
    let (b, block) = (task / g.blocks, task % g.blocks)
    let channels = g.channels(ofBlock: block)
    let (c0, width, n) = (channels.lowerBound, channels.count, g.stateSize)
    let scratch = UnsafeMutablePointer<T>.allocate(capacity: 3 * n * width + 3 * width)
    defer { scratch.deallocate() }
    scratch.initialize(repeating: 0, count: 3 * n * width + 3 * width)
    var state = scratch, spare = scratch + n * width      // ping-pong [N, W] states
    let aT = scratch + 2 * n * width                        // [N, W]
    let dt = aT + n * width, dtu = dt + width, acc = dtu + width  // [W] each
    transposeBlock(operands.A, channel0: c0, width: width, stateSize: n, into: aT)
    let skip = operands.D.map { $0 + c0 }  // (index arithmetic stays out of the inner loops: no overflow checks there)
    for t in 0..<g.length {
        if let checkpoints, t % g.chunk == 0 {  // the state before step t: x_{t-1}
            let base = checkpoints + ((b * g.chunks + t / g.chunk) * n) * g.channels + c0
            for k in 0..<n {
                let (to, from) = (base + k * g.channels, state + k * width)
                for w in 0..<width { to[w] = from[w] }
            }
        }
        let row = (b * g.length + t) * g.channels + c0
        discretise(operands, row: row, channel0: c0, width: width, softplus: modes.deltaSoftplus, dt: dt, dtu: dtu)
        if let D = skip {
            let u = operands.u + row
            for w in 0..<width { acc[w] = D[w] * u[w] }
        } else {
            for w in 0..<width { acc[w] = 0 }
        }
        let tokens = (b * g.length + t) * n
        let rows = ForwardStepRows(
            prev: UnsafePointer(state), next: spare, transitions: nil, aT: aT, dt: dt, dtu: dtu,
            bRow: operands.B + tokens, cRow: operands.C + tokens, y: acc)
        advanceState(rows, stateSize: n, width: width, modes: modes)
        swap(&state, &spare)
        let out = y + row
        if let z = operands.z.map({ $0 + row }) {
            for w in 0..<width { out[w] = acc[w] * z[w] * ScanMath.sigmoid(z[w]) }
        } else {
            for w in 0..<width { out[w] = acc[w] }
        }
    }
    for w in 0..<width {
        for k in 0..<n { finalState[(b * g.channels + c0 + w) * n + k] = state[k * width + w] }
    }
}
