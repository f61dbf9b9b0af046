import Tensors

// The matrix LSTM (mLSTM) of xLSTM (Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter,
// Hochreiter 2024, "xLSTM: Extended Long Short-Term Memory", section 2.3). Per batch member and head, E channels
// (keys = values), input-gate pre-activation i_t, forget-gate pre-activation f_t, log f_t = logsigmoid(f_t):
//     C_t = f_t C_{t-1} + exp(i_t) k_t v_t^T,   n_t = f_t n_{t-1} + exp(i_t) k_t,   (k scaled by E^-1/2)
//     h_t = q_t C_t / max(|q_t n_t|, 1)
// held stabilised by the max state m_t = max(log f_t + m_{t-1}, i_t), m_0 = -inf (C~ = e^{-m} C, n~ = e^{-m} n):
//     C~_t = e^{log f_t + m_{t-1} - m_t} C~_{t-1} + e^{i_t - m_t} k_t v_t^T          (n~ likewise)
//     h_t  = q_t C~_t / (max(|q_t n~_t|, e^{-m_t}) + eps)                             (eps = 1e-6)
// m_t = max_{j <= t} (F_t - F_j + i_j) with F = cumsum log f: the row maximum that xlstm's parallel form
// (`parallel_stabilized_simple`, the layer's default backend) stabilises with, so this is that function exactly,
// the eps term included. (xlstm's recurrent step and chunkwise backend start from m_0 = 0, which moves only the eps
// term: h = q C / (max(|q n|, 1) + eps e^m).)
//
// The chunked form is linear attention with one log-gate per head (`scalarGatedLinearAttention`, the chunk kernel of
// RetNet and Mamba-2): with the state log-gate a_t = log f_t + m_{t-1} - m_t (<= 0), keys k_t e^{i_t - m_t} E^-1/2
// and values [v_t, 1] (the last column carries n~), it returns [q C~, q n~] per token (scale 1), and the state
// [C~, n~] [E, E + 1] per head.
// Gradients flow through m as autograd flows through xlstm's max (to the maximising entry), so they equal the
// reference's exactly, the eps term's included.

/// The normaliser's eps, xlstm's (`parallel_stabilized_simple`, `recurrent_step_stabilized_simple`): the one place
/// the layer, the `mlstm` op's default and the functions' defaults read it from.
public let matrixLSTMEpsilon = 1e-6

/// The state of the mLSTM recurrence: memory [B, H, E, E + 1] = [C~, n~] (stabilised by e^{-m}) and m [B, H]
/// (-inf for the empty state).
public struct MatrixLSTMState<T: TensorScalar> {
    public var memory: Tensor<T>
    public var stabilizer: Tensor<T>

    /// The empty state: zero memory, m = -inf.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(batchSize: Int, heads: Int, headDim: Int) {
        memory = Tensor.zeros([batchSize, heads, headDim, headDim + 1])
        stabilizer = Tensor(repeating: -T.infinity, shape: [batchSize, heads])
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public init(memory: Tensor<T>, stabilizer: Tensor<T>) {
        (self.memory, self.stabilizer) = (memory, stabilizer)
    }
}

/// The mLSTM, chunkwise parallel form (the scalar-gate chunk kernel; see the top of this file).
///
/// - Parameters:
///   - q, k, v: [B, L, H, E]; inputGates i, forgetGates f: [B, L, H] pre-activations (f enters as logsigmoid f).
///   - initialState: the entering state (nil: empty).
///   - eps: the normaliser's eps (xlstm: 1e-6). chunkSize: the chunk kernel's schedule.
/// - Returns: h [B, L, H, E] (before the layer's output norm) and the final state.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func matrixLSTM<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, inputGates i: Tensor<T>, forgetGates f: Tensor<T>,
    initialState: MatrixLSTMState<T>? = nil, eps: T = T(matrixLSTMEpsilon), chunkSize: Int = 64
) -> (output: Tensor<T>, finalState: MatrixLSTMState<T>) {
    let (b, l, h, e) = validatedMatrixLSTMShapes(q: q, k: k, v: v, i: i, f: f, state: initialState)
    let (m, a) = mlstmStabilizer(logForget: f.logSigmoid(), inputGate: i, initial: initialState?.stabilizer)
    let u = mlstmLinearAttentionInputs(k: k, v: v, inputGates: i, stabilizer: m, shape: [b, l, h, e])
    let (o, memory) = scalarGatedLinearAttention(q: q, k: u.k, v: u.v, logGates: a, initialState: initialState?.memory,
                                                 scale: 1, chunkSize: chunkSize)
    let last = m.slice(axis: 1, (l - 1)..<l).reshaped([b, h])
    return (mlstmNormalize(o, stabilizer: m, eps: eps), MatrixLSTMState(memory: memory, stabilizer: last))
}

/// One token of the mLSTM: q, k, v [B, H, E], i, f [B, H] -> (h [B, H, E], the new state). Differentiable.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func matrixLSTMStep<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, inputGate i: Tensor<T>, forgetGate f: Tensor<T>,
    state: MatrixLSTMState<T>, eps: T = T(matrixLSTMEpsilon)
) -> (output: Tensor<T>, state: MatrixLSTMState<T>) {
    let (b, h, e) = (q.shape[0], q.shape[1], q.shape[2])
    let (m, a) = mlstmStabilizer(logForget: f.logSigmoid().reshaped([b, 1, h]), inputGate: i.reshaped([b, 1, h]),
                                 initial: state.stabilizer)
    let u = mlstmLinearAttentionInputs(k: k.reshaped([b, 1, h, e]), v: v.reshaped([b, 1, h, e]), inputGates: i.reshaped([b, 1, h]),
                                       stabilizer: m, shape: [b, 1, h, e])
    let (o, memory) = gatedLinearAttentionStep(q: q, k: u.k.reshaped([b, h, e]), v: u.v.reshaped([b, h, e + 1]),
                                               logGates: a.reshaped([b, h, 1]).broadcast(to: [b, h, e]), state: state.memory, scale: 1)
    let out = mlstmNormalize(o.reshaped([b, 1, h, e + 1]), stabilizer: m, eps: eps).reshaped([b, h, e])
    return (out, MatrixLSTMState(memory: memory, stabilizer: m.reshaped([b, h])))
}

/// The mLSTM token by token (`matrixLSTMStep`): the slow, obviously right form the chunked one is tested against.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func matrixLSTMRecurrent<T: TensorScalar>(
    q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, inputGates i: Tensor<T>, forgetGates f: Tensor<T>,
    initialState: MatrixLSTMState<T>? = nil, eps: T = T(matrixLSTMEpsilon)
) -> (output: Tensor<T>, finalState: MatrixLSTMState<T>) {
    let (b, l, h, e) = validatedMatrixLSTMShapes(q: q, k: k, v: v, i: i, f: f, state: initialState)
    var state = initialState ?? MatrixLSTMState(batchSize: b, heads: h, headDim: e)
    let (qs, ks, vs, gi, gf) = (q.timeSteps(), k.timeSteps(), v.timeSteps(), i.timeSteps(), f.timeSteps())
    var outputs: [Tensor<T>] = []
    for t in 0..<l {
        let (o, next) = matrixLSTMStep(q: qs[t], k: ks[t], v: vs[t], inputGate: gi[t], forgetGate: gf[t], state: state, eps: eps)
        outputs.append(o.reshaped([b, 1, h, e]))
        state = next
    }
    return (Tensor.concatenate(outputs, axis: 1), state)
}

/// (B, L, H, E), or a precondition failure naming the offending tensor.
func validatedMatrixLSTMShapes<T>(q: Tensor<T>, k: Tensor<T>, v: Tensor<T>, i: Tensor<T>, f: Tensor<T>,
                                  state: MatrixLSTMState<T>?) -> (Int, Int, Int, Int) {
    precondition(q.rank == 4 && q.shape.allSatisfy { $0 >= 1 }, "mlstm: q must be [B, L, H, E], got \(q.shape)")
    precondition(k.shape == q.shape && v.shape == q.shape, "mlstm: k \(k.shape) and v \(v.shape) must match q \(q.shape)")
    let (b, l, h, e) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    precondition(i.shape == [b, l, h] && f.shape == [b, l, h], "mlstm: gates i \(i.shape), f \(f.shape) must be [B, L, H] = \([b, l, h])")
    if let state {
        precondition(state.memory.shape == [b, h, e, e + 1] && state.stabilizer.shape == [b, h],
                     "mlstm: state \(state.memory.shape) / \(state.stabilizer.shape) must be [B, H, E, E + 1] / [B, H]")
    }
    return (b, l, h, e)
}

/// The linear-attention inputs: keys k e^{i - m} E^-1/2 and values [v, 1].
@_specialize(where T == Float)
@_specialize(where T == Double)
func mlstmLinearAttentionInputs<T: TensorScalar>(
    k: Tensor<T>, v: Tensor<T>, inputGates i: Tensor<T>, stabilizer m: Tensor<T>, shape: [Int]
) -> (k: Tensor<T>, v: Tensor<T>) {
    let (b, l, h, e) = (shape[0], shape[1], shape[2], shape[3])
    let keyScale = (i - m).exp().scaled(by: 1 / T(e).squareRoot()).reshaped([b, l, h, 1])
    return (k * keyScale, Tensor.concatenate([v, Tensor.ones([b, l, h, 1])], axis: 3))
}

/// The mLSTM stabiliser as one tape node: log forget gates lf [B, L, H], input-gate pre-activations i [B, L, H] and
/// the entering m0 [B, H] (nil: -inf, the empty state) -> m [B, L, H], m_t = max(lf_t + m_{t-1}, i_t), and the
/// state log-gates a [B, L, H], a_t = lf_t + m_{t-1} - m_t (<= 0; 0 where m_{t-1} = -inf: there is nothing to decay).
/// Backward: a reverse scan; the gradient of m_t reaches i_t where m_t = i_t (ties included), else lf_t and m_{t-1}.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func mlstmStabilizer<T: TensorScalar>(logForget lf: Tensor<T>, inputGate i: Tensor<T>, initial m0: Tensor<T>?)
    -> (m: Tensor<T>, a: Tensor<T>) {
    precondition(lf.rank == 3 && i.shape == lf.shape, "mlstm stabiliser: log forget gates \(lf.shape) and input gates \(i.shape) must be one [B, L, H]")
    let (b, l, h) = (lf.shape[0], lf.shape[1], lf.shape[2])
    if let m0 { precondition(m0.shape == [b, h], "mlstm stabiliser: m0 \(m0.shape) must be [B, H] = \([b, h])") }
    let (lfData, iData, m0Data) = (lf.data, i.data, m0?.data)
    var m = [T](repeating: 0, count: lf.count), a = [T](repeating: 0, count: lf.count)
    for item in 0..<(b * h) {
        let (bi, hi) = (item / h, item % h)
        var prev = m0Data?[item] ?? -T.infinity
        for t in 0..<l {
            let idx = (bi * l + t) * h + hi
            if prev == -T.infinity {
                (m[idx], a[idx]) = (iData[idx], 0)
            } else {
                let decayed = lfData[idx] + prev
                m[idx] = decayed > iData[idx] ? decayed : iData[idx]
                a[idx] = decayed - m[idx]
            }
            prev = m[idx]
        }
    }
    let (mOut, aOut) = (Tensor(shape: lf.shape, data: m), Tensor(shape: lf.shape, data: a))
    let inputs = [lf, i] + (m0.map { [$0] } ?? [])
    Tape.record("mlstm_stabilizer", inputs: inputs, outputs: [mOut, aOut]) { grads in
        let (dm, da) = (grads[0], grads[1])
        var dlf = [T](repeating: 0, count: lfData.count), di = [T](repeating: 0, count: lfData.count)
        var dm0 = [T](repeating: 0, count: b * h)
        for item in 0..<(b * h) {
            let (bi, hi) = (item / h, item % h)
            var carry: T = 0   // dL/dm_t from the later tokens
            for t in stride(from: l - 1, through: 0, by: -1) {
                let idx = (bi * l + t) * h + hi
                let prev = t > 0 ? m[idx - h] : (m0Data?[item] ?? -T.infinity)
                var gm = (dm?[idx] ?? 0) + carry
                carry = 0
                guard prev != -T.infinity else { di[idx] += gm; continue }
                let ga = da?[idx] ?? 0
                gm -= ga
                dlf[idx] += ga
                carry += ga
                if lfData[idx] + prev > iData[idx] {
                    dlf[idx] += gm
                    carry += gm
                } else {
                    di[idx] += gm
                }
            }
            dm0[item] = carry
        }
        return [dlf, di] + (m0Data == nil ? [] : [dm0])
    }
    return (mOut, aOut)
}

/// h = o[..., :E] / (max(|o[..., E]|, e^{-m}) + eps) as one tape node: o [B, L, H, E + 1] (the GLA pass's
/// [q C~, q n~]), m [B, L, H] -> h [B, L, H, E]. Backward with den = max(|d|, e^{-m}) + eps, d = o[..., E]:
/// dN = dh / den, dden = -(dh . h) / den, reaching d (times sign d) where |d| > e^{-m}, else m (times -e^{-m}).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func mlstmNormalize<T: TensorScalar>(_ o: Tensor<T>, stabilizer m: Tensor<T>, eps: T) -> Tensor<T> {
    precondition(o.rank == 4 && o.shape[3] >= 2 && m.shape == Array(o.shape.prefix(3)),
                 "mlstm normalise: o \(o.shape) must be [B, L, H, E + 1] and m \(m.shape) [B, L, H]")
    let e = o.shape[3] - 1, rows = m.count
    let (oData, mData) = (o.data, m.data)
    var out = [T](repeating: 0, count: rows * e)
    for r in 0..<rows {
        let row = r * (e + 1)
        let den = max(abs(oData[row + e]), T.exp(-mData[r])) + eps
        for c in 0..<e { out[r * e + c] = oData[row + c] / den }
    }
    let result = Tensor(shape: Array(o.shape.prefix(3)) + [e], data: out)
    Tape.record("mlstm_normalize", inputs: [o, m], output: result) { dh in
        var dO = [T](repeating: 0, count: oData.count), dm = [T](repeating: 0, count: rows)
        for r in 0..<rows {
            let row = r * (e + 1), d = oData[row + e], floor = T.exp(-mData[r])
            let den = max(abs(d), floor) + eps
            var s: T = 0
            for c in 0..<e {
                dO[row + c] = dh[r * e + c] / den
                s += dh[r * e + c] * out[r * e + c]
            }
            let dden = -s / den
            if abs(d) > floor { dO[row + e] = d > 0 ? dden : -dden } else { dm[r] = -dden * floor }
        }
        return [dO, dm]
    }
    return result
}
